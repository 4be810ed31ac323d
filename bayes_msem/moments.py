"""Model-implied moments of one level, in PyTensor: the building block every likelihood shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt

from .plan import LevelPlan, MatrixSpec


@dataclass(frozen=True)
class Moments:
    """Observed-variable moments of a level given its covariates x.

    ``y | x ~ N(mean + coef · x, cov)`` with cov (p, p), mean (p,), coef (p, q).
    """

    cov: pt.TensorVariable
    mean: pt.TensorVariable
    coef: pt.TensorVariable


def fill(spec: MatrixSpec, theta: pt.TensorVariable) -> pt.TensorVariable:
    """The matrix ``spec.base`` with its free entries set from θ."""
    base = pt.as_tensor_variable(spec.base)
    if len(spec.index) == 0:
        return base
    return pt.set_subtensor(base[spec.rows, spec.cols], theta[spec.index])


def implied_moments(level: LevelPlan, theta: pt.TensorVariable) -> Moments:
    """Σ = F T Ψ Tᵀ Fᵀ, mean = F T α, coef = F T Γ with T = (I − B)⁻¹ and F the observed rows."""
    beta, psi = fill(level.beta, theta), fill(level.psi, theta)
    p, m = len(level.roles.observed), level.beta.base.shape[0]
    if level.beta.base.any() or len(level.beta.index):
        t = pt.linalg.inv(pt.eye(m) - beta)[:p]
    else:
        t = pt.as_tensor_variable(np.eye(m)[:p])
    cov = t @ psi @ t.T
    return Moments(0.5 * (cov + cov.T), (t @ fill(level.alpha, theta))[:, 0], t @ fill(level.gamma, theta))
