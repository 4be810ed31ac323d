"""The standardized solution (lavaan's std.lv and std.all), per level and per posterior draw.

Each level's variables v (observed and latent) have the model-implied covariance

    Σ = T (Γ S_x Γᵀ + Ψ) Tᵀ,   T = (I − B)⁻¹,

with S_x the sample covariance of the level's covariates (conditioned on, as lavaan's
``fixed.x``: the pooled within-cluster covariance at the within level, the covariance of the
cluster values above). With s_v = √Σ_vv (s_x = √(S_x)_xx for covariates), std.all divides a
parameter by the SDs of the variables it links and multiplies by those it comes from:

    f =~ y: λ s_f / s_y     y ~ x: β s_x / s_y     a ~~ b: ψ / (s_a s_b)     y ~1: ν / s_y

and std.lv does the same with the SDs of the latent variables only (observed ones count as 1).
The same Σ gives each endogenous variable's R² = 1 − Ψ_vv / Σ_vv at its level, and each
variable with parts at two levels of a two-level model its ICC = Σ_B,vv / (Σ_W,vv + Σ_B,vv).

A binary or ordinal response is standardized on the scale of its latent response y*, whose
within residual variance is the link's (1 for probit, π²/3 for logit), as Mplus and lavaan do;
its R² is then McKelvey and Zavoina's and its ICC the latent-response ICC. Counts have no such
scale: their standardized values, R² and ICC are NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt

from ..data.clustered import ClusteredData
from ..errors import UnavailableError
from ..likelihood.families import parse_family
from ..likelihood.moments import level_matrices
from ..spec.plan import LevelPlan, MatrixSpec, Plan, matrix_entry

LATENT_RESPONSE_VARIANCE = {"probit": 1.0, "logit": np.pi**2 / 3, "cloglog": np.pi**2 / 6}
"""The residual variance of the latent response y* behind a binary or ordinal variable (y = k when
τ_k < y* ≤ τ_{k+1}): standard normal for the probit link, standard logistic for the logit, Gumbel
for the complementary log-log."""

_OPS = ("=~", "~", "~~", "~1")


def standardized_draws(theta: np.ndarray, plan: Plan, data: ClusteredData, random: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """std.all and std.lv of every table row (draws, rows) from θ draws (draws, parameters) and, with
    random parameters, their cluster values (draws, clusters, K): then the level that holds them
    is standardized cluster by cluster and averaged over clusters. NaN for rows that are not
    loadings, regressions, (co)variances or intercepts."""
    table = plan.table
    std_all = np.full((len(theta), len(table)), np.nan)
    std_lv = np.full_like(std_all, np.nan)
    values = _row_values(theta, table)
    for label, level, sigma, _, matrices in _level_covariances(theta, plan, data, random):
        sd = _sds(sigma, level)
        latent = set(level.roles.latent)
        rows = np.flatnonzero((table["level"] == label).to_numpy() & table["op"].isin(_OPS).to_numpy())
        for k in rows:
            op, lhs, rhs = table.at[k, "op"], table.at[k, "lhs"], table.at[k, "rhs"]
            to, frm = ((rhs, lhs) if op == "=~" else (lhs, rhs) if op == "~" else (lhs, None) if op == "~1"
                       else (lhs, rhs))
            divide = [to] + ([frm] if op == "~~" else [])
            multiply = [frm] if op in ("=~", "~") else []
            value = _cluster_value(matrices, level, op, lhs, rhs) if matrices and op != "~1" else values[:, k]
            for out, scale in ((std_all, lambda v: sd[v]), (std_lv, lambda v: sd[v] if v in latent else 1.0)):
                factor = np.ones((len(theta), 1)) if matrices else np.ones(len(theta))
                for v in multiply:
                    factor = factor * scale(v)
                for v in divide:
                    factor = factor / scale(v)
                out[:, k] = (_as_columns(value) * factor).mean(-1) if matrices else value * factor
    return std_all, std_lv


def _as_columns(values: np.ndarray) -> np.ndarray:
    """Per-draw values (draws,) as one column, per-cluster ones (draws, clusters) unchanged."""
    values = np.asarray(values)
    return values[:, None] if values.ndim == 1 else values


def _over_clusters(values: np.ndarray) -> np.ndarray:
    """The mean over clusters (the last axis) of per-cluster values; plain values unchanged."""
    return values.mean(-1) if values.ndim > 1 else values


def _cluster_value(matrices: dict, level: LevelPlan, op: str, lhs: str, rhs: str) -> np.ndarray:
    """A row's value in every cluster (draws, clusters), read from the cluster's B, Γ or Ψ."""
    position = {v: i for i, v in enumerate(level.variables)}
    covariate = {v: i for i, v in enumerate(level.roles.covariates)}
    name, r, c = matrix_entry(op, lhs, rhs, position, covariate)
    return matrices[name][..., r, c]


def standardized_table(theta: np.ndarray, plan: Plan, data: ClusteredData, interval: float = 0.95,
                       random: np.ndarray | None = None) -> pd.DataFrame:
    """lhs, op, rhs, level with the posterior mean of std.lv and the posterior mean, SD and
    equal-tailed interval of std.all of every loading, regression, (co)variance and intercept."""
    std_all, std_lv = standardized_draws(theta, plan, data, random)
    keep = plan.table["op"].isin(_OPS).to_numpy()
    out = plan.table.loc[keep, ["lhs", "op", "rhs", "level"]].reset_index(drop=True)
    out.insert(4, "std.lv", std_lv[:, keep].mean(0))
    return pd.concat([out, _summary(std_all[:, keep], interval).rename(columns={"mean": "std.all"})], axis=1)


def r_squared_table(theta: np.ndarray, plan: Plan, data: ClusteredData, interval: float = 0.95,
                    random: np.ndarray | None = None) -> pd.DataFrame:
    """variable, level and the posterior summary of R² = 1 − Ψ_vv / Σ_vv of every endogenous variable
    (one that a variable or covariate of its level predicts); averaged over clusters where the
    level has random parameters."""
    rows, draws = [], []
    for label, level, sigma, psi, _ in _level_covariances(theta, plan, data, random):
        predicted = level.beta.pattern.any(axis=1) | level.gamma.pattern.any(axis=1)
        for kind in ("beta", "gamma"):
            if kind in level.random:
                predicted[level.random[kind].rows] = True
        for k in np.flatnonzero(predicted):
            rows.append((level.variables[k], label))
            draws.append(_over_clusters(1 - psi[..., k, k] / sigma[..., k, k]))
    out = pd.DataFrame(rows, columns=["variable", "level"])
    return pd.concat([out, _summary(np.column_stack(draws) if draws else np.zeros((len(theta), 0)), interval)], axis=1)


def icc_table(theta: np.ndarray, plan: Plan, data: ClusteredData, interval: float = 0.95,
              random: np.ndarray | None = None) -> pd.DataFrame:
    """variable and the posterior summary of its ICC = Σ_B,vv / (Σ_W,vv + Σ_B,vv), for every observed
    variable with parts at both levels of a two-level model (Σ_W,vv averaged over clusters where
    the within level has random parameters)."""
    if len(plan.levels) != 2:
        raise UnavailableError("ICCs are defined for two-level models.")
    (_, within, sigma_w, _, _), (_, between, sigma_b, _, _) = _level_covariances(theta, plan, data, random)
    names = [v for v in within.roles.observed if v in between.roles.observed]
    draws = []
    for v in names:
        w, b = within.variables.index(v), between.variables.index(v)
        draws.append(sigma_b[:, b, b] / (_over_clusters(sigma_w[..., w, w]) + sigma_b[:, b, b]))
    return pd.concat([pd.DataFrame({"variable": names}),
                      _summary(np.column_stack(draws) if draws else np.zeros((len(theta), 0)), interval)], axis=1)


def _summary(draws: np.ndarray, interval: float) -> pd.DataFrame:
    """Posterior mean, SD and equal-tailed interval of each column of ``draws`` (draws, k)."""
    tail = 100 * (1 - interval) / 2
    with np.errstate(invalid="ignore"):
        return pd.DataFrame({"mean": draws.mean(0), "sd": draws.std(0),
                             f"eti_{tail:g}%": np.percentile(draws, tail, axis=0),
                             f"eti_{100 - tail:g}%": np.percentile(draws, 100 - tail, axis=0)})


def _row_values(theta: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """Every row's value per draw: θ for free rows, the fixed value otherwise."""
    free = table["free"].to_numpy()
    values = np.broadcast_to(table["fixed"].to_numpy(dtype=float), (len(theta), len(table))).copy()
    values[:, free > 0] = theta[:, free[free > 0] - 1]
    return values


def fill_draws(spec: MatrixSpec, theta: np.ndarray) -> np.ndarray:
    """The matrix per draw (draws, rows, cols)."""
    m = np.broadcast_to(spec.base, (len(theta), *spec.base.shape)).copy()
    m[:, spec.rows, spec.cols] = theta[:, spec.index]
    return m


def _level_covariances(theta: np.ndarray, plan: Plan, data: ClusteredData, random: np.ndarray | None = None
                       ) -> list[tuple]:
    """Per level: its label, plan, Σ per draw of all its variables followed by its covariates
    (module docstring), Ψ per draw, and — for the level with random parameters — its B, Γ and Ψ
    per draw and cluster (then Σ and Ψ have a cluster axis too), else None."""
    if plan.random and random is None:
        raise UnavailableError("models with random parameters need their cluster values to be standardized.")
    out = []
    for rank, (label, level) in enumerate(plan.levels.items()):
        covariates = _covariate_cov(data, level, rank, plan.two_level)
        matrices = _cluster_matrices(level, theta, random) if level.random or level.random_covariances else None
        beta, gamma, psi = ((matrices[m] for m in ("beta", "gamma", "psi")) if matrices
                            else (fill_draws(getattr(level, m), theta) for m in ("beta", "gamma", "psi")))
        counts = []
        if rank == 0:  # non-Gaussian responses: the latent response's residual, or no scale at all (counts)
            for k, name in enumerate(level.roles.observed):
                family = parse_family(plan.families[name]) if name in plan.families else None
                if family is not None and family.name in ("bernoulli", "ordinal"):
                    psi[..., k, k] = LATENT_RESPONSE_VARIANCE[family.link]
                elif family is not None and not family.has_scale:  # a count or gamma response (ψ: a dispersion)
                    psi[..., k, k] = 0.0
                    counts.append(k)
        t = np.linalg.inv(np.eye(beta.shape[-1]) - beta)
        sigma = t @ (gamma @ covariates @ np.swapaxes(gamma, -1, -2) + psi) @ np.swapaxes(t, -1, -2)
        sigma[..., counts, counts] = np.nan
        out.append((label, level, _with_covariates(sigma, covariates), psi, matrices))
    return out


def _cluster_matrices(level: LevelPlan, theta: np.ndarray, random: np.ndarray) -> dict[str, np.ndarray]:
    """B, Γ and Ψ of a level with random parameters, per draw and cluster (draws, clusters, …), by
    :func:`~..likelihood.moments.level_matrices` compiled once."""
    theta_in, random_in = pt.vector("theta"), pt.matrix("random")
    function = pytensor.function([theta_in, random_in], list(level_matrices(level, theta_in, random_in)))
    draws = [function(t, r) for t, r in zip(theta, random)]
    n_clusters = random.shape[1]
    return {name: np.stack([np.broadcast_to(d[k], (n_clusters, *d[k].shape[-2:])) for d in draws])
            for k, name in enumerate(("beta", "gamma", "psi"))}


def _with_covariates(sigma: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """Σ (draws, m, m) with the covariates' S_x appended as a diagonal block (their covariances
    with the variables are not needed here)."""
    m, q = sigma.shape[-1], len(covariates)
    out = np.zeros((*sigma.shape[:-2], m + q, m + q))
    out[..., :m, :m] = sigma
    out[..., m:, m:] = covariates
    return out


def _sds(sigma: np.ndarray, level: LevelPlan) -> dict[str, np.ndarray]:
    """The SD per draw of each variable and covariate of a level, by name."""
    names = [*level.variables, *level.roles.covariates]
    return {v: np.sqrt(sigma[..., k, k]) for k, v in enumerate(names)}


def _covariate_cov(data: ClusteredData, level: LevelPlan, rank: int, multilevel: bool) -> np.ndarray:
    """S_x of a level's covariates: pooled within clusters at the within level of a multilevel
    model, over the level's cluster values above it (ML divisors, as lavaan's)."""
    names = list(level.roles.covariates)
    if not names:
        return np.zeros((0, 0))
    if rank == 0 and multilevel:
        values = data.matrix(names) - data.cluster_means(names)[data.cluster_index]
        return values.T @ values / (data.n_rows - data.n_clusters)
    values = data.level_values(names, rank) if rank else data.matrix(names)
    return np.atleast_2d(np.cov(values.T, bias=True))
