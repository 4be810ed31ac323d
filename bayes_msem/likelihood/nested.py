"""The marginal strategy for three levels: units in classes in schools (lowest first).

Each unit's variables are y_ijk = μ_1 + Π_1 x_ijk + E_2 (μ_2 + Π_2 c_jk + u_jk)
+ E_3 (μ_3 + Π_3 w_k + s_k) + e_ijk with e ~ N(0, Σ_1), class parts u_jk ~ N(0, Σ_2) and
school parts s_k ~ N(0, Σ_3) (each level's model-implied moments; E_2, E_3 place the
variables that have a part at that level; c and w are the covariates of the two upper
levels). As in the two-level case the within scatter is pooled (:mod:`.marginal`), and a
class of n units enters through its mean vector d_jk,

    d_jk = A D_jk + E_3 s_k + ε_jk,   ε_jk ~ N(0, V_n),   V_n = Σ_1 / n + E_2 Σ_2 E_2ᵀ,

with D_jk = (d_jk, 1, x̄_jk, c_jk, w_k) and A = [I, −(μ_1 + E_2 μ_2 + E_3 μ_3), −Π_1, −E_2 Π_2, −E_3 Π_3].
The classes of a school share s_k, which integrates out by Woodbury's identity with the
class sizes as the unit types (:func:`.woodbury.typed_units_loglik`): O(p³) per distinct
class size and O(p²) per school, nothing sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt

from ..data.clustered import ClusteredData
from ..spec.plan import Features, Plan
from ..spec.table import SpecificationError
from .gaussian import Layout, Statistics, group_crossprod, pooled_within_loglik, within_deviations
from .moments import Moments, implied_moments
from .strategy import MARGINAL, Strategy
from .woodbury import typed_units_loglik


@dataclass(frozen=True)
class NestedLayout:
    """The variables of the three levels: y and x within, then per upper level its modelled
    variables (a subset of y) and covariates."""

    within: Layout
    middle: tuple[str, ...]
    middle_covariates: tuple[str, ...]
    top: tuple[str, ...]
    top_covariates: tuple[str, ...]

    @classmethod
    def from_plan(cls, plan: Plan) -> NestedLayout:
        roles = [plan.levels[level].roles for level in plan.levels]  # lowest first
        for r in roles[1:]:
            extra = [v for v in r.observed if v not in roles[0].observed]
            if extra:
                raise SpecificationError(
                    f"{', '.join(map(repr, extra))} at the {r.level} level: in three-level models every modelled "
                    "variable must be measured at the lowest level; variables of the upper levels only can be "
                    "covariates (predictors) there, not outcomes, for now.")
        w = roles[0]
        return cls(Layout(w.observed, w.covariates, (), ()), roles[1].observed, roles[1].covariates,
                   roles[2].observed, roles[2].covariates)

    def embedding(self, names: tuple[str, ...]) -> np.ndarray:
        """E (p, len(names)) placing an upper level's variables among the within variables y."""
        e = np.zeros((len(self.within.within), len(names)))
        e[[self.within.within.index(v) for v in names], np.arange(len(names))] = 1.0
        return e


@dataclass(frozen=True)
class NestedStatistics(Statistics):
    """The pooled within scatter of (y, x), its degrees of freedom and the constant −(p/2) Σ log n;
    per class size t its count n_t and Σ D Dᵀ; per school and class size the count and Σ D."""

    within_scatter: np.ndarray
    within_count: float
    constant: float
    sizes: np.ndarray
    counts: np.ndarray
    crossprod: np.ndarray
    unit_counts: np.ndarray
    unit_sums: np.ndarray

    @classmethod
    def from_data(cls, layout: NestedLayout, data: ClusteredData) -> NestedStatistics:
        deviations = within_deviations(layout.within, data)
        school = data.upper.parent
        names = [*layout.within.within, *layout.within.within_covariates]
        design = np.hstack([data.cluster_means(names[:len(layout.within.within)]), np.ones((data.n_clusters, 1)),
                            data.cluster_means(names[len(layout.within.within):]),
                            data.cluster_values(list(layout.middle_covariates)),
                            data.cluster_values(list(layout.top_covariates))])
        sizes, size = np.unique(data.sizes, return_inverse=True)
        unit_counts = np.zeros((data.upper.n_clusters, len(sizes)))
        unit_sums = np.zeros((data.upper.n_clusters, len(sizes), design.shape[1]))
        np.add.at(unit_counts, (school, size), 1.0)
        np.add.at(unit_sums, (school, size), design)
        return cls(
            within_scatter=deviations.T @ deviations, within_count=float(data.n_rows - data.n_clusters),
            constant=-0.5 * len(layout.within.within) * float(np.log(data.sizes).sum()),
            sizes=sizes.astype(float), counts=np.bincount(size).astype(float),
            crossprod=group_crossprod(design, size, len(sizes)), unit_counts=unit_counts, unit_sums=unit_sums,
        )


def nested_loglik(layout: NestedLayout, moments: list[Moments], stats: dict[str, pt.TensorVariable]) -> pt.TensorVariable:
    """The log-likelihood of all schools (module docstring); ``moments`` of the levels, lowest first."""
    within, middle, top = moments
    e_2, e_3 = layout.embedding(layout.middle), layout.embedding(layout.top)
    p = len(layout.within.within)
    mean = within.mean + e_2 @ middle.mean + e_3 @ top.mean
    coef = pt.concatenate([pt.eye(p), -mean[:, None], -within.coef, -e_2 @ middle.coef, -e_3 @ top.coef], axis=1)
    cov = within.cov[None] / stats["sizes"][:, None, None] + (e_2 @ middle.cov @ e_2.T)[None]
    coef = pt.broadcast_to(coef, (stats["sizes"].shape[0], *coef.shape))
    classes = typed_units_loglik(cov, coef, pt.linalg.inv(cov), e_3, pt.linalg.cholesky(top.cov), stats)
    return stats["constant"] + pooled_within_loglik(within, stats["within_scatter"], stats["within_count"]) + classes


class Nested(Strategy):
    """Three Gaussian levels with random intercepts only, complete data, every observed variable
    at the lowest level."""

    name, kind = "nested", MARGINAL

    def handles(self, features: Features) -> bool:
        return features.levels == 3 and not (features.random or features.missing or features.upper_only
                                             or features.non_gaussian or features.cross_level or features.crossed)

    def statistics(self, plan: Plan, data: ClusteredData) -> NestedStatistics:
        return NestedStatistics.from_data(NestedLayout.from_plan(plan), data)

    def loglik(self, plan: Plan, theta: pt.TensorVariable, stats: dict) -> pt.TensorVariable:
        return nested_loglik(NestedLayout.from_plan(plan), [implied_moments(lp, theta) for lp in plan.levels.values()],
                             stats)
