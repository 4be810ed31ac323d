"""Latent scores: every latent variable of every unit at every level, with its posterior spread.

These are GLLAMM's empirical Bayes predictions with the uncertainty of θ carried along.
The conditional strategy samples the latent variables, so their draws are in the posterior
(``scores_<level>``). The marginal strategy integrates them out; here they are drawn after
sampling, once per posterior draw of θ, from their conditional distribution given the data,
top level first. An upper level's deviations δ_g ~ N(0, L Lᵀ) (all its variables: random
intercepts, factors) reach its units' residuals as r_u = Z δ_g + e_u, e_u ~ N(0, P_u⁻¹), with
Z placing the level's parts of the observed variables; with M_g = Σ_u Zᵀ P_u Z,
h_g = Σ_u Zᵀ P_u r_u and K_g = I + Lᵀ M_g L (Woodbury, as in :mod:`.likelihood.woodbury`),

    δ_g | r ~ N(L K_g⁻¹ Lᵀ h_g, L K_g⁻¹ Lᵀ).

* Two levels: the units are a cluster's rows of one missingness pattern o, merged (residual
  their mean, precision n_jo P_o, P_o the inverse of the within covariance H over the
  observed cells, zero elsewhere); cluster-level variables are conditioned on first, exactly.
* Three levels: a school's units are its classes' mean vectors, with noise
  V_n = H/n + Z_2 G_2 Z_2ᵀ (:mod:`.likelihood.nested`); then each class is a group of one unit
  (its mean, noise H/n) with the school's part removed. A class's score of a variable that
  also has a school part includes it (as the conditional strategy's do).

Last, each unit's within latent variables η given its observed cells o and residual
r_i = y_i − E[y_i | upper parts, x_i]:

    η_i | y_i ~ N(E η_i + H_ηo H_oo⁻¹ r_io, H_ηη − H_ηo H_oo⁻¹ H_oη)

(a single-level model is this step alone).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import xarray as xr

from ..data.clustered import ClusteredData, coordinate, unit_dim
from ..errors import UnavailableError
from ..likelihood.moments import implied_moments
from ..spec.plan import LevelPlan, Plan
from .clusters import summarise

MAX_DRAWS = 1000  # posterior draws of θ used to draw the scores of a marginal fit


def latent_draws(posterior: xr.Dataset, plan: Plan, data: ClusteredData, seed: int | None = None
                 ) -> dict[str, xr.DataArray]:
    """Per level (``single`` for a single-level model) the draws (chain, draw, unit, variable) of its
    latent variables, units named by their ids: the sampled ones, else drawn once per posterior draw
    of θ (at most :data:`MAX_DRAWS`, the ``draw`` coordinate saying which) as the module docstring says."""
    draws = {name.removeprefix("scores_"): posterior[name] for name in posterior.data_vars if name.startswith("scores_")}
    if not draws:
        draws = _marginal_draws(posterior, plan, data, np.random.default_rng(seed))
    ids = {"row": data.row_labels, "cluster": data.cluster_ids,
           **{unit_dim(rank): data.level_ids(rank) for rank in range(2, data.n_levels)}}
    return {level: values.assign_coords({values.dims[2]: coordinate(ids[values.dims[2]])}).rename(
        {values.dims[2]: "unit", values.dims[3]: "variable"}) for level, values in draws.items()}


def latent_scores(posterior: xr.Dataset, plan: Plan, data: ClusteredData, seed: int | None = None) -> pd.DataFrame:
    """Per level, unit and latent variable: posterior mean, SD and 95% interval (module docstring)."""
    frames = [summarise(values).assign(level="" if level == "single" else level)
              for level, values in latent_draws(posterior, plan, data, seed).items()]
    if not frames:
        raise UnavailableError("this model has no latent variables to score.")
    return pd.concat(frames, ignore_index=True)[["level", "unit", "variable", "mean", "sd", "eti_2.5%", "eti_97.5%"]]


def _marginal_draws(posterior: xr.Dataset, plan: Plan, data: ClusteredData, rng: np.random.Generator
                    ) -> dict[str, xr.DataArray]:
    """Per level (lowest first) the draws (chain, draw, unit, variable) of its latent variables
    (lowest level: those after the observed ones; upper levels: all but the level's own
    observed variables), one per used draw of θ (and of the random parameters, given which
    the rest is Gaussian)."""
    theta = posterior["theta"].transpose("chain", "draw", "parameter")
    step = -(-theta.sizes["chain"] * theta.sizes["draw"] // MAX_DRAWS)
    theta = theta.isel(draw=slice(None, None, step))
    moments = _moments_function(plan)
    draw = {1: _single_level_draw, 2: _two_level_draw, 3: _three_level_draw}[len(plan.levels)]
    points = theta.values.reshape(-1, theta.sizes["parameter"])
    if plan.random:
        effects = posterior["random_effects"].transpose("chain", "draw", "cluster", "random").isel(draw=slice(None, None, step))
        effects = effects.values.reshape(len(points), *effects.shape[2:])
        draws = [draw(plan, data, moments(point, r), rng, r) for point, r in zip(points, effects)]
    else:
        draws = [draw(plan, data, moments(point), rng) for point in points]
    lowest = next(iter(plan.levels.values())).roles
    out = {}
    for k, (label, level) in enumerate(plan.levels.items()):
        names = level.variables[len(level.roles.observed):] if k == 0 else level.variables  # the columns of d[k]
        keep = [i for i, v in enumerate(names) if k == 0 or v not in level.roles.observed or v in lowest.observed]
        if keep:
            values = np.stack([d[k][:, keep] for d in draws])
            out[label or "single"] = xr.DataArray(
                values.reshape(theta.sizes["chain"], theta.sizes["draw"], *values.shape[1:]),
                dims=("chain", "draw", unit_dim(k), f"{label or 'single'}_variable"),
                coords={"chain": theta["chain"], "draw": theta["draw"],
                        f"{label or 'single'}_variable": [names[i] for i in keep]})
    return out


def _single_level_draw(plan: Plan, data: ClusteredData, moments: list[np.ndarray], rng) -> list[np.ndarray]:
    """One draw of every row's latent variables."""
    (level,) = plan.levels.values()
    return [_draw_within(moments[:3], data, level, 0.0, rng)]


def _two_level_draw(plan: Plan, data: ClusteredData, moments: list[np.ndarray], rng,
                    random: np.ndarray | None = None) -> list[np.ndarray]:
    """One draw of every cluster's between variables b_j and then of every row's within latent
    variables (module docstring), given the clusters' random parameters ``random`` (J, K) if any:
    the within moments are then cluster-specific, and b_j is conditioned on r_j."""
    (h, mu_w, pi_w), (g, mu_b, pi_b) = _per_cluster(moments[:3]), moments[3:]
    within, between = plan.levels.values()
    p = len(within.roles.observed)
    z = _placement(within.roles.observed, between.variables)
    mean = mu_b + data.cluster_values(list(between.roles.covariates)) @ pi_b.T
    only = [v for v in between.roles.observed if v not in within.roles.observed]
    known = [between.variables.index(v) for v in (*only, *(r.name for r in plan.random))]
    if known:  # cluster-level variables and random parameters are given: condition on them exactly
        values = np.hstack([data.cluster_values(only), np.zeros((data.n_clusters, 0)) if random is None else random])
        gain = np.linalg.solve(g[np.ix_(known, known)], g[known]).T
        mean = mean + (values - mean[:, known]) @ gain.T
        g = g - gain @ g[known]
    y = data.matrix(list(within.roles.observed))
    observed = ~np.isnan(y)
    key = _key(h, data.cluster_index)
    expected = _mean(mu_w, pi_w, data, within, key)[:, :p] + (mean @ z.T)[data.cluster_index]
    residual = np.where(observed, y - expected, 0.0)
    patterns, pattern = np.unique(observed, axis=0, return_inverse=True)
    precision = np.stack([_observed_inverse(h[:, :p, :p], o) for o in patterns])          # (patterns, J or 1, p, p)
    units, unit = np.unique(np.column_stack([data.cluster_index, pattern.ravel(), key]), axis=0, return_inverse=True)
    unit = unit.ravel()
    counts = np.bincount(unit).astype(float)
    sums = np.zeros((len(units), p))
    np.add.at(sums, unit, residual)
    b = mean + _effect_draw(_root(g), z, counts[:, None, None] * precision[units[:, 1], units[:, 2]],
                            sums / counts[:, None], units[:, 0], rng)
    return [_draw_within((h, mu_w, pi_w), data, within, (b @ z.T)[data.cluster_index], rng), b]


def _three_level_draw(plan: Plan, data: ClusteredData, moments: list[np.ndarray], rng) -> list[np.ndarray]:
    """One draw of the latent variables of units, classes and schools (module docstring)."""
    (h, mu_1, pi_1), (g_2, mu_2, pi_2), (g_3, mu_3, pi_3) = (moments[3 * k:3 * k + 3] for k in range(3))
    within, middle, top = plan.levels.values()
    p = len(within.roles.observed)
    z_2, z_3 = (_placement(within.roles.observed, level.variables) for level in (middle, top))
    school = data.upper.parent
    class_mean = mu_2 + data.cluster_values(list(middle.roles.covariates)) @ pi_2.T
    school_mean = mu_3 + data.level_values(list(top.roles.covariates), 2) @ pi_3.T
    x_bar = data.cluster_means(list(within.roles.covariates))
    residual = (data.cluster_means(list(within.roles.observed)) - mu_1[:p] - x_bar @ pi_1[:p].T
                - class_mean @ z_2.T - school_mean[school] @ z_3.T)
    noise = h[None, :p, :p] / data.sizes.astype(float)[:, None, None]
    schools = _effect_draw(_root(g_3), z_3, np.linalg.inv(noise + z_2 @ g_2 @ z_2.T), residual, school, rng)
    classes = _effect_draw(_root(g_2), z_2, np.linalg.inv(noise), residual - schools[school] @ z_3.T,
                           np.arange(data.n_clusters), rng)
    shift = ((class_mean + classes) @ z_2.T + (school_mean + schools)[school] @ z_3.T)[data.cluster_index]
    above = (school_mean + schools)[school] @ _placement(middle.variables, top.variables).T  # school parts
    return [_draw_within(_per_cluster((h, mu_1, pi_1)), data, within, shift, rng), class_mean + classes + above,
            school_mean + schools]


def _per_cluster(moments) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cov, mean, coef) with a common leading cluster axis: of length J when any of them depends on
    the random parameters, else of length 1, shared by every cluster."""
    cov, mean, coef = (m if m.ndim == rank + 1 else m[None] for m, rank in zip(moments, (2, 1, 2)))
    n = max(len(cov), len(mean), len(coef))
    return tuple(np.broadcast_to(m, (n, *m.shape[1:])) for m in (cov, mean, coef))


def _key(cov: np.ndarray, cluster_index: np.ndarray) -> np.ndarray:
    """Per row, the index of its moments along the leading axis (its cluster, or 0 when shared)."""
    return cluster_index if len(cov) > 1 else np.zeros_like(cluster_index)


def _mean(mu: np.ndarray, pi: np.ndarray, data: ClusteredData, level: LevelPlan, key: np.ndarray) -> np.ndarray:
    """E[v_i | x_i] = μ + Π x_i per row (N, m), with each row's moments."""
    return mu[key] + np.einsum("nmq,nq->nm", pi[key], data.matrix(list(level.roles.covariates)))


def _draw_within(moments: tuple, data: ClusteredData, level: LevelPlan, shift: np.ndarray | float,
                 rng: np.random.Generator) -> np.ndarray:
    """One draw of every row's latent variables η_i | y_io, upper parts (N, m − p), per missingness
    pattern o; ``moments`` with a leading cluster axis (:func:`_per_cluster`), ``shift`` the rows'
    upper-level parts of the observed variables."""
    h, mu, pi = _per_cluster(moments)
    p, key = len(level.roles.observed), _key(h, data.cluster_index)
    mean = _mean(mu, pi, data, level, key)
    y = data.matrix(list(level.roles.observed))
    observed = ~np.isnan(y)
    residual = np.where(observed, y - shift - mean[:, :p], 0.0)
    draws = np.empty((data.n_rows, h.shape[-1] - p))
    patterns, pattern = np.unique(observed, axis=0, return_inverse=True)
    for o, rows in zip(patterns, (pattern.ravel() == k for k in range(len(patterns)))):
        gain = np.swapaxes(_observed_inverse(h[:, :p, :p], o) @ h[:, :p, p:], 1, 2)     # (J or 1, m − p, p)
        root = _root(h[:, p:, p:] - gain @ h[:, :p, p:])
        noise = rng.standard_normal((rows.sum(), h.shape[-1] - p))
        draws[rows] = (mean[rows, p:] + np.einsum("nab,nb->na", gain[key[rows]], residual[rows])
                       + np.einsum("nab,nb->na", root[key[rows]], noise))
    return draws


def _observed_inverse(cov: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """The inverse of ``cov`` (..., p, p) over the ``observed`` positions, zero in the other rows and columns."""
    out = np.zeros_like(cov)
    at = np.flatnonzero(observed)
    out[..., at[:, None], at] = np.linalg.inv(cov[..., at[:, None], at])
    return out


def _placement(observed: tuple[str, ...], variables: tuple[str, ...]) -> np.ndarray:
    """Z (p, m): Z[a, k] = 1 where the upper level's variable k is the part of observed variable a."""
    z = np.zeros((len(observed), len(variables)))
    for k, v in enumerate(variables):
        if v in observed:
            z[observed.index(v), k] = 1.0
    return z


def _effect_draw(root: np.ndarray, z: np.ndarray, precision: np.ndarray, residual: np.ndarray, group: np.ndarray,
                 rng) -> np.ndarray:
    """One draw of each group's effect δ_g ~ N(0, L Lᵀ) given its units' residuals r_u = Z δ_g + e_u,
    e_u ~ N(0, P_u⁻¹): δ_g | r ~ N(L K_g⁻¹ Lᵀ h_g, L K_g⁻¹ Lᵀ), K_g = I + Lᵀ M_g L (module docstring)."""
    n_groups, q = group.max() + 1, root.shape[1]
    weighted = np.einsum("pa,upr->uar", z, precision)                     # Zᵀ P_u
    m = np.zeros((n_groups, z.shape[1], z.shape[1]))
    h = np.zeros((n_groups, z.shape[1]))
    np.add.at(m, group, weighted @ z)
    np.add.at(h, group, np.einsum("uar,ur->ua", weighted, residual))
    k = np.eye(q) + np.einsum("ba,gbc,cd->gad", root, m, root)
    chol = np.linalg.cholesky(k)
    mean = np.linalg.solve(k, (h @ root)[:, :, None])[:, :, 0]
    spread = np.linalg.solve(np.swapaxes(chol, 1, 2), rng.standard_normal((n_groups, q))[:, :, None])[:, :, 0]
    return (mean + spread) @ root.T


def _moments_function(plan: Plan):
    """(θ, random parameters r (J, K) if the model has them) → [cov, mean, coef] of all variables
    of each level, lowest first (the lowest level's per cluster given r), compiled once."""
    theta, random = pt.vector("theta"), pt.matrix("random")
    outputs = []
    for k, level in enumerate(plan.levels.values()):
        m = implied_moments(level, theta, random if k == 0 and plan.random else None, select=np.arange(len(level.variables)))
        outputs += [m.cov, m.mean, m.coef]
    function = pytensor.function([theta, random] if plan.random else [theta], outputs, on_unused_input="ignore")
    return lambda point, *r: function(np.asarray(point, dtype=float), *r)


def _root(cov: np.ndarray) -> np.ndarray:
    """A square root R (R Rᵀ = cov) of a covariance that may be singular (an observed component)."""
    values, vectors = np.linalg.eigh(0.5 * (cov + np.swapaxes(cov, -1, -2)))
    return vectors * np.sqrt(np.clip(values, 0.0, None))[..., None, :]
