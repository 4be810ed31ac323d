"""A cluster's Gaussian effect integrated out of its units' likelihood (Woodbury's identity).

Units i of cluster j with residuals r_i = Z_i b_j + e_i, e_i ~ N(0, V_i) independent and
b_j ~ N(0, L Lᵀ), have, with M_j = Σ_i Z_iᵀ V_i⁻¹ Z_i, h_j = Σ_i Z_iᵀ V_i⁻¹ r_i,
K_j = I + Lᵀ M_j L and v_j = Lᵀ h_j (Woodbury and the matrix determinant lemma),

    log p(r_j) = Σ_i log N(r_i; 0, V_i) − ½ log|K_j| + ½ v_jᵀ K_j⁻¹ v_j,

and b_j | r_j ~ N(L K_j⁻¹ v_j, L K_j⁻¹ Lᵀ). The strategies compute Σ_i log N(r_i; 0, V_i)
from cross-products; this module adds the effect's share.
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
