"""The marginal strategy with missing responses: units grouped by missingness pattern.

Each unit's within variables are y_ij = μ_W + Π_W x_ij + E u_j + e_ij with e_ij ~ N(0, Σ_W),
of which the cells o_ij are observed (missing at random). The cluster's between vector
splits into the between parts u_j of within variables and the cluster-level-only
variables z_j (observed); given z_j,

    u_j | z_j ~ N(F c_j, G),   c_j = (1, w_j, z_j),   G = Σ_uu − K Σ_zu,   K = Σ_uz Σ_zz⁻¹,

so the residual of the observed cells, r_ij = [y_ij − μ_W − Π_W x_ij − E F c_j]_o, is linear
in D_ij = (y_ij, 1, x_ij, w_j, z_j) (missing cells set to 0), and u_j integrates out by
:mod:`.woodbury` with V_ij = Σ_W restricted to o_ij:

    log p(y_j, z_j) = Σ_i log N(r_ij; 0, Σ_W,oo) − ½ log|K_j| + ½ v_jᵀ K_j⁻¹ v_j + log N(z_j; μ_z + C_z w_j, Σ_zz).

Units of one pattern t share Σ_W,oo, padded to full size (:func:`.woodbury.padded`), so the
patterns are the unit types of :func:`.woodbury.typed_units_loglik`. A single-level model
has no u_j: its rows are the units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt

from ..data.clustered import ClusteredData
from ..spec.plan import Features, Plan
from ..spec.table import BETWEEN, SINGLE_LEVEL, WITHIN
from .gaussian import Layout, Statistics, group_crossprod, normal_loglik
from .kernel import LOG_2PI
from .moments import Moments, level_moments
from .strategy import MARGINAL, Strategy
from .woodbury import padded, typed_units_loglik


@dataclass(frozen=True)
class PatternStatistics(Statistics):
    """Per missingness pattern t: its observed cells o_t, count n_t and Σ D Dᵀ; per cluster and
    pattern the count n_jt and Σ D; J and Σ_j (z_j, 1, w_j)(…)ᵀ; the constant ½ log 2π · #missing cells."""

    observed: np.ndarray
    counts: np.ndarray
    crossprod: np.ndarray
    unit_counts: np.ndarray
    unit_sums: np.ndarray
    top_count: np.ndarray
    top_crossprod: np.ndarray
    constant: float

    @classmethod
    def from_data(cls, layout: Layout, data: ClusteredData) -> PatternStatistics:
        names, covariates = layout.units
        y = data.matrix(list(names))
        observed = ~np.isnan(y)
        rows = [np.where(observed, y, 0.0), np.ones((data.n_rows, 1)), data.matrix(list(covariates))]
        z = list(layout.cluster_only)
        top = np.hstack([data.cluster_values(z), np.ones((data.n_clusters, 1)),
                         data.cluster_values(list(layout.top_covariates))])
        if layout.within:
            rows += [data.matrix(list(layout.top_covariates)), data.matrix(z)]
        design = np.hstack(rows)
        patterns, pattern = np.unique(observed, axis=0, return_inverse=True)
        pattern = pattern.ravel()
        unit_counts = np.zeros((data.n_clusters, len(patterns)))
        unit_sums = np.zeros((data.n_clusters, len(patterns), design.shape[1]))
        if layout.within:
            np.add.at(unit_counts, (data.cluster_index, pattern), 1.0)
            np.add.at(unit_sums, (data.cluster_index, pattern), design)
        return cls(
            observed=patterns.astype(float), counts=np.bincount(pattern).astype(float),
            crossprod=group_crossprod(design, pattern, len(patterns)), unit_counts=unit_counts,
            unit_sums=unit_sums, top_count=np.array([float(data.n_clusters)]), top_crossprod=(top.T @ top)[None],
            constant=0.5 * LOG_2PI * float((~observed).sum()),
        )


def pattern_loglik(layout: Layout, moments: dict[str, Moments], stats: dict[str, pt.TensorVariable]) -> pt.TensorVariable:
    """The log-likelihood of the observed cells of all clusters (module docstring)."""
    observed = stats["observed"]
    if not layout.within:
        unit = moments[SINGLE_LEVEL]
        coef = pt.concatenate([pt.eye(len(layout.top)), -unit.mean[:, None], -unit.coef], axis=1)
        cov, _ = padded(unit.cov, observed)
        return stats["constant"] + normal_loglik(cov, stats["counts"], observed[:, :, None] * coef, stats["crossprod"])
    within, top = moments[WITHIN], moments[BETWEEN]
    u = np.array([k for k, v in enumerate(layout.top) if v in layout.within], dtype=np.int64)
    z = np.array([k for k, v in enumerate(layout.top) if v not in layout.within], dtype=np.int64)
    embed = np.zeros((len(layout.within), len(u)))
    embed[[layout.within.index(layout.top[k]) for k in u], np.arange(len(u))] = 1.0
    effect_mean = [top.mean[u][:, None], top.coef[u]]                 # F: u_j | z_j ~ N(F c_j, G)
    effect_cov = top.cov[u][:, u]
    ll = stats["constant"]
    if len(z):
        k = pt.linalg.solve(top.cov[z][:, z], top.cov[z][:, u]).T
        effect_mean = [effect_mean[0] - k @ top.mean[z][:, None], effect_mean[1] - k @ top.coef[z], k]
        effect_cov = effect_cov - k @ top.cov[z][:, u]
        z_coef = pt.concatenate([pt.eye(len(z)), -top.mean[z][:, None], -top.coef[z]], axis=1)
        ll = ll + normal_loglik(top.cov[z][:, z][None], stats["top_count"], z_coef[None], stats["top_crossprod"])
    f = pt.concatenate(effect_mean, axis=1)
    coef = pt.concatenate([pt.eye(len(layout.within)), -within.mean[:, None] - embed @ f[:, :1], -within.coef,
                           -embed @ f[:, 1:]], axis=1)
    cov, precision = padded(within.cov, observed)
    return ll + typed_units_loglik(cov, observed[:, :, None] * coef, precision, embed, pt.linalg.cholesky(effect_cov),
                                   stats)


class Patterns(Strategy):
    """The marginal strategy where the data have missing cells: units grouped by missingness pattern."""

    name, kind = "patterns", MARGINAL

    def handles(self, features: Features) -> bool:
        return features.levels <= 2 and features.missing and not (features.random or features.non_gaussian
                                                                  or features.cross_level)

    def statistics(self, plan: Plan, data: ClusteredData) -> PatternStatistics:
        return PatternStatistics.from_data(Layout.from_plan(plan), data)

    def loglik(self, plan: Plan, theta: pt.TensorVariable, stats: dict) -> pt.TensorVariable:
        return pattern_loglik(Layout.from_plan(plan), level_moments(plan, theta), stats)
