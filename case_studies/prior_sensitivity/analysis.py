"""The two-level factor model of ``simulate.py``, the prior sets it is refitted under, and its
estimates beside the generating values.

    within (member):  f  =~ y1 + y2 + y3     (first loading fixed to 1)
    between (cluster): fb =~ y1 + y2 + y3    (first loading fixed to 1)
"""

from __future__ import annotations

import pandas as pd

import bayes_msem as bm
from simulate import LOADINGS, TRUTH

MODEL = """
level: within
  f =~ y1 + y2 + y3
level: between
  fb =~ y1 + y2 + y3
"""

# Default priors of every variance (kind "variance"), one set per refit; the model's other defaults stay.
PRIOR_SETS = {
    "gamma(1, 0.5)[sd], default": {},
    "gamma(2, 4)[sd]": {"variance": "gamma(2, 4)[sd]"},
    "inverse_gamma(0.01, 0.01)[var]": {"variance": "inverse_gamma(0.01, 0.01)[var]"},
}


def truth() -> dict[tuple[str, str, str, str], float]:
    """The generating value of every free parameter, keyed as the parameter table."""
    values = {}
    for factor, level, variance, residual in (("f", "within", "var_within", "residual_within"),
                                              ("fb", "between", "var_between", "residual_between")):
        for k, loading in enumerate(LOADINGS[1:], start=2):
            values[(factor, "=~", f"y{k}", level)] = loading
        values[(factor, "~~", factor, level)] = TRUTH[variance]
        for k in range(1, 4):
            values[(f"y{k}", "~~", f"y{k}", level)] = TRUTH[residual]
    for k in range(1, 4):
        values[(f"y{k}", "~1", "", "between")] = 0.0
    return values


def compare(fit: bm.Fit) -> pd.DataFrame:
    """Posterior mean and 95% interval of each free parameter beside its true value."""
    return fit.recovery(truth()).drop(columns="sd")
