"""The marginal strategy: every latent variable integrated out analytically.

For cluster j with n_j units, within residuals e_ij ~ N(0, Σ_W) and between
part u_j ~ N(0, Σ_B), only the cluster mean and the within scatter matter:

    log p(y_j) = −½ [(n_j − 1)(p_w log 2π + log|Σ_W|) + tr(Σ_W⁻¹ S_j)]
                 − (p_w / 2) log n_j + log N(d_j; m_j, V_{n_j})

    V_n = E_w Σ_W E_wᵀ / n + E_b Σ_B E_bᵀ

where d_j stacks the cluster means of the within variables and the values of
the cluster-level variables, and E_w, E_b embed each level's variables in d_j.
The within scatter enters through Σ_W only, so it is pooled over clusters;
clusters of equal size share V_n, so the between term needs per distinct size
only the cross-product of D_j = (d_j, 1, x̄_j, w_j) — the residual d_j − m_j is
linear in D_j. Every term is thus O(p³) per distinct cluster size, whatever
the number of clusters. A single-level model is the between term alone with
every row a cluster of size one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt

from ..data.clustered import ClusteredData
from ..spec.plan import Features, Plan
from ..spec.table import BETWEEN, SINGLE_LEVEL, WITHIN
from .gaussian import Layout, Statistics, cluster_design, group_crossprod, normal_terms, within_deviations, within_terms
from .moments import Moments, level_moments
from .strategy import MARGINAL, Strategy


@dataclass(frozen=True)
class MarginalStatistics(Statistics):
    """Sufficient statistics: per distinct cluster size n_g, the count c_g and Σ_j D_j D_jᵀ;
    the pooled within scatter of (y, x) and its degrees of freedom N − J (one group); the constant
    −(p_w/2) Σ_j log n_j. :meth:`per_cluster` keeps every cluster apart instead."""

    sizes: np.ndarray
    counts: np.ndarray
    crossprod: np.ndarray
    within_scatter: np.ndarray
    within_count: np.ndarray
    constant: np.ndarray

    @classmethod
    def from_data(cls, layout: Layout, data: ClusteredData) -> MarginalStatistics:
        design, deviations = _design(layout, data)
        sizes, group = np.unique(data.sizes, return_inverse=True)
        return cls(
            sizes=sizes.astype(float), counts=np.bincount(group).astype(float),
            crossprod=group_crossprod(design, group, len(sizes)),
            within_scatter=(deviations.T @ deviations)[None], within_count=np.array([data.n_rows - data.n_clusters], float),
            constant=np.array([-0.5 * len(layout.within) * float(np.log(data.sizes).sum())]),
        )

    @classmethod
    def per_cluster(cls, layout: Layout, data: ClusteredData) -> MarginalStatistics:
        """One group per cluster (per row for single-level data), each with its own within scatter,
        for the log-likelihood of each cluster (:func:`marginal_loglik` with ``by_cluster``)."""
        design, deviations = _design(layout, data)
        n = len(design)
        cluster = data.cluster_index if layout.within else np.arange(n)
        sizes = data.sizes.astype(float) if layout.within else np.ones(n)
        return cls(
            sizes=sizes, counts=np.ones(n), crossprod=design[:, :, None] * design[:, None, :],
            within_scatter=group_crossprod(deviations, cluster, n) if layout.within else np.zeros((n, 0, 0)),
            within_count=sizes - 1, constant=-0.5 * len(layout.within) * np.log(sizes),
        )


def _design(layout: Layout, data: ClusteredData) -> tuple[np.ndarray, np.ndarray]:
    """D_j = (d_j, 1, x̄_j, w_j) per cluster and the within deviations of (y, x) per row."""
    d, covariate_means, covariates = cluster_design(layout, data)
    return np.hstack([d, np.ones((len(d), 1)), covariate_means, covariates]), within_deviations(layout, data)


def marginal_loglik(layout: Layout, moments: dict[str, Moments], stats: dict[str, pt.TensorVariable],
                    by_cluster: bool = False) -> pt.TensorVariable:
    """The log-likelihood of all clusters (module docstring); with ``by_cluster`` and statistics
    from :meth:`MarginalStatistics.per_cluster`, the vector of each cluster's log-likelihood."""
    top = moments[BETWEEN] if layout.within else moments[SINGLE_LEVEL]
    e_b = layout.embedding(layout.top)
    cov = (e_b @ top.cov @ e_b.T)[None]
    mean, coef_x = e_b @ top.mean, [e_b @ top.coef]
    within = 0.0
    if layout.within:
        w = moments[WITHIN]
        e_w = layout.embedding(layout.within)
        cov = cov + (e_w @ w.cov @ e_w.T)[None] / stats["sizes"][:, None, None]
        mean = mean + e_w @ w.mean
        coef_x = [e_w @ w.coef, *coef_x]
        within = within_terms(w, stats["within_scatter"], stats["within_count"])
    coef = pt.concatenate([pt.eye(len(layout.cluster_vector)), -mean[:, None], *(-c for c in coef_x)], axis=1)
    between = normal_terms(cov, stats["counts"], coef, stats["crossprod"])
    if by_cluster:
        return stats["constant"] + within + between
    return pt.sum(stats["constant"]) + pt.sum(within) + between.sum()


class Marginal(Strategy):
    """Gaussian responses at one or two levels, complete data, no random parameters."""

    name = kind = MARGINAL

    def handles(self, features: Features) -> bool:
        return features.levels <= 2 and not (features.random or features.non_gaussian or features.missing
                                             or features.cross_level)

    def statistics(self, plan: Plan, data: ClusteredData) -> MarginalStatistics:
        return MarginalStatistics.from_data(Layout.from_plan(plan), data)

    def loglik(self, plan: Plan, theta: pt.TensorVariable, stats: dict) -> pt.TensorVariable:
        return marginal_loglik(Layout.from_plan(plan), level_moments(plan, theta), stats)
