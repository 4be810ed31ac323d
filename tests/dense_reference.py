"""numpy pieces the dense-reference tests share: a level's matrices at θ and the RAM formula."""

import numpy as np

from bayes_msem.plan import LevelPlan, MatrixSpec


def fill(spec: MatrixSpec, theta: np.ndarray) -> np.ndarray:
    """The matrix ``spec.base`` with its free entries set from θ."""
    m = spec.base.copy()
    m[spec.rows, spec.cols] = theta[spec.index]
    return m


def ram_moments(b, g, psi, alpha, select):
    """Σ, mean and covariate coefficients of the variables at ``select``: with T = (I − B)⁻¹,
    T Ψ Tᵀ, T α and T Γ."""
    t = np.linalg.inv(np.eye(len(b)) - b)[select]
    return t @ psi @ t.T, (t @ alpha)[:, 0], t @ g


def level_moments(level: LevelPlan, theta: np.ndarray, select=None):
    """:func:`ram_moments` of a level at θ; by default of its observed variables."""
    select = np.arange(len(level.roles.observed)) if select is None else select
    return ram_moments(fill(level.beta, theta), fill(level.gamma, theta), fill(level.psi, theta),
                       fill(level.alpha, theta), select)
