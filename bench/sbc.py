"""Simulation-based calibration of the three likelihood strategies, and of the two-level CFA.

The strategies' designs are those of the slow test ``tests/test_study.py::test_simulation_based_calibration``
(30 clusters of 6; tight priors; 100 replications, seed 2024, 2 chains x 250 draws after 250
warm-up, the truth ranked among 50 thinned draws, 10 bins), so the figures here are the test's.
The CFA is ``examples.TWOLEVEL_CFA`` with 50 clusters of 10 under priors centred near the values of
``bench/study_cfa.py``. Prints the chi-square test of every parameter and writes the rank
histograms to ``bench/sbc_<design>.png``; the replications are stored under ``--out`` (rerunning
resumes). Figures are in ``bench/STUDY.md``.

    .venv/bin/python bench/sbc.py                 # all designs
    .venv/bin/python bench/sbc.py marginal cfa    # some
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

import bayes_msem as bm
from bayes_msem.examples import TWOLEVEL_CFA, simulate_twolevel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_study import CALIBRATED, TIGHT, _frame  # noqa: E402  (the slow test's designs)

CFA_PRIORS = {"loading": "normal(0.8, 0.2)", "regression": "normal(0.4, 0.2)", "intercept": "normal(0, 1)",
              "variance": "gamma(10, 20)[sd]"}  # residual and factor SDs about 0.5 (0.35-0.7)
SETTINGS = {"draws": 250, "tune": 250, "chains": 2, "rank_draws": 49}


def designs() -> dict[str, tuple[bm.Model, int, dict]]:
    """Per design: the model, the replications and the data design."""
    out = {name: (bm.Model(syntax, _frame(), cluster="g", priors=TIGHT, **options), 100,
                  {"n_clusters": 30, "cluster_size": 6}) for name, (syntax, options) in CALIBRATED.items()}
    out["cfa"] = (bm.Model(TWOLEVEL_CFA, simulate_twolevel(50, seed=1), cluster="school", priors=CFA_PRIORS), 200,
                  {"n_clusters": 50, "cluster_size": 10})
    return out


def main() -> None:
    known = designs()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("designs", nargs="*", metavar="DESIGN", help=f"some of {', '.join(known)} (default all)")
    parser.add_argument("--out", type=Path, default=Path("out/sbc"))
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    unknown = set(args.designs) - set(known)
    if unknown:
        parser.error(f"unknown design(s) {', '.join(sorted(unknown))}; choose from {', '.join(known)}")
    for name in args.designs or list(known):
        model, replications, design = known[name]
        started = time.perf_counter()
        result = bm.study(model, "prior", replications, design, out=args.out / name, seed=2024, workers=0, **SETTINGS)
        wall = time.perf_counter() - started
        table = result.sbc(bins=10)
        result.plot_ranks(Path(__file__).with_name(f"sbc_{name}.png"), bins=10)
        fits = result.replications.groupby("replication").agg(divergences=("divergences", "first"), r_hat=("r_hat", "max"))
        print(f"\n=== {name} ({model.strategy.kind}): {replications} replications, {len(result.failures())} failed, "
              f"wall time of this run {wall:.0f} s; fits with divergences {(fits['divergences'] > 0).mean():.2f}, "
              f"with max R-hat > 1.05 {(fits['r_hat'] > 1.05).mean():.2f}")
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
        print(f"smallest p {table['p_value'].min():.3f} against 0.01 / {len(table)} = {0.01 / len(table):.4f}: "
              f"{'pass' if (table['p_value'] > 0.01 / len(table)).all() else 'FAIL'}")


if __name__ == "__main__":
    main()
