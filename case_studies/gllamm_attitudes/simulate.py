"""Simulate attitudes-to-abortion panel data in the design of Rabe-Hesketh, Skrondal & Pickles (2004).

Design (Psychometrika 69(2), 167-190; British Social Attitudes Panel Survey 1983-1986):
seven binary items answered at up to four yearly waves by 734 subjects in 57 polling
districts, unbalanced, with missing waves. The data-generating model is a logit
variance-components factor model:

    logit P(y_kijt = 1) = beta_k + tau_t
                          + lambda_k^G * (D_j + S_ij)     # general factor
                          + lambda_k^E * E_ij             # extreme-circumstances factor

    k = item 1..7, i = subject, j = district, t = wave 1..4
    D_j  ~ N(0, var_general_district)    district part of the general factor
    S_ij ~ N(0, var_general_subject)     subject part of the general factor
    E_ij ~ N(0, var_extreme_subject)     loads on items 5-7 only
    lambda_1^G = 1, lambda_5^E = 1 (scale), lambda_k^E = 0 for k = 1..4, tau_1 = 0,
    D, S, E mutually independent; responses independent given the factors.

The values in ``TRUTH`` are illustrative, not the published Table 1 estimates (see
README.md): the structure and the sample sizes follow the design.

Usage: ``python simulate.py out.csv``
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

N_SUBJECTS = 734
N_DISTRICTS = 57
N_WAVES = 4
ITEMS = ("y1", "y2", "y3", "y4", "y5", "y6", "y7")
EXTREME_ITEMS = ("y5", "y6", "y7")  # defect, health, rape

# Share of subjects observed at 1, 2, 3, 4 waves (410 of the panel's respondents answered all four).
WAVE_COUNT_PROBS = (0.15, 0.15, 0.14, 0.56)

# Illustrative values (logit scale) giving plausible endorsement rates:
# items 1-4 near 30-60 % "yes", extreme-circumstance items near 85-95 %.
TRUTH: dict[str, float] = {
    "intercept_y1": -0.6,  # woman decides on her own
    "intercept_y2": 0.4,   # couple agree they do not wish to have the child
    "intercept_y3": 0.2,   # woman not married, does not wish to marry the man
    "intercept_y4": 0.7,   # couple cannot afford any more children
    "intercept_y5": 3.2,   # strong chance of a defect in the baby
    "intercept_y6": 4.6,   # woman's health seriously endangered
    "intercept_y7": 4.0,   # pregnant as a result of rape
    "wave_2": -0.4,        # wave effects relative to wave 1 (1983)
    "wave_3": -0.2,
    "wave_4": 0.0,
    "loading_general_y1": 1.0,  # fixed (scale of the general factor)
    "loading_general_y2": 1.1,
    "loading_general_y3": 1.0,
    "loading_general_y4": 0.9,
    "loading_general_y5": 0.6,
    "loading_general_y6": 0.5,
    "loading_general_y7": 0.6,
    "loading_extreme_y5": 1.0,  # fixed (scale of the extreme factor)
    "loading_extreme_y6": 1.2,
    "loading_extreme_y7": 1.1,
    "var_general_subject": 5.0,
    "var_general_district": 0.3,
    "var_extreme_subject": 2.0,
}


def _district_sizes(rng: np.random.Generator) -> np.ndarray:
    """Unequal district sizes summing to N_SUBJECTS, each at least 2."""
    weights = rng.gamma(shape=2.0, scale=1.0, size=N_DISTRICTS)
    extra = rng.multinomial(N_SUBJECTS - 2 * N_DISTRICTS, weights / weights.sum())
    return extra + 2


def simulate(seed: int = 2004) -> pd.DataFrame:
    """Long data, one row per subject x wave: district, subject, wave, y1..y7 (NaN if wave missing)."""
    rng = np.random.default_rng(seed)
    district = np.repeat(np.arange(1, N_DISTRICTS + 1), _district_sizes(rng))
    subject = np.arange(1, N_SUBJECTS + 1)

    d = rng.normal(0.0, np.sqrt(TRUTH["var_general_district"]), N_DISTRICTS)
    s = rng.normal(0.0, np.sqrt(TRUTH["var_general_subject"]), N_SUBJECTS)
    e = rng.normal(0.0, np.sqrt(TRUTH["var_extreme_subject"]), N_SUBJECTS)
    general = d[district - 1] + s  # per subject

    n_obs = rng.choice(np.arange(1, N_WAVES + 1), size=N_SUBJECTS, p=WAVE_COUNT_PROBS)
    observed = np.zeros((N_SUBJECTS, N_WAVES), dtype=bool)
    for i, m in enumerate(n_obs):
        observed[i, rng.choice(N_WAVES, size=m, replace=False)] = True

    tau = np.array([0.0] + [TRUTH[f"wave_{t}"] for t in range(2, N_WAVES + 1)])
    beta = np.array([TRUTH[f"intercept_{k}"] for k in ITEMS])
    lam_g = np.array([TRUTH[f"loading_general_{k}"] for k in ITEMS])
    lam_e = np.array([TRUTH.get(f"loading_extreme_{k}", 0.0) for k in ITEMS])

    # eta[i, t, k] = beta_k + tau_t + lam_g_k * general_i + lam_e_k * e_i
    eta = (beta[None, None, :] + tau[None, :, None]
           + (general[:, None] * lam_g[None, :] + e[:, None] * lam_e[None, :])[:, None, :])
    y = (rng.random(eta.shape) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    y[~observed] = np.nan

    out = pd.DataFrame({
        "district": np.repeat(district, N_WAVES),
        "subject": np.repeat(subject, N_WAVES),
        "wave": np.tile(np.arange(1, N_WAVES + 1), N_SUBJECTS),
    })
    out[list(ITEMS)] = y.reshape(N_SUBJECTS * N_WAVES, len(ITEMS))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python simulate.py out.csv")
    simulate().to_csv(sys.argv[1], index=False)
