"""Simulate attitudes-to-abortion panel data in the design of Rabe-Hesketh, Skrondal & Pickles (2004)
from the estimates of their Table 1.

Design (Psychometrika 69(2), 167-190; British Social Attitudes Panel Survey 1983-1986): seven
binary items answered at up to four yearly waves by 734 subjects in 57 polling districts; 49 %
of the subjects answered at four waves, 12 % at three, 13 % at two, 25 % at one, and 7 % of the
item responses within an interview are missing. The data-generating model is the paper's
multilevel logit factor model, with no wave effects:

    logit P(y_itjk = 1) = beta_i + lambda_G,i * (u_G,k + zeta_G,jk) + lambda_E,i * zeta_E,jk

    i = item, t = wave, j = subject, k = district
    u_G,k     ~ N(0, Var(u_G))     district part of the general factor
    zeta_G,jk ~ N(0, Var(zeta_G))  subject part of the general factor
    zeta_E,jk ~ N(0, Var(zeta_E))  extreme-circumstances factor (defect, risk, rape only)
    mutually independent; responses independent given the factors.

Every value (beta, lambda_G, lambda_E and the three variances) is read from the package's copy of
Table 1, ``bm.datasets.reference("gllamm_table1")``. Which waves a subject misses, and which item
responses are missing within an interview, is completely at random.

Usage: ``python simulate.py out.csv [seed]``
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

import bayes_msem as bm

N_SUBJECTS = 734
N_DISTRICTS = 57
N_WAVES = 4
# Share of the subjects answering at 1, 2, 3, 4 waves (the paper's 25, 13, 12, 49 %, rescaled to sum to 1).
WAVE_COUNT_SHARES = np.array([0.25, 0.13, 0.12, 0.49]) / 0.99
ITEM_MISSING = 0.07  # share of item responses missing within an interview

TABLE1 = bm.datasets.reference("gllamm_table1")
ITEMS: tuple[str, ...] = tuple(TABLE1.loc[TABLE1["block"] == "intercept", "item"])
EXTREME_ITEMS: tuple[str, ...] = tuple(TABLE1.query("block == 'loading' and factor == 'extreme' and estimate != 0")["item"])


def table1(block: str, factor: str = "", level: str = "") -> pd.Series:
    """Table 1's estimates of one block (intercept, loading, factor_variance), indexed by item or factor."""
    rows = TABLE1[TABLE1["block"] == block]
    if factor:
        rows = rows[rows["factor"] == factor]
    if level:
        rows = rows[rows["level"] == level]
    return rows.set_index("item" if block != "factor_variance" else "factor")["estimate"]


def _district_sizes(rng: np.random.Generator) -> np.ndarray:
    """Unequal district sizes summing to N_SUBJECTS, each at least 2."""
    weights = rng.gamma(shape=2.0, scale=1.0, size=N_DISTRICTS)
    extra = rng.multinomial(N_SUBJECTS - 2 * N_DISTRICTS, weights / weights.sum())
    return extra + 2


def _wave_counts() -> np.ndarray:
    """How many subjects answer at 1, 2, 3, 4 waves: the design's shares of N_SUBJECTS, rounded so
    that they sum to N_SUBJECTS (largest remainders)."""
    exact = WAVE_COUNT_SHARES * N_SUBJECTS
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: N_SUBJECTS - counts.sum()]] += 1
    return counts


def simulate(seed: int = 2004) -> pd.DataFrame:
    """Long data, one row per subject x wave: district, subject, wave and the seven items (NaN where
    the wave or the item response is missing)."""
    rng = np.random.default_rng(seed)
    district = np.repeat(np.arange(1, N_DISTRICTS + 1), _district_sizes(rng))
    subject = np.arange(1, N_SUBJECTS + 1)

    subject_variance, district_variance = table1("factor_variance", level="subject"), table1("factor_variance", level="district")
    u_general = rng.normal(0.0, np.sqrt(district_variance["general"]), N_DISTRICTS)
    zeta_general = rng.normal(0.0, np.sqrt(subject_variance["general"]), N_SUBJECTS)
    zeta_extreme = rng.normal(0.0, np.sqrt(subject_variance["extreme"]), N_SUBJECTS)
    general = u_general[district - 1] + zeta_general

    n_waves = rng.permutation(np.repeat(np.arange(1, N_WAVES + 1), _wave_counts()))
    observed = np.zeros((N_SUBJECTS, N_WAVES), dtype=bool)
    for j, m in enumerate(n_waves):
        observed[j, rng.choice(N_WAVES, size=m, replace=False)] = True

    beta = table1("intercept")[list(ITEMS)].to_numpy()
    lambda_general = table1("loading", "general")[list(ITEMS)].to_numpy()
    lambda_extreme = table1("loading", "extreme")[list(ITEMS)].to_numpy()

    # eta[j, t, i] = beta_i + lambda_G,i * general_j + lambda_E,i * zeta_E,j (the same at every wave t)
    eta = beta + general[:, None] * lambda_general + zeta_extreme[:, None] * lambda_extreme
    eta = np.repeat(eta[:, None, :], N_WAVES, axis=1)
    y = (rng.random(eta.shape) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    y[~observed] = np.nan
    y[rng.random(y.shape) < ITEM_MISSING] = np.nan

    out = pd.DataFrame({
        "district": np.repeat(district, N_WAVES),
        "subject": np.repeat(subject, N_WAVES),
        "wave": np.tile(np.arange(1, N_WAVES + 1), N_SUBJECTS),
    })
    out[list(ITEMS)] = y.reshape(N_SUBJECTS * N_WAVES, len(ITEMS))
    return out[observed.reshape(-1)].reset_index(drop=True)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python simulate.py out.csv [seed]")
    simulate(int(sys.argv[2]) if len(sys.argv) == 3 else 2004).to_csv(sys.argv[1], index=False)
