"""A cluster's Gaussian effect integrated out of its units' likelihood (Woodbury's identity).

Units i of cluster j with residuals r_i = Z_i b_j + e_i, e_i ~ N(0, V_i) independent and
b_j ~ N(0, L Lᵀ), have, with M_j = Σ_i Z_iᵀ V_i⁻¹ Z_i, h_j = Σ_i Z_iᵀ V_i⁻¹ r_i,
K_j = I + Lᵀ M_j L and v_j = Lᵀ h_j (Woodbury and the matrix determinant lemma),

    log p(r_j) = Σ_i log N(r_i; 0, V_i) − ½ log|K_j| + ½ v_jᵀ K_j⁻¹ v_j,

and b_j | r_j ~ N(L K_j⁻¹ v_j, L K_j⁻¹ Lᵀ). The strategies compute Σ_i log N(r_i; 0, V_i)
from cross-products; this module adds the effect's share (:func:`effect_correction`), and
does both for units of a few types t that share V_t, A_t and Z_i = E (:func:`typed_units_loglik`).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from .gaussian import normal_loglik
from .kernel import LOG_2PI


def effect_correction(chol: pt.TensorVariable, precision: pt.TensorVariable, score: pt.TensorVariable
                      ) -> tuple[pt.TensorVariable, pt.TensorVariable, pt.TensorVariable]:
    """Σ_j [−½ log|K_j| + ½ v_jᵀ K_j⁻¹ v_j] from L (q, q), M_j (J, q, q) and h_j (J, q); also K_j and v_j."""
    q = chol.type.shape[-1]
    k = np.eye(q) + pt.einsum("ba,jbc,cd->jad", chol, precision, chol)
    v = score @ chol
    ones = pt.ones_like(score[:, 0])
    # −½ log|K| + ½ vᵀK⁻¹v is the Gaussian kernel with scatter −v vᵀ, up to its constant
    value = normal_loglik(k, ones, np.eye(q), -(v[:, :, None] * v[:, None, :])) + 0.5 * q * LOG_2PI * ones.sum()
    return value, k, v


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
