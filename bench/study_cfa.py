"""Monte Carlo study of the two-level CFA (``examples.TWOLEVEL_CFA`` at ``TWOLEVEL_TRUTH``): 50
clusters of 10 rows per data set, x and w drawn N(0, 1), 2 chains x 500 draws after 500 warm-up.

One study per ``--seeds`` entry (``--replications`` each, stored under ``--out/seed-S``; rerunning
resumes an interrupted run), then all of them pooled. Prints per parameter the bias, RMSE, 95%
coverage, power, mean R-hat and ESS, and per group of parameters the coverage against the
per-parameter Monte Carlo band 0.95 +- 2 sqrt(0.95 * 0.05 / R); writes the per-parameter tables to
``bench/study_cfa_summary.csv``. Figures are in ``bench/STUDY.md``.

    .venv/bin/python bench/study_cfa.py                                    # 2 x 200 replications
    .venv/bin/python bench/study_cfa.py --seeds 1 --replications 20        # a quick look
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_msem as bm
from bayes_msem.examples import TWOLEVEL_CFA, TWOLEVEL_TRUTH, simulate_twolevel
from bayes_msem.studies.study import StudyResult

COLUMNS = ["truth", "estimate", "bias", "bias_mcse", "relative_bias", "median_relative_bias", "rmse", "sd_estimate",
           "mean_sd", "coverage", "power", "r_hat", "ess_bulk"]


def group(level: str, kind: str, parameter: str) -> str:
    """The parameter's group in the coverage table (factor variances apart from residual ones)."""
    if kind == "variance":
        return f"{level} {'factor' if parameter.split('~~')[-1].startswith('f') else 'residual'} variances"
    return f"{level} {kind}s"


def report(name: str, result: StudyResult) -> pd.DataFrame:
    """Print the per-parameter table, the coverage by group and the convergence of the fits."""
    table = result.summary()
    table["median_relative_bias"] = result.summary("median")["relative_bias"]
    print(f"\n=== {name}\n" + table[COLUMNS].to_string(float_format=lambda v: f"{v:.3f}"))
    replications = int(table["replications"].min())
    table["group"] = [group(*r) for r in table.reset_index()[["level", "kind", "parameter"]].itertuples(index=False)]
    coverage = table.groupby("group")["coverage"].agg(parameters="size", coverage="mean", least="min", most="max")
    print(f"\nCoverage by group (per-parameter Monte Carlo band 0.95 +- {2 * np.sqrt(0.95 * 0.05 / replications):.3f} "
          f"for {replications} replications):\n" + coverage.to_string(float_format=lambda v: f"{v:.3f}"))
    fits = result.replications.groupby("replication").agg(divergences=("divergences", "first"), r_hat=("r_hat", "max"),
                                                          seconds=("seconds", "first"))
    print(f"\n{replications} replications, {len(result.failures())} failed; fits with divergences "
          f"{(fits['divergences'] > 0).mean():.3f}, with max R-hat > 1.05 {(fits['r_hat'] > 1.05).mean():.3f}; seconds "
          f"per replication (in its process): median {fits['seconds'].median():.1f}, max {fits['seconds'].max():.1f}")
    return table.assign(study=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2026, 7])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--cluster-size", type=int, default=10)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None, help="local processes (default cores / chains)")
    parser.add_argument("--out", type=Path, default=Path("out/study_cfa"))
    parser.add_argument("--summary", type=Path, default=Path(__file__).with_name("study_cfa_summary.csv"))
    args = parser.parse_args()
    pd.set_option("display.width", 220)

    model = bm.Model(TWOLEVEL_CFA, simulate_twolevel(args.clusters, seed=1), cluster="school")
    results, tables = [], []
    for seed in args.seeds:
        started = time.perf_counter()
        result = bm.study(model, TWOLEVEL_TRUTH, args.replications,
                          {"n_clusters": args.clusters, "cluster_size": args.cluster_size}, out=args.out / f"seed-{seed}",
                          seed=seed, draws=args.draws, tune=args.tune, chains=args.chains, workers=args.workers)
        print(f"\nseed {seed}: wall time of this run {time.perf_counter() - started:.0f} s")
        tables.append(report(f"seed {seed}", result))
        results.append(result)
    if len(results) > 1:
        rows = pd.concat([r.replications.assign(replication=r.replications["replication"] + k * args.replications)
                          for k, r in enumerate(results)], ignore_index=True)
        tables.append(report("pooled", StudyResult(rows, results[0].settings, args.out)))
    pd.concat(tables).to_csv(args.summary, float_format="%.4f")


if __name__ == "__main__":
    main()
