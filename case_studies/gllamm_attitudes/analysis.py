"""Fit the logit variance-components factor model to data simulated by ``simulate.py`` and set the
estimates beside the values that generated them.

The panel is put in wide form, one row per subject with the 28 responses y{item}_{wave}
(missing where a wave is missing), so subjects are the units and districts the clusters:

    within (subject):  G =~ λ_k y{k}_t (all items, λ_1 = 1),  E =~ μ_k y{k}_t (items 5-7, μ_5 = 1),
                       G and E uncorrelated
    between (district): D =~ λ_k y{k}_t (the general factor's district part: the same loadings),
                        no item-specific district variance, an intercept per item and wave (β_k + τ_t).

Usage: ``python analysis.py [results.md [seed]]`` (the simulation's seed, 2004 by default)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_msem as bm

sys.path.insert(0, str(Path(__file__).parent))
from simulate import EXTREME_ITEMS, ITEMS, N_WAVES, TRUTH, simulate  # noqa: E402

WAVES = range(1, N_WAVES + 1)


def wide(data: pd.DataFrame) -> pd.DataFrame:
    """One row per subject: district and y{item}_{wave}."""
    out = data.pivot(index=["district", "subject"], columns="wave", values=list(ITEMS))
    out.columns = [f"{item}_{wave}" for item, wave in out.columns]
    return out.reset_index()


def syntax() -> str:
    """The model in lavaan syntax, loadings equal over waves (and levels) by their labels."""
    def loadings(factor: str, items, prefix: str) -> str:
        terms = [f"{'1' if k == 0 else prefix + item[1:]}*{item}_{t}" for k, item in enumerate(items) for t in WAVES]
        return f"  {factor} =~ " + " + ".join(terms)

    between = [f"  {item}_{t} ~~ 0*{item}_{t}" for item in ITEMS for t in WAVES]
    return "\n".join(["level: within", loadings("G", ITEMS, "g"), loadings("E", EXTREME_ITEMS, "e"), "  G ~~ 0*E",
                      "level: between", loadings("D", ITEMS, "g"), *between])


def truth() -> dict[tuple[str, str, str, str], float]:
    """The generating value of every free parameter, keyed as the parameter table."""
    values = {("G", "~~", "G", "within"): TRUTH["var_general_subject"],
              ("E", "~~", "E", "within"): TRUTH["var_extreme_subject"],
              ("D", "~~", "D", "between"): TRUTH["var_general_district"]}
    for item in ITEMS[1:]:
        values[("G", "=~", f"{item}_1", "within")] = TRUTH[f"loading_general_{item}"]
    for item in EXTREME_ITEMS[1:]:
        values[("E", "=~", f"{item}_1", "within")] = TRUTH[f"loading_extreme_{item}"]
    for item in ITEMS:
        for t in WAVES:
            values[(f"{item}_{t}", "~1", "", "between")] = TRUTH[f"intercept_{item}"] + TRUTH.get(f"wave_{t}", 0.0)
    return values


def compare(fit: bm.Fit) -> pd.DataFrame:
    """Posterior mean, SD and 95% interval beside the truth, one row per distinct parameter."""
    return fit.recovery(truth())


def main(path: str | None = None, seed: int = 2004) -> pd.DataFrame:
    data = wide(simulate(seed))
    items = [c for c in data.columns if c[0] == "y"]
    model = bm.Model(syntax(), data, cluster="district", family={c: "bernoulli" for c in items})
    fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=4)
    result = compare(fit)
    d = fit.diagnostics()["value"]
    text = (f"seed {seed}: {len(data)} subjects in {data['district'].nunique()} districts, "
            f"{int(np.isnan(data[items].to_numpy()).sum() / 7)} missing subject-waves; 4 chains x 1000 draws; "
            f"{d['divergences']:.0f} divergences, max R-hat {d['r_hat']:.3f}, min bulk ESS {d['ess_bulk']:.0f}; "
            f"{result['covered'].sum()} of {len(result)} true values inside their 95% intervals; "
            f"{fit.info['seconds_compile']:.0f} s compile, {fit.info['seconds_sample']:.0f} s sampling\n\n"
            + result.round(3).to_string(index=False) + "\n")
    if path:
        Path(path).write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None, int(sys.argv[2]) if len(sys.argv) > 2 else 2004)
