"""A fused, batched Gaussian kernel: the one operation every likelihood strategy spends its time in.

For groups g (distinct cluster sizes, or clusters) with covariance V_g, coefficients A_g,
cross-products M_g and count c_g, with S_g = A_g M_g A_gᵀ,

    ℓ_g = −½ [c_g (p log 2π + log|V_g|) + tr(V_g⁻¹ S_g)],

    ∂ℓ_g/∂V_g = −½ (c_g V_g⁻¹ − V_g⁻¹ S_g V_g⁻¹),   ∂ℓ_g/∂A_g = −V_g⁻¹ A_g M_g,
    ∂ℓ_g/∂M_g = −½ A_gᵀ V_g⁻¹ A_g,                  ∂ℓ_g/∂c_g = −½ (p log 2π + log|V_g|).

Written as generic PyTensor this is batched matrix products, a Cholesky factorisation,
triangular solves and their gradients: a BLAS or LAPACK call per group and operation, which
dominates the gradient when the groups are many small clusters. Here each group's work runs
in one compiled loop (numba, the default), with an exact gradient, and in batched
``jax.numpy`` for the JAX samplers. The value's pass also returns V_g⁻¹ and A_g M_g, which
the gradient's pass reuses (P = V⁻¹ A M, Q = V⁻¹ A: V⁻¹ S V⁻¹ = P Qᵀ). V_g and M_g are taken as
symmetric; a V_g that is not positive definite gives ℓ_g = −∞.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import basic as numba_basic

LOG_2PI = float(np.log(2 * np.pi))


class GaussianScatter(Op):
    """ℓ_g (G,), V_g⁻¹ and A_g M_g from V (G, p, p), A (G, p, d), M (G, d, d) and c (G,)."""

    __props__ = ()

    def make_node(self, cov, coef, crossprod, counts) -> Apply:
        inputs = [pt.as_tensor_variable(v).astype("float64") for v in (cov, coef, crossprod, counts)]
        value = pt.vector(dtype="float64", shape=inputs[0].type.shape[:1])
        return Apply(self, inputs, [value, inputs[0].type(), inputs[1].type(), value.type()])

    def perform(self, node, inputs, outputs) -> None:
        for out, result in zip(outputs, _numpy_value(*inputs)):
            out[0] = result

    def infer_shape(self, node, shapes):
        return [shapes[3], shapes[0], shapes[1], shapes[3]]

    def pullback(self, inputs, outputs, cotangents):
        _, inverse, coef_cross, logdet = outputs
        return list(GaussianScatterGrad()(inputs[1], inputs[3], cotangents[0], inverse, coef_cross, logdet))


class GaussianScatterGrad(Op):
    """The gradients of Σ_g ḡ_g ℓ_g with respect to V, A, M and c, from A, c, ḡ and the value's
    V⁻¹, A M and log|V| (module docstring)."""

    __props__ = ()

    def make_node(self, coef, counts, weights, inverse, coef_cross, logdet) -> Apply:
        inputs = [pt.as_tensor_variable(v).astype("float64") for v in (coef, counts, weights, inverse, coef_cross, logdet)]
        crossprod = pt.tensor3(dtype="float64", shape=(coef.type.shape[0], coef.type.shape[2], coef.type.shape[2]))
        return Apply(self, inputs, [inverse.type(), coef.type(), crossprod, counts.type()])

    def perform(self, node, inputs, outputs) -> None:
        for out, result in zip(outputs, _numpy_grad(*inputs)):
            out[0] = result

    def infer_shape(self, node, shapes):
        coef = shapes[0]
        return [shapes[3], coef, (coef[0], coef[2], coef[2]), shapes[1]]

    def pullback(self, inputs, outputs, cotangents):
        return [grad_not_implemented(self, k, x) for k, x in enumerate(inputs)]


_gaussian_scatter = GaussianScatter()


def gaussian_scatter(cov, coef, crossprod, counts) -> pt.TensorVariable:
    """ℓ_g for every group (module docstring)."""
    return _gaussian_scatter(cov, coef, crossprod, counts)[0]


def _numpy_value(cov, coef, crossprod, counts):
    """ℓ, V⁻¹, A M and log|V| (reference implementation)."""
    p = cov.shape[-1]
    value, logdet = np.full(len(cov), -np.inf), np.full(len(cov), np.nan)
    inverse = np.full(cov.shape, np.nan)
    coef_cross = coef @ crossprod
    for g in range(len(cov)):
        try:
            chol = np.linalg.cholesky(cov[g])
        except np.linalg.LinAlgError:
            continue
        inverse[g] = np.linalg.inv(cov[g])
        logdet[g] = 2 * np.log(np.diag(chol)).sum()
        value[g] = -0.5 * (counts[g] * (p * LOG_2PI + logdet[g]) + (inverse[g] * (coef_cross[g] @ coef[g].T)).sum())
    return value, inverse, coef_cross, logdet


def _numpy_grad(coef, counts, weights, inverse, coef_cross, logdet):
    """∂V, ∂A, ∂M and ∂c of Σ_g ḡ_g ℓ_g (reference implementation)."""
    w = -0.5 * weights[:, None, None]
    half, inverse_coef = inverse @ coef_cross, inverse @ coef  # P = V⁻¹ A M, Q = V⁻¹ A
    d_cov = w * (counts[:, None, None] * inverse - half @ inverse_coef.transpose(0, 2, 1))
    d_crossprod = w * coef.transpose(0, 2, 1) @ inverse_coef
    return d_cov, 2 * w * half, d_crossprod, -0.5 * weights * (inverse.shape[-1] * LOG_2PI + logdet)


@numba_basic.numba_njit
def _numba_value(cov, coef, crossprod, counts):
    """ℓ, V⁻¹, A M and log|V|, group by group.

    Plain index loops over the batched arrays with work arrays allocated once: taking a
    group's slice would create a reference-counted view per group and step, which costs
    more than the arithmetic of small matrices.
    """
    groups, p, d = coef.shape
    value, logdet = np.empty(groups), np.empty(groups)
    inverse, coef_cross = np.empty((groups, p, p)), np.empty((groups, p, d))
    chol, lower_inverse = np.zeros((p, p)), np.zeros((p, p))
    for g in range(groups):
        for i in range(p):  # A M
            for k in range(d):
                s = 0.0
                for j in range(d):
                    s += coef[g, i, j] * crossprod[g, j, k]
                coef_cross[g, i, k] = s
        diagonal = 1.0  # V = L Lᵀ, log|V| = 2 log Π L_jj
        for j in range(p):
            s = cov[g, j, j]
            for k in range(j):
                s -= chol[j, k] * chol[j, k]
            if not s > 0.0:
                diagonal = np.nan
                break
            chol[j, j] = np.sqrt(s)
            diagonal *= chol[j, j]
            for i in range(j + 1, p):
                s = cov[g, i, j]
                for k in range(j):
                    s -= chol[i, k] * chol[j, k]
                chol[i, j] = s / chol[j, j]
        if np.isnan(diagonal):
            value[g], logdet[g] = -np.inf, np.nan
            inverse[g] = np.nan
            continue
        logdet[g] = 2.0 * np.log(diagonal)
        for j in range(p):  # L⁻¹, then V⁻¹ = L⁻ᵀ L⁻¹
            lower_inverse[j, j] = 1.0 / chol[j, j]
            for i in range(j + 1, p):
                s = 0.0
                for k in range(j, i):
                    s -= chol[i, k] * lower_inverse[k, j]
                lower_inverse[i, j] = s / chol[i, i]
        for i in range(p):
            for j in range(i + 1):
                s = 0.0
                for k in range(i, p):
                    s += lower_inverse[k, i] * lower_inverse[k, j]
                inverse[g, i, j] = s
                inverse[g, j, i] = s
        trace = 0.0  # tr(V⁻¹ A M Aᵀ) = Σ_ik (V⁻¹ A)_ik (A M)_ik
        for i in range(p):
            for k in range(d):
                s = 0.0
                for j in range(p):
                    s += inverse[g, i, j] * coef[g, j, k]
                trace += s * coef_cross[g, i, k]
        value[g] = -0.5 * (counts[g] * (p * LOG_2PI + logdet[g]) + trace)
    return value, inverse, coef_cross, logdet


@numba_basic.numba_njit
def _numba_grad(coef, counts, weights, inverse, coef_cross, logdet):
    """∂V, ∂A, ∂M and ∂c of Σ_g ḡ_g ℓ_g from the value's V⁻¹, A M and log|V|."""
    groups, p, d = coef.shape
    d_cov, d_coef, d_crossprod = np.empty((groups, p, p)), np.empty((groups, p, d)), np.empty((groups, d, d))
    d_counts = np.empty(groups)
    half, inverse_coef = np.empty((p, d)), np.empty((p, d))
    for g in range(groups):
        w = -0.5 * weights[g]
        d_counts[g] = w * (p * LOG_2PI + logdet[g])
        for i in range(p):  # P = V⁻¹ A M, Q = V⁻¹ A
            for k in range(d):
                s, t = 0.0, 0.0
                for j in range(p):
                    s += inverse[g, i, j] * coef_cross[g, j, k]
                    t += inverse[g, i, j] * coef[g, j, k]
                half[i, k], inverse_coef[i, k] = s, t
                d_coef[g, i, k] = 2.0 * w * s
        for i in range(p):  # V⁻¹ S V⁻¹ = P Qᵀ
            for k in range(p):
                s = 0.0
                for j in range(d):
                    s += half[i, j] * inverse_coef[k, j]
                d_cov[g, i, k] = w * (counts[g] * inverse[g, i, k] - s)
        for i in range(d):  # Aᵀ V⁻¹ A
            for k in range(d):
                s = 0.0
                for j in range(p):
                    s += coef[g, j, i] * inverse_coef[j, k]
                d_crossprod[g, i, k] = w * s
    return d_cov, d_coef, d_crossprod, d_counts


# part of numba's on-disk cache key: raise it whenever the kernels above change
KERNEL_VERSION = 3


@numba_basic.register_funcify_default_op_cache_key(GaussianScatter)
def _numba_funcify_value(op, node, **kwargs):
    return _numba_value, KERNEL_VERSION


@numba_basic.register_funcify_default_op_cache_key(GaussianScatterGrad)
def _numba_funcify_grad(op, node, **kwargs):
    return _numba_grad, KERNEL_VERSION


try:  # the JAX samplers (numpyro, blackjax) need JAX versions of both operations
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify
except ImportError:  # pragma: no cover - JAX is an optional extra
    pass
else:

    @jax_funcify.register(GaussianScatter)
    def _jax_funcify_value(op, **kwargs):
        def value(cov, coef, crossprod, counts):
            chol = jnp.linalg.cholesky(cov)
            inverse = jnp.linalg.solve(cov, jnp.broadcast_to(jnp.eye(cov.shape[-1]), cov.shape))
            logdet = 2 * jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
            coef_cross = coef @ crossprod
            trace = ((inverse @ coef) * coef_cross).sum((-2, -1))
            result = -0.5 * (counts * (cov.shape[-1] * LOG_2PI + logdet) + trace)
            return jnp.where(jnp.isnan(logdet), -jnp.inf, result), inverse, coef_cross, logdet

        return value

    @jax_funcify.register(GaussianScatterGrad)
    def _jax_funcify_grad(op, **kwargs):
        def grad(coef, counts, weights, inverse, coef_cross, logdet):
            w = -0.5 * weights[:, None, None]
            half, inverse_coef = inverse @ coef_cross, inverse @ coef
            d_cov = w * (counts[:, None, None] * inverse - half @ jnp.swapaxes(inverse_coef, -1, -2))
            d_crossprod = w * jnp.swapaxes(coef, -1, -2) @ inverse_coef
            return d_cov, 2 * w * half, d_crossprod, -0.5 * weights * (inverse.shape[-1] * LOG_2PI + logdet)

        return grad
