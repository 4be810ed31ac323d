"""The hybrid strategy: sample the clusters' random parameters, integrate everything else.

The between level's variables (random intercepts, between factors, random
parameters r) are jointly normal given the cluster covariates w_j. The random
parameters are sampled non-centred, r_j = μ_r + C_r w_j + L z_j with L Lᵀ = Σ_rr and
z_j ~ N(0, I); the remaining between part is normal given them,

    u_j | r_j ~ N(μ_u + C_u w_j + K z_j, Σ_uu − K Kᵀ),   K = Σ_ur L⁻ᵀ,

and the within model, with cluster-specific B_j, Γ_j, Ψ_j, is linear and Gaussian,
so the marginal formula of :mod:`.marginal` holds cluster by cluster:

    log p(y_j | r_j) = −½ [(n_j − 1)(p_w log 2π + log|Σ_Wj|) + tr(Σ_Wj⁻¹ A_j S_j A_jᵀ)]
                       − (p_w/2) log n_j + log N(d_j; m_j, E_w Σ_Wj E_wᵀ / n_j + E_b Σ_u|r E_bᵀ)

with S_j the cluster's within scatter of (y, x) and A_j = [I, −C_Wj]. With missing cells
(:func:`hybrid_units_loglik`) the between parts integrate out by Woodbury instead, over units
of one cluster and missingness pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..data.clustered import ClusteredData, cluster_ids
from ..spec.plan import Features, Plan
from ..spec.table import BETWEEN, WITHIN
from .gaussian import Layout, Statistics, cluster_design, group_crossprod, normal_terms, within_deviations
from .kernel import LOG_2PI
from .moments import Moments, between_with_random, implied_moments, small_matmul
from .strategy import HYBRID, Strategy, local_dim
from .woodbury import UnitStatistics, effect_correction, padded, scatter_add


@dataclass(frozen=True)
class ClusterStatistics(Statistics):
    """Per cluster: size n_j, d_j, x̄_j, w_j and the within scatter S_j of (y, x)."""

    sizes: np.ndarray
    means: np.ndarray
    covariate_means: np.ndarray
    covariates: np.ndarray
    scatter: np.ndarray

    @classmethod
    def from_data(cls, layout: Layout, data: ClusteredData) -> ClusterStatistics:
        d, covariate_means, covariates = cluster_design(layout, data)
        deviations = within_deviations(layout, data)
        scatter = group_crossprod(deviations, data.cluster_index, data.n_clusters)
        return cls(data.sizes.astype(float), d, covariate_means, covariates, scatter)


@dataclass(frozen=True)
class BetweenGivenRandom:
    """The between level split at the random parameters: r_j and the rest's conditional moments."""

    random: pt.TensorVariable      # (J, k) the random parameters r_j
    mean: pt.TensorVariable        # (J, p_b) E[u_j | r_j]
    cov: pt.TensorVariable         # (p_b, p_b) Cov[u_j | r_j]


def split_between(between: Moments, n_observed: int, z: pt.TensorVariable, covariates: pt.TensorVariable) -> BetweenGivenRandom:
    """Non-centred random parameters r_j = μ_r + C_r w_j + L z_j and u_j | r_j (module docstring).

    ``between`` holds the moments of (observed between parts, random parameters), in that order.
    """
    p = n_observed
    cov, mean = between.cov, between.mean[None, :] + covariates @ between.coef.T
    chol = pt.linalg.cholesky(cov[p:, p:])
    random = mean[:, p:] + z @ chol.T
    k = pt.linalg.solve_triangular(chol, cov[p:, :p], lower=True).T
    return BetweenGivenRandom(random, mean[:, :p] + z @ k.T, cov[:p, :p] - k @ k.T)


def hybrid_loglik(layout: Layout, within: Moments, between: BetweenGivenRandom,
                  stats: dict[str, pt.TensorVariable], by_cluster: bool = False) -> pt.TensorVariable:
    """Σ_j log p(y_j | r_j) with cluster-specific within moments (module docstring); with
    ``by_cluster`` the vector of the clusters' terms."""
    p_w, n_clusters = len(layout.within), stats["sizes"].shape[0]
    e_w, e_b = layout.embedding(layout.within), layout.embedding(layout.top)
    within_coef = pt.broadcast_to(within.coef, (n_clusters, p_w, len(layout.within_covariates)))
    coef = pt.concatenate([pt.broadcast_to(pt.eye(p_w), (n_clusters, p_w, p_w)), -within_coef], axis=-1)
    ll = normal_terms(within.cov, stats["sizes"] - 1, coef, stats["scatter"]) - 0.5 * p_w * pt.log(stats["sizes"])
    within_mean = within.mean + (within_coef * stats["covariate_means"][:, None, :]).sum(-1)
    residual = stats["means"] - within_mean @ e_w.T - between.mean @ e_b.T
    within_cov = small_matmul(small_matmul(e_w, within.cov), e_w.T)  # e_w: a constant embedding
    cov = within_cov / stats["sizes"][:, None, None] + e_b @ between.cov @ e_b.T
    eye = pt.eye(len(layout.cluster_vector))
    ll = ll + normal_terms(cov, pt.ones_like(stats["sizes"]), eye, residual[:, :, None] * residual[:, None, :])
    return ll if by_cluster else ll.sum()


def hybrid_units_loglik(layout: Layout, within: Moments, between: BetweenGivenRandom,
                        stats: dict[str, pt.TensorVariable], by_cluster: bool = False) -> pt.TensorVariable:
    """Σ_j log p(y_j, z_j | r_j) over the observed cells (missing at random), by units of one
    cluster and missingness pattern (:class:`.woodbury.UnitStatistics`); with ``by_cluster`` the
    vector of the clusters' terms.

    Given r_j the cluster-level-only variables z_j are normal, and the between parts u_j of the
    within variables normal given them, u_j | z_j, r_j ~ N(m_j, G) (as in :mod:`.patterns`);
    each row's observed cells are y_ij = μ_Wj + Π_Wj x_ij + E u_j + e_ij, e_ij ~ N(0, Σ_Wj), so
    u_j integrates out by :mod:`.woodbury` with each unit's V = Σ_Wj over its observed cells.
    """
    p, n_clusters = len(layout.within), stats["covariates"].shape[0]
    u = np.array([k for k, v in enumerate(layout.top) if v in layout.within], dtype=np.int64)
    z = np.array([k for k, v in enumerate(layout.top) if v not in layout.within], dtype=np.int64)
    cluster, pattern = (pt.cast(stats[k], "int64") for k in ("unit_cluster", "unit_pattern"))
    observed = stats["observed"][pattern]
    # a padded missing cell adds log N(0; 0, 1) = −½ log 2π to its unit, which this takes back
    ll = scatter_add(0.5 * LOG_2PI * (p - observed.sum(-1)) * stats["unit_counts"], cluster, n_clusters)
    mean, cov = between.mean[:, u], between.cov[u][:, u]
    if len(z):
        gain = pt.linalg.solve(between.cov[z][:, z], between.cov[z][:, u]).T
        residual_z = stats["cluster_values"] - between.mean[:, z]
        mean, cov = mean + residual_z @ gain.T, cov - gain @ between.cov[z][:, u]
        ll = ll + normal_terms(between.cov[z][:, z][None], pt.ones_like(residual_z[:, 0]), pt.eye(len(z))[None],
                               residual_z[:, :, None] * residual_z[:, None, :])
    embed = np.zeros((p, len(u)))
    embed[[layout.within.index(layout.top[k]) for k in u], np.arange(len(u))] = 1.0
    within_coef = pt.broadcast_to(within.coef, (n_clusters, p, len(layout.within_covariates)))
    within_mean = pt.broadcast_to(within.mean, (n_clusters, p)) + mean @ embed.T
    coef = pt.concatenate([pt.broadcast_to(pt.eye(p), (n_clusters, p, p)), -within_mean[:, :, None], -within_coef], axis=2)
    unit_cov, precision = padded(pt.broadcast_to(within.cov, (n_clusters, p, p))[cluster], stats["observed"][pattern])
    unit_coef = observed[:, :, None] * coef[cluster]
    ll = ll + scatter_add(normal_terms(unit_cov, stats["unit_counts"], unit_coef, stats["unit_crossprod"]), cluster,
                          n_clusters)
    if len(u):
        weighted = pt.einsum("pa,upr->uar", embed, precision)                                   # Eᵀ V⁺
        m = scatter_add(stats["unit_counts"][:, None, None] * (weighted @ embed), cluster, n_clusters)
        h = scatter_add(pt.einsum("uar,urd,ud->ua", weighted, unit_coef, stats["unit_sums"]), cluster, n_clusters)
        ll = ll + effect_correction(pt.linalg.cholesky(cov), m, h, by_cluster=True)[0]
    return ll if by_cluster else ll.sum()


class Hybrid(Strategy):
    """Two Gaussian levels with random parameters: each cluster's random parameters r_j sampled
    (deterministic ``random_effects``, dims cluster × random, from standard normal
    ``random_effects_z``), everything else integrated out given them."""

    name = kind = HYBRID

    def handles(self, features: Features) -> bool:
        return features.levels == 2 and features.random and not (features.non_gaussian or features.cross_level)

    def statistics(self, plan: Plan, data: ClusteredData) -> Statistics:
        """Per cluster, or per cluster and missingness pattern."""
        layout = Layout.from_plan(plan)
        if data.has_missing:
            return UnitStatistics.from_data(data, layout.within, layout.within_covariates, layout.top_covariates,
                                            layout.cluster_only)
        return ClusterStatistics.from_data(layout, data)

    def add_to_model(self, plan: Plan, data: ClusteredData, theta: pt.TensorVariable) -> pt.TensorVariable:
        model = pm.Model.get_context()
        model.add_coord(local_dim("cluster"), cluster_ids(data))
        model.add_coord("random", [r.name for r in plan.random])
        return super().add_to_model(plan, data, theta)

    def loglik(self, plan: Plan, theta: pt.TensorVariable, stats: dict) -> pt.TensorVariable:
        dims = (local_dim("cluster"), "random")
        z = pm.Normal("random_effects_z", 0.0, 1.0, dims=dims)
        loglik, random = self.graph(plan, theta, stats, z)
        pm.Deterministic("random_effects", random, dims=dims)
        return loglik

    def graph(self, plan: Plan, theta: pt.TensorVariable, stats: dict, z: pt.TensorVariable,
              by_cluster: bool = False) -> tuple[pt.TensorVariable, pt.TensorVariable]:
        """The log-likelihood given the standardised random parameters z (J, K) (per cluster with
        ``by_cluster``) and the random parameters r_j themselves."""
        layout = Layout.from_plan(plan)
        split = split_between(between_with_random(plan, theta), len(plan.levels[BETWEEN].roles.observed), z,
                              stats["covariates"])
        within = implied_moments(plan.levels[WITHIN], theta, random=split.random)
        loglik = hybrid_units_loglik if plan.features.missing else hybrid_loglik
        return loglik(layout, within, split, stats, by_cluster), split.random
