"""Model-implied moments of one level, in PyTensor: the building block every likelihood shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt

from ..spec.plan import LevelPlan, MatrixSpec, Plan, RandomCovariance, RandomEntries
from ..spec.table import BETWEEN


@dataclass(frozen=True)
class Moments:
    """Moments of the selected variables of a level given its covariates x.

    ``v | x ~ N(mean + coef · x, cov)`` with cov (..., p, p), mean (..., p), coef (..., p, q);
    a leading cluster axis when the level has random parameters.
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


def implied_moments(level: LevelPlan, theta: pt.TensorVariable, random: pt.TensorVariable | None = None,
                    select: np.ndarray | None = None) -> Moments:
    """cov = F T Ψ Tᵀ Fᵀ, mean = F T α, coef = F T Γ with T = (I − B)⁻¹.

    F selects the variables at positions ``select`` (default: the observed ones). With
    ``random`` (J, K), the cluster values r_j of the random parameters, B, Γ and Ψ get
    cluster-specific entries and the moments a leading cluster axis.
    """
    beta, gamma, psi = level_matrices(level, theta, random)
    select = np.arange(len(level.roles.observed)) if select is None else select
    t = _total_effects(beta, path_length(level))[..., select, :]
    cov = small_matmul(small_matmul(t, psi), t.mT)
    return Moments(0.5 * (cov + cov.mT), (t @ fill(level.alpha, theta))[..., 0], small_matmul(t, gamma))


def level_moments(plan: Plan, theta: pt.TensorVariable) -> dict[str, Moments]:
    """The implied moments of every level of ``plan`` at θ, by level name."""
    return {level: implied_moments(lp, theta) for level, lp in plan.levels.items()}


def between_with_random(plan: Plan, theta: pt.TensorVariable) -> Moments:
    """Between-level moments of (observed between variables, random parameters), in that order."""
    between = plan.levels[BETWEEN]
    position = {v: i for i, v in enumerate(between.variables)}
    select = np.array([position[v] for v in (*between.roles.observed, *(r.name for r in plan.random))])
    return implied_moments(between, theta, select=select)


def level_matrices(level: LevelPlan, theta: pt.TensorVariable, random: pt.TensorVariable | None = None
                   ) -> tuple[pt.TensorVariable, pt.TensorVariable, pt.TensorVariable]:
    """B, Γ and Ψ of a level from θ; with ``random`` (J, K) per cluster (a leading cluster axis on
    those with random entries): random slopes and loadings, exp of random log-variances, and the
    covariance blocks Φ_j."""
    beta, gamma, psi = fill(level.beta, theta), fill(level.gamma, theta), fill(level.psi, theta)
    if random is not None:
        beta = _with_random(beta, level.random.get("beta"), random)
        gamma = _with_random(gamma, level.random.get("gamma"), random)
        psi = _with_random(psi, level.random.get("psi"), random)
        for block in level.random_covariances:
            psi = _with_random_covariance(psi, block, random)
    return beta, gamma, psi


def small_matmul(a: pt.TensorVariable, b: pt.TensorVariable) -> pt.TensorVariable:
    """a @ b; for a batch of small matrices as a broadcast product summed over the shared axis,
    which compiles to one fused loop instead of a BLAS call per matrix."""
    if a.ndim <= 2 and b.ndim <= 2:
        return a @ b
    return (a[..., :, :, None] * b[..., None, :, :]).sum(-2)


def total_effects(level: LevelPlan, theta: pt.TensorVariable) -> pt.TensorVariable:
    """F (I − B)⁻¹: the total effects of every variable of a level on its observed ones."""
    return all_effects(level, theta)[: len(level.roles.observed)]


def all_effects(level: LevelPlan, theta: pt.TensorVariable, random: pt.TensorVariable | None = None) -> pt.TensorVariable:
    """(I − B)⁻¹: the total effects among all the variables of a level (per cluster with ``random``)."""
    return _total_effects(level_matrices(level, theta, random)[0], path_length(level))


def path_length(level: LevelPlan) -> int | None:
    """The longest directed path in the level's B (fixed, free and random entries); None if B has a cycle."""
    edges = level.beta.pattern
    if "beta" in level.random:
        edges[level.random["beta"].rows, level.random["beta"].cols] = True
    reach, length = edges.copy(), 0
    while reach.any():  # reach = paths of length length + 1
        length += 1
        if length > len(edges):
            return None
        reach = (reach.astype(int) @ edges.astype(int)) > 0
    return length


def _total_effects(beta: pt.TensorVariable, length: int | None) -> pt.TensorVariable:
    """T = (I − B)⁻¹: for an acyclic B with longest path d the finite sum I + B + … + B^d,
    by Horner's rule T = I + B (I + B (…)); for a non-recursive model, a matrix inverse."""
    eye = np.eye(beta.type.shape[-1])
    if length is None:
        return pt.linalg.inv(eye - beta)
    t = pt.as_tensor_variable(eye)
    for step in range(length):
        t = eye + (beta if step == 0 else small_matmul(beta, t))
    return t


def _with_random(matrix: pt.TensorVariable, entries: RandomEntries | None, random: pt.TensorVariable) -> pt.TensorVariable:
    """``matrix`` (zero at the random entries) plus each cluster's random entries (exp of log-variances)."""
    if entries is None:
        return matrix
    values = random[:, entries.index]
    values = pt.where(entries.exponentiate, pt.exp(values), values)
    return matrix + pt.tensordot(values, _placement(entries.rows, entries.cols, matrix.type.shape), axes=1)


def _with_random_covariance(psi: pt.TensorVariable, block: RandomCovariance, random: pt.TensorVariable) -> pt.TensorVariable:
    """Ψ plus the cluster-specific block Φ_j = diag(e^τ_j) L_j L_jᵀ diag(e^τ_j)."""
    k = len(block.log_sd)
    sd = pt.exp(random[:, block.log_sd])
    chol = sd[:, :, None] * correlation_cholesky(pt.tanh(random[:, block.correlation]), k)
    phi = small_matmul(chol, chol.mT).reshape((-1, k * k))
    rows, cols = np.meshgrid(block.positions, block.positions, indexing="ij")
    return psi + pt.tensordot(phi, _placement(rows.ravel(), cols.ravel(), psi.type.shape[-2:]), axes=1)


def _placement(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """One-hot matrices E_e (n, *shape) with E_e[rows[e], cols[e]] = 1, so Σ_e v_e E_e places values."""
    placement = np.zeros((len(rows), *shape[-2:]))
    placement[np.arange(len(rows)), rows, cols] = 1.0
    return placement


def correlation_cholesky(partial: pt.TensorVariable, k: int) -> pt.TensorVariable:
    """Cholesky factor L (..., k, k), k ≥ 2, of a correlation matrix from canonical partial correlations.

    ``partial`` (..., k(k−1)/2) in (−1, 1), ordered (0,1), (0,2), …, (1,2), …: L₀₀ = 1,
    L_i0 = c_0i, L_ij = c_ji √(1 − Σ_{l<j} L_il²), L_ii = √(1 − Σ_{l<i} L_il²) — a valid
    correlation matrix for any values (the LKJ onion construction).
    """
    pair = {(a, b): n for n, (a, b) in enumerate((a, b) for a in range(k) for b in range(a + 1, k))}
    rows = []
    for i in range(k):
        row, remaining = [], 1.0
        for j in range(i):
            value = partial[..., pair[(j, i)]] * pt.sqrt(remaining)
            row.append(value)
            remaining = remaining - value**2
        row.append(pt.sqrt(remaining) * pt.ones_like(partial[..., 0]))
        rows.append(pt.stack(row + [pt.zeros_like(partial[..., 0])] * (k - i - 1), axis=-1))
    return pt.stack(rows, axis=-2)
