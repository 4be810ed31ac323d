"""Latent scores: every latent variable of every unit at every level, with its posterior spread.

These are GLLAMM's empirical Bayes predictions with the uncertainty of θ carried along.
The conditional strategy samples the latent variables, so their draws are in the posterior
(``scores_<level>``). The marginal strategy integrates them out; here they are drawn after
sampling, once per posterior draw of θ, from their conditional distribution given the data.
For two levels, with b_j the cluster's between variables (random intercepts, factors) and
d_j its vector of cluster means and cluster-level values (:mod:`.likelihood.gaussian`),

    b_j | y_j ~ N(m_j + K_n (d_j − E d_j), G − K_n Cov(d_j, b_j)),   K_n = Cov(b_j, d_j) V_n⁻¹,

and then each unit's within latent variables η_ij given its residual r_ij = y_ij − E[y_ij | b_j, x_ij]:

    η_ij | y_ij, b_j ~ N(E η_ij + H_ηy H_yy⁻¹ r_ij, H_ηη − H_ηy H_yy⁻¹ H_yη),

with G and H the full model-implied covariances of the between and within variables
(a single-level model is the second step alone, with b_j = 0).

For three levels the same runs top down. A school's deviation δ_k ~ N(0, G_3) reaches each of
its classes' mean vectors, r_jk = d_jk − E d_jk = Z_3 δ_k + ε_jk with ε_jk ~ N(0, V_n),
V_n = H/n + E_2 G_2 E_2ᵀ (:mod:`.likelihood.nested`); with L Lᵀ = G_3, M_k = Σ_j Z_3ᵀ V_n⁻¹ Z_3,
h_k = Σ_j Z_3ᵀ V_n⁻¹ r_jk and K_k = I + Lᵀ M_k L (:mod:`.likelihood.woodbury`),

    δ_k | y ~ N(L K_k⁻¹ Lᵀ h_k, L K_k⁻¹ Lᵀ).

Each class's deviation then follows the same formula with the school's part removed from r_jk
and noise H/n, and the units' latent variables the second step above.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import xarray as xr

from .clusters import summarise
from .data import ClusteredData, coordinate
from .likelihood.gaussian import Layout, cluster_design
from .moments import implied_moments
from .plan import Plan
from .table import BETWEEN, SINGLE_LEVEL, WITHIN

MAX_DRAWS = 1000  # posterior draws of θ used to draw the scores of a marginal fit


def latent_scores(posterior: xr.Dataset, plan: Plan, data: ClusteredData, seed: int | None = None) -> pd.DataFrame:
    """Per level, unit and latent variable: posterior mean, SD and 95% interval (module docstring)."""
    draws = {name.removeprefix("scores_"): posterior[name] for name in posterior.data_vars if name.startswith("scores_")}
    if not draws:
        draws = _marginal_draws(posterior, plan, data, np.random.default_rng(seed))
    frames = []
    for level, values in draws.items():
        unit, variable = values.dims[2:]
        ids = coordinate({"row": data.row_labels, "cluster": data.cluster_ids, "upper": getattr(data.upper, "ids", None)}[unit])
        table = summarise(values.assign_coords({unit: ids}).rename({unit: "unit", variable: "variable"}))
        frames.append(table.assign(level="" if level == "single" else level))
    if not frames:
        raise ValueError("this model has no latent variables to score.")
    return pd.concat(frames, ignore_index=True)[["level", "unit", "variable", "mean", "sd", "eti_2.5%", "eti_97.5%"]]


def _marginal_draws(posterior: xr.Dataset, plan: Plan, data: ClusteredData, rng: np.random.Generator
                    ) -> dict[str, xr.DataArray]:
    """Draws (chain, draw, unit, variable) of each level's latent variables, one per used draw of θ."""
    if plan.random or data.has_missing:
        raise ValueError("latent scores are not available yet for models with random parameters or missing cells.")
    theta = posterior["theta"].transpose("chain", "draw", "parameter")
    step = -(-theta.sizes["chain"] * theta.sizes["draw"] // MAX_DRAWS)
    theta = theta.isel(draw=slice(None, None, step))
    moments = _moments_function(plan)
    if plan.three_level:
        return _stack(theta, [_three_level_draw(plan, data, moments(point), rng)
                              for point in theta.values.reshape(-1, theta.sizes["parameter"])], plan)
    layout = Layout.from_plan(plan)
    lowest = plan.levels[WITHIN if plan.two_level else SINGLE_LEVEL]
    p = len(lowest.roles.observed)
    between_kept = _between_latent(plan, layout)
    out = {"within": [], "between": []}
    for point in theta.values.reshape(-1, theta.sizes["parameter"]):
        levels = dict(zip(plan.levels, (moments(point)[3 * k:3 * k + 3] for k in range(len(plan.levels)))))
        shift = np.zeros((data.n_rows, p))
        if plan.two_level:
            b = _draw_between(levels, layout, data, rng)
            out["between"].append(b[:, between_kept])
            parts = [layout.top.index(v) for v in layout.within if v in layout.top]
            shift[:, [layout.within.index(v) for v in layout.within if v in layout.top]] = b[data.cluster_index][:, parts]
        out["within"].append(_draw_within(levels[lowest.roles.level], p, data, lowest, shift, rng))
    shape = (theta.sizes["chain"], theta.sizes["draw"])
    names = {"within": [v for v in lowest.variables[p:]],
             "between": [plan.levels[BETWEEN].variables[k] for k in between_kept] if plan.two_level else []}
    units = {"within": "row", "between": "cluster"}
    level_name = {"within": lowest.roles.level or "single", "between": BETWEEN}
    return {level_name[k]: xr.DataArray(np.stack(v).reshape(*shape, *v[0].shape),
                                        dims=("chain", "draw", units[k], f"{k}_variable"),
                                        coords={f"{k}_variable": names[k]})
            for k, v in out.items() if names[k]}


def _stack(theta: xr.DataArray, draws: list[list[np.ndarray]], plan: Plan) -> dict[str, xr.DataArray]:
    """Per level (lowest first) the draws (chain, draw, unit, variable) of its latent variables
    (within: those after the observed ones; upper levels: all)."""
    shape = (theta.sizes["chain"], theta.sizes["draw"])
    out = {}
    for k, (label, level) in enumerate(plan.levels.items()):
        names = level.variables[len(level.roles.observed):] if k == 0 else level.variables
        if names:
            values = np.stack([d[k] for d in draws])
            out[label] = xr.DataArray(values.reshape(*shape, *values.shape[1:]), dims=("chain", "draw", _UNITS[k], f"{label}_variable"),
                                      coords={f"{label}_variable": list(names)})
    return out


_UNITS = ("row", "cluster", "upper")  # the unit of each level, lowest first


def _three_level_draw(plan: Plan, data: ClusteredData, moments: list[np.ndarray], rng) -> list[np.ndarray]:
    """One draw of the latent variables of units, classes and schools (module docstring)."""
    (h, mu_1, pi_1), (g_2, mu_2, pi_2), (g_3, mu_3, pi_3) = (moments[3 * k:3 * k + 3] for k in range(3))
    within, middle, top = (lp.roles for lp in plan.levels.values())
    p = len(within.observed)
    z_2, z_3 = (_placement(within.observed, level.variables) for level in list(plan.levels.values())[1:])
    school = data.upper.parent
    class_mean = mu_2 + data.cluster_values(list(middle.covariates)) @ pi_2.T
    school_mean = mu_3 + _first(data.cluster_values(list(top.covariates)), school, data.upper.n_clusters) @ pi_3.T
    x_bar = data.cluster_means(list(within.covariates))
    residual = (data.cluster_means(list(within.observed)) - mu_1[:p] - x_bar @ pi_1[:p].T
                - class_mean @ z_2.T - school_mean[school] @ z_3.T)
    n = data.sizes.astype(float)[:, None, None]
    noise = h[None, :p, :p] / n
    schools = _effect_draw(_root(g_3), z_3, np.linalg.inv(noise + z_2 @ g_2 @ z_2.T), residual, school, rng)
    classes = _effect_draw(_root(g_2), z_2, np.linalg.inv(noise), residual - schools[school] @ z_3.T,
                           np.arange(data.n_clusters), rng)
    shift = ((class_mean + classes) @ z_2.T + (school_mean + schools)[school] @ z_3.T)[data.cluster_index]
    units = _draw_within((h, mu_1, pi_1), p, data, plan.levels[within.level], shift, rng)
    return [units, class_mean + classes, school_mean + schools]


def _placement(observed: tuple[str, ...], variables: tuple[str, ...]) -> np.ndarray:
    """Z (p, m): Z[a, k] = 1 where the upper level's variable k is the part of observed variable a."""
    z = np.zeros((len(observed), len(variables)))
    for k, v in enumerate(variables):
        if v in observed:
            z[observed.index(v), k] = 1.0
    return z


def _first(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """The row of ``values`` (one per member) of each group's first member (groups are constant)."""
    first = np.zeros(n_groups, dtype=np.int64)
    first[group[::-1]] = np.arange(len(group))[::-1]
    return values[first]


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
    """θ → (cov, mean, coef) of all variables of each level, compiled once."""
    theta = pt.vector("theta")
    outputs = []
    for level in plan.levels.values():
        m = implied_moments(level, theta, select=np.arange(len(level.variables)))
        outputs += [m.cov, m.mean, m.coef]
    function = pytensor.function([theta], outputs)
    return lambda point: function(np.asarray(point, dtype=float))


def _between_latent(plan: Plan, layout: Layout) -> list[int]:
    """Positions of the between variables that are latent: all but the cluster-level observed ones."""
    if not plan.two_level:
        return []
    variables = plan.levels[BETWEEN].variables
    return [k for k, v in enumerate(variables) if not (v in layout.top and v not in layout.within)]


def _draw_between(levels: dict, layout: Layout, data: ClusteredData, rng: np.random.Generator) -> np.ndarray:
    """One draw of every cluster's between variables b_j | y_j (J, m_b)."""
    (h, mu_w, pi_w), (g, mu_b, c_b) = levels[WITHIN], levels[BETWEEN]
    p_w, p_b = len(layout.within), len(layout.top)
    e_w, e_b = layout.embedding(layout.within), layout.embedding(layout.top)
    d, x_means, w = cluster_design(layout, data)
    mean_b = mu_b + w @ c_b.T
    expected = (mu_w[:p_w] + x_means @ pi_w[:p_w].T) @ e_w.T + mean_b[:, :p_b] @ e_b.T
    cross = g[:, :p_b] @ e_b.T                                                    # Cov(b_j, d_j)
    draws = np.empty_like(mean_b)
    for n in np.unique(data.sizes):
        at = data.sizes == n
        v = e_w @ h[:p_w, :p_w] @ e_w.T / n + e_b @ g[:p_b, :p_b] @ e_b.T
        gain = np.linalg.solve(v, cross.T).T
        root = _root(g - gain @ cross.T)
        noise = rng.standard_normal((at.sum(), len(g)))
        draws[at] = mean_b[at] + (d[at] - expected[at]) @ gain.T + noise @ root.T
    return draws


def _draw_within(moments: tuple, p: int, data: ClusteredData, level, shift: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """One draw of every unit's latent variables η_ij | y_ij, b_j (N, m − p)."""
    h, mu, pi = moments
    x = data.matrix(list(level.roles.covariates))
    mean = mu + x @ pi.T
    residual = data.matrix(list(level.roles.observed)) - shift - mean[:, :p]
    gain = np.linalg.solve(h[:p, :p], h[:p, p:]).T
    root = _root(h[p:, p:] - gain @ h[:p, p:])
    return mean[:, p:] + residual @ gain.T + rng.standard_normal((data.n_rows, len(h) - p)) @ root.T


def _root(cov: np.ndarray) -> np.ndarray:
    """A square root R (R Rᵀ = cov) of a covariance that may be singular (an observed component)."""
    values, vectors = np.linalg.eigh(0.5 * (cov + cov.T))
    return vectors * np.sqrt(np.clip(values, 0.0, None))
