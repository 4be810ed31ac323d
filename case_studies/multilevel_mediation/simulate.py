"""Simulate a 1-1-1 design with two mediators at both levels, MSALT-like intraclass correlations.

Students i in classrooms j. Each of x, m1, m2, y is the sum of a classroom part (between) and a
student part (within), and the same path model holds at each level with its own coefficients:

    m1 = a1 x + e1,   m2 = a2 x + e2,   y = b1 m1 + b2 m2 + c x + e_y,   Cov(e1, e2) ≠ 0

(plus intercepts at the between level). The values in ``TRUTH`` are illustrative, chosen so
that the population ICCs of x, m1, m2, y are about .03, .11, .13, .04 (:func:`population_icc`).

Usage: ``python simulate.py out.csv``
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

VARIABLES = ("x", "m1", "m2", "y")
TARGET_ICC = {"x": 0.03, "m1": 0.11, "m2": 0.13, "y": 0.04}

#: Per level: paths a1, a2 (x → m), b1, b2 (m → y), c (x → y); variance of x; residual variances of
#: m1, m2, y and the residual covariance of m1 and m2; between level also the x mean and intercepts.
TRUTH: dict[str, dict[str, float]] = {
    "within": {"a1": 0.3, "a2": 0.25, "b1": 0.3, "b2": 0.2, "c": 0.1,
               "var_x": 1.0, "var_m1": 0.9, "var_m2": 0.9, "cov_m1_m2": 0.2, "var_y": 0.8},
    "between": {"a1": 1.0, "a2": 0.8, "b1": 0.3, "b2": 0.2, "c": 0.05,
                "var_x": 0.031, "var_m1": 0.09, "var_m2": 0.125, "cov_m1_m2": 0.03, "var_y": 0.017,
                "mean_x": 0.0, "int_m1": 2.0, "int_m2": 3.0, "int_y": 1.0},
}


def indirect_effects(level: str) -> dict[str, float]:
    """True specific (a_k b_k) and total indirect effects of x on y at one level."""
    t = TRUTH[level]
    ind1, ind2 = t["a1"] * t["b1"], t["a2"] * t["b2"]
    return {"ind_m1": ind1, "ind_m2": ind2, "ind_total": ind1 + ind2}


def _paths(t: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """T = (I − B)⁻¹ over (x, m1, m2, y) and the disturbance covariance Ψ of a level."""
    b = np.zeros((4, 4))
    b[1, 0], b[2, 0], b[3, 1], b[3, 2], b[3, 0] = t["a1"], t["a2"], t["b1"], t["b2"], t["c"]
    psi = np.diag([t["var_x"], t["var_m1"], t["var_m2"], t["var_y"]])
    psi[1, 2] = psi[2, 1] = t["cov_m1_m2"]
    return np.linalg.inv(np.eye(4) - b), psi


def level_covariance(level: str) -> np.ndarray:
    """Σ = T Ψ Tᵀ of (x, m1, m2, y) at one level."""
    t, psi = _paths(TRUTH[level])
    return t @ psi @ t.T


def population_icc() -> dict[str, float]:
    """ICC = σ²_between / (σ²_between + σ²_within) of each variable under ``TRUTH``."""
    between, within = np.diag(level_covariance("between")), np.diag(level_covariance("within"))
    return dict(zip(VARIABLES, between / (between + within)))


def sample_icc(data: pd.DataFrame, cluster: str = "classroom") -> dict[str, float]:
    """The ANOVA estimator ICC(1) = (MSB − MSW) / (MSB + (n₀ − 1) MSW) of each variable, with
    n₀ = (N − Σ n_j² / N) / (J − 1) for unequal cluster sizes."""
    sizes = data.groupby(cluster).size().to_numpy()
    n, j = sizes.sum(), len(sizes)
    n0 = (n - (sizes**2).sum() / n) / (j - 1)
    out = {}
    for name in VARIABLES:
        groups = data.groupby(cluster)[name]
        means = groups.mean().to_numpy()
        msb = (sizes * (means - data[name].mean()) ** 2).sum() / (j - 1)
        msw = ((data[name] - groups.transform("mean")) ** 2).sum() / (n - j)
        out[name] = (msb - msw) / (msb + (n0 - 1) * msw)
    return out


def simulate(seed: int = 2010, n_classrooms: int = 150, size: tuple[int, int] = (20, 40)) -> pd.DataFrame:
    """One row per student: classroom, x, m1, m2, y (classroom sizes uniform in ``size``)."""
    rng = np.random.default_rng(seed)
    classroom = np.repeat(np.arange(n_classrooms), rng.integers(size[0], size[1] + 1, size=n_classrooms))
    b = TRUTH["between"]
    t_b, psi_b = _paths(b)
    intercepts = np.array([b["mean_x"], b["int_m1"], b["int_m2"], b["int_y"]])
    between = (intercepts + rng.multivariate_normal(np.zeros(4), psi_b, size=n_classrooms)) @ t_b.T
    t_w, psi_w = _paths(TRUTH["within"])
    within = rng.multivariate_normal(np.zeros(4), psi_w, size=len(classroom)) @ t_w.T
    values = between[classroom] + within
    return pd.DataFrame({"classroom": classroom + 1, **dict(zip(VARIABLES, values.T))})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python simulate.py out.csv")
    simulate().to_csv(sys.argv[1], index=False)
