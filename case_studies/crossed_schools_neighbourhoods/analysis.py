"""Fit the cross-classified random-intercept model (pupils in schools and in neighbourhoods) to the
``crossed_schools`` data set and set the posterior beside statsmodels' maximum-likelihood estimates
and the values that generated the data (scripts/crossed_reference.py).

Usage: ``python analysis.py [results.md]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

import bayes_msem as bm

DATASET = bm.datasets.info("crossed_schools")  # its model, options and parameter names
TRUTH = {"intercept": 1.0, "slope_x": 0.5, "var_school": 0.30, "var_neighbourhood": 0.15, "var_residual": 1.0}


def compare(fit: bm.Fit) -> pd.DataFrame:
    """Per parameter: the truth, statsmodels' ML estimate and SE, the posterior mean, SD and 95%
    interval, and the distance of the posterior mean from the ML estimate in posterior SDs."""
    names = DATASET.parameters
    reference = bm.datasets.reference("crossed_schools").set_index("param")
    table = fit.parameters()
    table = table[table["free"]]
    table = table.set_index(table["level"] + ":" + table["lhs"] + table["op"] + table["rhs"])
    rows = []
    for param, name in names.items():
        ours = table.loc[name]
        rows.append({"parameter": param, "truth": TRUTH[param], "ML": reference.loc[param, "est"],
                     "ML SE": reference.loc[param, "se"], "mean": ours["mean"], "sd": ours["sd"],
                     "2.5%": ours["eti_2.5%"], "97.5%": ours["eti_97.5%"],
                     "(mean - ML) / sd": (ours["mean"] - reference.loc[param, "est"]) / ours["sd"]})
    return pd.DataFrame(rows)


def main(path: str | None = None) -> pd.DataFrame:
    data = bm.datasets.load("crossed_schools")
    model = bm.Model(DATASET.model, data, **DATASET.options)
    fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=1)
    result = compare(fit)
    checks = fit.diagnostics()["value"]
    text = (f"{len(data)} pupils, {data['school'].nunique()} schools, {data['neighbourhood'].nunique()} "
            f"neighbourhoods (crossed); strategy {model.strategy.name}; 4 chains x 1000 draws; "
            f"{checks['divergences']:.0f} divergences, max R-hat {checks['r_hat']:.3f}, "
            f"min bulk ESS {checks['ess_bulk']:.0f}\n\n" + result.round(3).to_string(index=False) + "\n")
    if path:
        Path(path).write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
