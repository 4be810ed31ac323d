"""Gaussian building blocks shared by the likelihood strategies.

* :class:`Layout`: where each variable sits in a cluster's vector d_j (cluster means of
  the within variables, then the values of the cluster-level variables).
* :func:`cluster_design`, :func:`within_deviations`, :func:`group_crossprod`: the data
  pieces every strategy needs; :class:`Statistics` registers a strategy's statistics as ``pm.Data``.
* :func:`normal_loglik`: Σ log N(A D; 0, V) from cross-products, batched over groups or clusters
  (:func:`normal_terms`: per group); :func:`pooled_within_loglik`, its within-cluster share
  (:func:`within_terms`: per group of clusters).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..data.clustered import ClusteredData
from ..spec.plan import Plan
from ..spec.table import BETWEEN, SINGLE_LEVEL, WITHIN
from .kernel import gaussian_scatter
from .moments import Moments


class Statistics:
    """Base of the strategies' sufficient-statistic dataclasses."""

    def register(self) -> dict[str, pt.TensorVariable | list[pt.TensorVariable]]:
        """Every field as ``pm.Data`` named ``<prefix>stat_<field>`` in the current model (a tuple field
        as a list, ``stat_<field>_<k>``), so a model of the same structure on new data reuses the
        compiled sampler with its own statistics; ``prefix`` keeps each group's apart."""
        return self._each(lambda name, value: pm.Data(name, np.asarray(value, dtype=float)))

    def placeholders(self) -> dict[str, pt.TensorVariable | list[pt.TensorVariable]]:
        """Every field as a symbolic input of its rank (named as in :meth:`register`), for functions
        compiled outside a model; :func:`flat` lists them in the order of :meth:`values`."""
        return self._each(lambda name, value: pt.tensor(name, shape=(None,) * np.ndim(value), dtype="float64"))

    def values(self) -> list[np.ndarray]:
        """The fields' values, tuple fields flattened, in the order of :func:`flat` of :meth:`placeholders`."""
        return flat(self._each(lambda name, value: np.asarray(value, dtype=float)))

    def _each(self, make) -> dict:
        return {f.name: [make(f"stat_{f.name}_{k}", v) for k, v in enumerate(value)] if isinstance(value, tuple)
                else make(f"stat_{f.name}", value) for f in fields(self) for value in [getattr(self, f.name)]}


def flat(statistics: dict) -> list:
    """The entries of a statistics dict, tuple fields' lists flattened, in field order."""
    return [x for value in statistics.values() for x in (value if isinstance(value, list) else [value])]


@dataclass(frozen=True)
class Layout:
    """Where each variable sits in the cluster vector d_j; x̄_j and w_j are the covariates of the two levels."""

    within: tuple[str, ...]
    within_covariates: tuple[str, ...]
    top: tuple[str, ...]
    top_covariates: tuple[str, ...]

    @classmethod
    def from_plan(cls, plan: Plan) -> Layout:
        if not plan.two_level:
            r = plan.levels[SINGLE_LEVEL].roles
            return cls((), (), r.observed, r.covariates)
        w, b = plan.levels[WITHIN].roles, plan.levels[BETWEEN].roles
        return cls(w.observed, w.covariates, b.observed, b.covariates)

    @property
    def units(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The variables and covariates of a unit (a row): the within level's, or the single level's."""
        return (self.within, self.within_covariates) if self.within else (self.top, self.top_covariates)

    @property
    def cluster_only(self) -> tuple[str, ...]:
        """The cluster-level variables that have no within part (none in a single-level model)."""
        return tuple(v for v in self.top if v not in self.within) if self.within else ()

    @property
    def cluster_vector(self) -> tuple[str, ...]:
        """d_j: cluster means of the within variables, then the cluster-level-only variables."""
        return self.within + tuple(v for v in self.top if v not in self.within)

    def embedding(self, names: tuple[str, ...]) -> np.ndarray:
        """E with E[k, i] = 1 where names[i] is the k-th element of d_j."""
        position = {v: k for k, v in enumerate(self.cluster_vector)}
        e = np.zeros((len(position), len(names)))
        e[[position[v] for v in names], np.arange(len(names))] = 1.0
        return e


def cluster_design(layout: Layout, data: ClusteredData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cluster (per row for single-level data): d_j (J, p_c), x̄_j (J, q_w) and w_j (J, q_b)."""
    top_only = [v for v in layout.cluster_vector if v not in layout.within]
    if not layout.within:
        return data.matrix(top_only), np.zeros((data.n_rows, 0)), data.matrix(list(layout.top_covariates))
    d = np.hstack([data.cluster_means(list(layout.within)), data.cluster_values(top_only)])
    return d, data.cluster_means(list(layout.within_covariates)), data.cluster_values(list(layout.top_covariates))


def within_deviations(layout: Layout, data: ClusteredData) -> np.ndarray:
    """(y, x)_ij − cluster mean, per row (N, p_w + q_w); empty for single-level models."""
    if not layout.within:
        return np.zeros((0, 0))
    names = list(layout.within + layout.within_covariates)
    return data.matrix(names) - data.cluster_means(names)[data.cluster_index]


def group_crossprod(rows: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Σ_{i in g} r_i r_iᵀ for each group g (n_groups, d, d) of the rows r_i (n, d)."""
    crossprod = np.zeros((n_groups, rows.shape[1], rows.shape[1]))
    np.add.at(crossprod, group, rows[:, :, None] * rows[:, None, :])
    return crossprod


def pooled_within_loglik(within: Moments, scatter: pt.TensorVariable, count: pt.TensorVariable) -> pt.TensorVariable:
    """−½ [c (p log 2π + log|Σ_W|) + tr(Σ_W⁻¹ A S Aᵀ)] with A = [I, −Π_W]: the within-cluster
    scatter S of (y, x) pooled over clusters, with c = N − J degrees of freedom."""
    return within_terms(within, scatter[None], count[None]).sum()


def within_terms(within: Moments, scatter: pt.TensorVariable, count: pt.TensorVariable) -> pt.TensorVariable:
    """The same for each group g of clusters (G,), from its scatter S_g (G, d, d) and c_g (G,)."""
    coef = pt.concatenate([pt.eye(within.cov.type.shape[-1]), -within.coef], axis=1)
    return normal_terms(within.cov[None], count, coef, scatter)


def normal_loglik(cov: pt.TensorVariable, counts: pt.TensorVariable, coef: pt.TensorVariable,
                  crossprod: pt.TensorVariable) -> pt.TensorVariable:
    """Σ_g Σ_{j∈g} log N(A D_j; 0, V_g) from M_g = Σ_j D_j D_jᵀ:

    −½ Σ_g [c_g (p log 2π + log|V_g|) + tr(V_g⁻¹ A M_g Aᵀ)]; V (p, p) or (G, p, p), A (p, d) or
    (G, p, d), M (G, d, d), c (G,): one fused operation (:mod:`.kernel`).
    """
    return normal_terms(cov, counts, coef, crossprod).sum()


def normal_terms(cov: pt.TensorVariable, counts: pt.TensorVariable, coef: pt.TensorVariable,
                 crossprod: pt.TensorVariable) -> pt.TensorVariable:
    """The terms of :func:`normal_loglik`, one per group (G,)."""
    groups = crossprod.shape[0]
    cov = pt.broadcast_to(cov, (groups, *cov.shape[-2:]))
    coef = pt.broadcast_to(coef, (groups, *coef.shape[-2:]))
    return gaussian_scatter(cov, coef, crossprod, counts)
