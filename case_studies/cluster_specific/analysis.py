"""The random-intercept-and-slope model of ``simulate.py`` and what the notebook sets its
cluster-specific estimates against: the generating values and per-school least squares.

    within (pupil):   y = b_j + s_j x + e        (s | y ~ x: the slope varies over schools)
    between (school): b_j and s_j, each with a mean and a variance, and their covariance
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import bayes_msem as bm
from simulate import TRUTH

MODEL = """
level: within
  s | y ~ x
level: between
  s ~~ y
"""

ROWS = {  # TRUTH key → (lhs, op, rhs, level) of the parameter table
    "mean_intercept": ("y", "~1", "", "between"),
    "mean_slope": ("s", "~1", "", "between"),
    "var_intercept": ("y", "~~", "y", "between"),
    "var_slope": ("s", "~~", "s", "between"),
    "cov": ("s", "~~", "y", "between"),
    "var_pupil": ("y", "~~", "y", "within"),
}


def compare(fit: bm.Fit) -> pd.DataFrame:
    """Posterior mean, SD and 95% interval of each population parameter beside its true value."""
    return fit.recovery({key: TRUTH[name] for name, key in ROWS.items()}, {key: name for name, key in ROWS.items()})


def least_squares(pupils: pd.DataFrame) -> pd.DataFrame:
    """Per school, the ordinary least-squares intercept and slope of y on x, fitted to that
    school's pupils alone (no pooling)."""
    def fit(group: pd.DataFrame) -> pd.Series:
        design = np.column_stack([np.ones(len(group)), group["x"]])
        intercept, slope = np.linalg.lstsq(design, group["y"], rcond=None)[0]
        return pd.Series({"intercept": intercept, "slope": slope})

    return pupils.groupby("school")[["x", "y"]].apply(fit).reset_index()
