"""Fit the three-level random-intercept model (children in schools in counties) to data simulated
by ``simulate.py`` and set the posterior beside the truth.

Usage: ``python analysis.py [results.md]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

import bayes_msem as bm

sys.path.insert(0, str(Path(__file__).parent))
from simulate import TRUTH, simulate  # noqa: E402

MODEL = """
level: within
  y ~ x
level: school
  y ~~ y
level: county
  y ~~ y
"""

ROWS = {  # TRUTH key → (lhs, op, rhs, level) of the parameter table
    "intercept": ("y", "~1", "", "county"),
    "slope_x": ("y", "~", "x", "within"),
    "var_U_county": ("y", "~~", "y", "county"),
    "var_V_school": ("y", "~~", "y", "school"),
    "var_E_child": ("y", "~~", "y", "within"),
}


def compare(fit: bm.Fit) -> pd.DataFrame:
    """Posterior mean, SD and 95% interval of each parameter beside its true value."""
    return fit.recovery({key: TRUTH[name] for name, key in ROWS.items()}, {key: name for name, key in ROWS.items()})


def main(path: str | None = None) -> pd.DataFrame:
    data = simulate()
    fit = bm.Model(MODEL, data, cluster=["school", "county"]).fit(draws=1000, tune=1000, chains=4, random_seed=3)
    result = compare(fit)
    text = (f"{len(data)} children, {data['school'].nunique()} schools, {data['county'].nunique()} counties; "
            f"4 chains x 1000 draws; {fit.diagnostics().loc['divergences', 'value']:.0f} divergences, "
            f"max R-hat {fit.diagnostics().loc['r_hat', 'value']:.3f}\n\n" + result.round(3).to_string(index=False) + "\n")
    if path:
        Path(path).write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
