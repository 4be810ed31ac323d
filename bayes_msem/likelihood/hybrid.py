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

with S_j the cluster's within scatter of (y, x) and A_j = [I, −C_Wj].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt

from ..data import ClusteredData
from ..moments import Moments, small_matmul
from .gaussian import Layout, Statistics, cluster_design, group_crossprod, normal_loglik, within_deviations


@dataclass(frozen=True)
class ClusterStatistics(Statistics):
    """Per cluster: size n_j, d_j, x̄_j, w_j and the within scatter S_j of (y, x)."""

    sizes: np.ndarray
    means: np.ndarray
    covariate_means: np.ndarray
    covariates: np.ndarray
    scatter: np.ndarray
    constant: float

    @classmethod
    def from_data(cls, layout: Layout, data: ClusteredData) -> ClusterStatistics:
        d, covariate_means, covariates = cluster_design(layout, data)
        deviations = within_deviations(layout, data)
        scatter = group_crossprod(deviations, data.cluster_index, data.n_clusters)
        return cls(data.sizes.astype(float), d, covariate_means, covariates, scatter,
                   -0.5 * len(layout.within) * float(np.log(data.sizes).sum()))


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
                  stats: dict[str, pt.TensorVariable]) -> pt.TensorVariable:
    """Σ_j log p(y_j | r_j) with cluster-specific within moments (module docstring)."""
    p_w, n_clusters = len(layout.within), stats["sizes"].shape[0]
    e_w, e_b = layout.embedding(layout.within), layout.embedding(layout.top)
    within_coef = pt.broadcast_to(within.coef, (n_clusters, p_w, len(layout.within_covariates)))
    coef = pt.concatenate([pt.broadcast_to(pt.eye(p_w), (n_clusters, p_w, p_w)), -within_coef], axis=-1)
    ll = stats["constant"] + normal_loglik(within.cov, stats["sizes"] - 1, coef, stats["scatter"])
    within_mean = within.mean + (within_coef * stats["covariate_means"][:, None, :]).sum(-1)
    residual = stats["means"] - within_mean @ e_w.T - between.mean @ e_b.T
    within_cov = small_matmul(small_matmul(e_w, within.cov), e_w.T)  # e_w: a constant embedding
    cov = within_cov / stats["sizes"][:, None, None] + e_b @ between.cov @ e_b.T
    eye = pt.eye(len(layout.cluster_vector))
    return ll + normal_loglik(cov, pt.ones_like(stats["sizes"]), eye, residual[:, :, None] * residual[:, None, :])
