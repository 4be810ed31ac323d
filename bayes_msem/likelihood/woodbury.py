"""A cluster's Gaussian effect integrated out of its units' likelihood (Woodbury's identity).

Units i of cluster j with residuals r_i = Z_i b_j + e_i, e_i ~ N(0, V_i) independent and
b_j ~ N(0, L Lᵀ), have, with M_j = Σ_i Z_iᵀ V_i⁻¹ Z_i, h_j = Σ_i Z_iᵀ V_i⁻¹ r_i,
K_j = I + Lᵀ M_j L and v_j = Lᵀ h_j (Woodbury and the matrix determinant lemma),

    log p(r_j) = Σ_i log N(r_i; 0, V_i) − ½ log|K_j| + ½ v_jᵀ K_j⁻¹ v_j,

and b_j | r_j ~ N(L K_j⁻¹ v_j, L K_j⁻¹ Lᵀ). The strategies compute Σ_i log N(r_i; 0, V_i)
from cross-products; this module adds the effect's share (:func:`effect_correction`), and
does both for units of a few types t that share V_t, A_t and Z_i = E (:func:`typed_units_loglik`).

With missing cells a unit's V_i is the covariance of its observed cells o, padded to full
size as P V P + (I − P), P = diag(o) (:func:`padded`), its residual zero at the missing cells;
each missing cell then adds −½ log 2π, which :class:`UnitStatistics` returns as a constant,
and V⁺ = P V⁻¹ P (the padded inverse, missing rows and columns zeroed) enters M_j and h_j.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt

from ..data.clustered import ClusteredData
from .gaussian import Statistics, group_crossprod, normal_loglik, normal_terms
from .kernel import LOG_2PI


@dataclass(frozen=True)
class UnitStatistics(Statistics):
    """Units: each cluster's rows of one missingness pattern of the variables y (with complete
    data, the clusters). Per pattern t its observed cells; per unit its cluster, pattern, count
    and Σ D Dᵀ, Σ D of the rows' D = (y with missing cells 0, 1, x); per cluster its covariates
    w_j and cluster-level values z_j; the constant ½ log 2π · #missing cells."""

    observed: np.ndarray
    unit_cluster: np.ndarray
    unit_pattern: np.ndarray
    unit_counts: np.ndarray
    unit_crossprod: np.ndarray
    unit_sums: np.ndarray
    covariates: np.ndarray
    cluster_values: np.ndarray
    constant: float

    @classmethod
    def from_data(cls, data: ClusteredData, names: tuple[str, ...], covariates: tuple[str, ...],
                  cluster_covariates: tuple[str, ...] = (), cluster_values: tuple[str, ...] = ()) -> UnitStatistics:
        y = data.matrix(list(names))
        observed = ~np.isnan(y)
        design = np.hstack([np.where(observed, y, 0.0), np.ones((data.n_rows, 1)), data.matrix(list(covariates))])
        patterns, pattern = np.unique(observed, axis=0, return_inverse=True)
        units, unit = np.unique(np.column_stack([data.cluster_index, pattern.ravel()]), axis=0, return_inverse=True)
        unit = unit.ravel()
        sums = np.zeros((len(units), design.shape[1]))
        np.add.at(sums, unit, design)
        return cls(patterns.astype(float), units[:, 0].astype(float), units[:, 1].astype(float),
                   np.bincount(unit).astype(float), group_crossprod(design, unit, len(units)), sums,
                   data.cluster_values(list(cluster_covariates)), data.cluster_values(list(cluster_values)),
                   0.5 * LOG_2PI * float((~observed).sum()))


def padded(cov: pt.TensorVariable, observed: pt.TensorVariable) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """P V P + (I − P) and P V⁻¹ P per pattern (observed (T, p); ``cov`` (..., p, p) broadcasting)."""
    mask = observed[:, :, None] * observed[:, None, :]
    full = mask * cov + (1.0 - observed)[:, :, None] * pt.eye(observed.shape[1])[None]
    return full, mask * pt.linalg.inv(full)


def scatter_add(values: pt.TensorVariable, index: pt.TensorVariable, n: pt.TensorVariable) -> pt.TensorVariable:
    """Σ over the units u with index[u] = j of values[u], for j = 0..n−1."""
    return pt.inc_subtensor(pt.zeros((n, *values.shape[1:]))[index], values)


def effect_correction(chol: pt.TensorVariable, precision: pt.TensorVariable, score: pt.TensorVariable,
                      by_cluster: bool = False) -> tuple[pt.TensorVariable, pt.TensorVariable, pt.TensorVariable]:
    """Σ_j [−½ log|K_j| + ½ v_jᵀ K_j⁻¹ v_j] from L (q, q), M_j (J, q, q) and h_j (J, q) (with
    ``by_cluster`` each cluster's term); also K_j and v_j."""
    q = chol.type.shape[-1]
    k = np.eye(q) + pt.einsum("ba,jbc,cd->jad", chol, precision, chol)
    v = score @ chol
    ones = pt.ones_like(score[:, 0])
    # −½ log|K| + ½ vᵀK⁻¹v is the Gaussian kernel with scatter −v vᵀ, up to its constant
    value = normal_terms(k, ones, np.eye(q), -(v[:, :, None] * v[:, None, :])) + 0.5 * q * LOG_2PI * ones
    return (value if by_cluster else value.sum()), k, v


def typed_units_loglik(cov: pt.TensorVariable, coef: pt.TensorVariable, precision: pt.TensorVariable,
                       embed: np.ndarray, chol: pt.TensorVariable, stats: dict[str, pt.TensorVariable]) -> pt.TensorVariable:
    """Σ_j log p(r_j) for units i of type t with r_i = A_t D_i, V_t and Z_i = E (module docstring).

    cov V_t and coef A_t (T, p, p) and (T, p, d); precision the V_t⁻¹ that enters M_j and h_j
    (T, p, p); embed E (p, q); chol L (q, q); ``stats``: per type the count n_t and Σ D Dᵀ
    (``counts``, ``crossprod``), per cluster and type the count n_jt and Σ D (``unit_counts``
    (J, T), ``unit_sums`` (J, T, d)). M_j = Σ_t n_jt Eᵀ V_t⁻¹ E, h_j = Σ_t Eᵀ V_t⁻¹ A_t Σ_{i∈(j,t)} D_i.
    """
    units = normal_loglik(cov, stats["counts"], coef, stats["crossprod"])
    weighted = pt.einsum("pa,tpr->tar", embed, precision)
    m = pt.einsum("jt,tar,rb->jab", stats["unit_counts"], weighted, embed)
    h = pt.einsum("tar,trd,jtd->ja", weighted, coef, stats["unit_sums"])
    return units + effect_correction(chol, m, h)[0]
