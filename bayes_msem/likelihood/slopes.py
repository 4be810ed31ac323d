"""Random slopes on observed within covariates, integrated out analytically (as lme4 does).

When every random parameter is a slope on an observed within covariate, the cluster's
between vector b_j = (u_j, s_j) (the between parts of the within variables and the random
slopes) is normal, b_j ~ N(m_j, G) with m_j = μ_b + C_b w_j and G = L Lᵀ, and each unit's
within variables are linear in it:

    y_ij = μ_W + Π_W x_ij + Z_ij b_j + e_ij,   e_ij ~ N(0, Σ_W),   Z_ij = Σ_l Q_l ξ_ijl,

with ξ_ij = (1, x_ij), Q_0 placing the random intercepts and Q_{1+c} the slopes on covariate c
(column T e_ℓ for a slope of ℓ: its total effect on y). With r_ij = y_ij − μ_W − Π_W x_ij − Z_ij m_j,
M_j = Σ_i Z_ijᵀ Σ_W⁻¹ Z_ij, h_j = Σ_i Z_ijᵀ Σ_W⁻¹ r_ij, K_j = I + Lᵀ M_j L and v_j = Lᵀ h_j
(:mod:`.woodbury`),

    log p(y_j) = Σ_i log N(r_ij; 0, Σ_W) − ½ log|K_j| + ½ v_jᵀ K_j⁻¹ v_j,

and b_j | y_j ~ N(m_j + L K_j⁻¹ v_j, L K_j⁻¹ Lᵀ), from which the clusters' slopes are drawn
after sampling. Everything is a function of each cluster's cross-products of (y, 1, x), so
nothing per cluster is sampled. With missing cells the sums run over each row's observed
cells (units of one cluster and missingness pattern, :mod:`.woodbury`).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from ..data.clustered import ClusteredData
from ..spec.plan import Features, Plan, RandomEntries
from ..spec.table import WITHIN
from .gaussian import Layout, normal_loglik
from .moments import Moments, between_with_random, implied_moments, total_effects
from .strategy import MARGINAL, Strategy
from .woodbury import UnitStatistics, effect_correction, padded, scatter_add

CONDITIONAL_MEAN, CONDITIONAL_CHOL = "random_effects_mean", "random_effects_chol"


def _designs(layout: Layout, total_effects: pt.TensorVariable, slopes: RandomEntries, n_between: int) -> pt.TensorVariable:
    """Q (1 + q, p_w, n_b): Q_0 maps each random intercept u to its within variable, Q_{1+c} each
    slope on covariate c to the column of total effects T e_ℓ of its outcome ℓ."""
    p, q, n_u = len(layout.within), len(layout.within_covariates), len(layout.top)
    intercepts = np.zeros((1 + q, p, n_between))
    intercepts[0, [layout.within.index(v) for v in layout.top], np.arange(n_u)] = 1.0
    return pt.set_subtensor(pt.as_tensor_variable(intercepts)[1 + slopes.cols, :, n_u + slopes.index],
                            total_effects[:, slopes.rows].T)


def slopes_loglik(layout: Layout, within: Moments, total_effects: pt.TensorVariable, between: Moments,
                  slopes: RandomEntries, stats: dict[str, pt.TensorVariable], missing: bool) -> pt.TensorVariable:
    """Σ_j log p(y_j) with the random intercepts and slopes integrated out (module docstring),
    from the cross-products of the units of :class:`.woodbury.UnitStatistics`: the clusters, or
    with ``missing`` cells each cluster's rows of one pattern, whose V is Σ_W over their observed
    cells (:func:`.woodbury.padded`).

    ``between`` holds the moments of (random intercepts, random slopes), in that order;
    adds the deterministics of b_j | y_j used to draw the clusters' values after sampling.
    """
    p = len(layout.within)
    design = _designs(layout, total_effects, slopes, len(layout.top) + len(slopes.index))
    mean = between.mean[None, :] + stats["covariates"] @ between.coef.T               # m_j
    fixed = pt.concatenate([within.mean[:, None], within.coef], axis=1)               # (μ_W, Π_W)
    coef = pt.concatenate([pt.broadcast_to(pt.eye(p), (mean.shape[0], p, p)),
                           -(fixed + pt.einsum("lpb,jb->jpl", design, mean))], axis=2)  # r_ij = A_j (y, ξ)_ij
    crossprod = stats["unit_crossprod"]
    xi = crossprod[:, p:, p:]                                                          # Σ_i ξ ξᵀ
    if missing:
        cluster, pattern = (pt.cast(stats[k], "int64") for k in ("unit_cluster", "unit_pattern"))
        coef = stats["observed"][pattern][:, :, None] * coef[cluster]
        cov, precision = padded(within.cov, stats["observed"])
        cov, weighted = cov[pattern], pt.einsum("tpr,lrb->tlpb", precision, design)[pattern]   # V⁺ Q_l per unit
        m = scatter_add(pt.einsum("ulm,lpa,umpb->uab", xi, design, weighted), cluster, mean.shape[0])
    else:  # the units are the clusters, in order, with V = Σ_W
        cov, weighted = within.cov, pt.einsum("pr,lrb->lpb", pt.linalg.inv(within.cov), design)
        m = pt.einsum("jlm,lpa,mpb->jab", xi, design, weighted)
    rows = stats["constant"] + normal_loglik(cov, stats["unit_counts"], coef, crossprod)
    residual_xi = (coef[:, :, :, None] * crossprod[:, None, :, p:]).sum(2)            # Σ_i r_ij ξ_ijᵀ
    if missing:
        h = scatter_add(pt.einsum("ulpb,upl->ub", weighted, residual_xi), cluster, mean.shape[0])
    else:
        h = pt.einsum("lpb,jpl->jb", weighted, residual_xi)
    chol = pt.linalg.cholesky(between.cov)
    correction, k, v = effect_correction(chol, m, h)
    _conditional(mean, chol, k, v)
    return rows + correction


def _conditional(mean, chol, k, v) -> None:
    """Deterministics of b_j | y_j: its mean m_j + L K_j⁻¹ v_j and a Cholesky factor L chol(K_j⁻¹)."""
    k_inverse = pt.linalg.inv(k)
    pm.Deterministic(CONDITIONAL_MEAN, mean + pt.einsum("ab,jbc,jc->ja", chol, k_inverse, v))
    pm.Deterministic(CONDITIONAL_CHOL, pt.einsum("ab,jbc->jac", chol, pt.linalg.cholesky(k_inverse)))


def draw_random_effects(posterior: xr.Dataset, clusters: np.ndarray, names: list[str], seed: int | None) -> xr.Dataset:
    """One draw of each cluster's random slopes (the last ``len(names)`` entries of b_j) from
    b_j | y_j per posterior draw, as ``random_effects`` (chain, draw, cluster, random); the helper
    deterministics are dropped."""
    mean, chol = posterior[CONDITIONAL_MEAN].values, posterior[CONDITIONAL_CHOL].values
    noise = np.random.default_rng(seed).standard_normal(mean.shape)
    draws = (mean + (chol @ noise[..., None])[..., 0])[..., -len(names):]
    effects = xr.DataArray(draws, dims=("chain", "draw", "cluster", "random"),
                           coords={"cluster": clusters, "random": names})
    return posterior.drop_vars([CONDITIONAL_MEAN, CONDITIONAL_CHOL]).assign(random_effects=effects)


class Slopes(Strategy):
    """Two Gaussian levels whose random parameters are all slopes on observed within covariates
    (and whose between level has no variables of its own), missing cells included."""

    name, kind = "slopes", MARGINAL

    def handles(self, features: Features) -> bool:
        return (features.levels == 2 and features.random and features.slopes_only
                and not (features.upper_only or features.non_gaussian or features.cross_level))

    def statistics(self, plan: Plan, data: ClusteredData) -> UnitStatistics:
        layout = Layout.from_plan(plan)
        return UnitStatistics.from_data(data, layout.within, layout.within_covariates, layout.top_covariates)

    def loglik(self, plan: Plan, theta: pt.TensorVariable, stats: dict) -> pt.TensorVariable:
        within = plan.levels[WITHIN]
        return slopes_loglik(Layout.from_plan(plan), implied_moments(within, theta), total_effects(within, theta),
                             between_with_random(plan, theta), within.random["gamma"], stats, plan.features.missing)
