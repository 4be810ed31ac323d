"""Recovery of non-invariant (cluster, item) pairs by ``fit.departures`` over replications: hits,
misses and false flags of loadings and intercepts on data simulated with known departures
(tests/test_departures.py's design and variations of it).

    .venv/bin/python bench/departures.py [replications]   # default 20; writes bench/DEPARTURES.md

Every replication fits the model of the test (2 chains x 400 draws after 400 warm-up) to new data
and flags at amount 0.3 and probability 0.9, as the test does.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_msem as bm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from test_departures import AMOUNT, PROBABILITY, SYNTAX, WITHIN_RESIDUAL, simulate, truly_departing  # noqa: E402


@dataclass(frozen=True)
class Design:
    name: str
    n_clusters: int
    size: int
    residual: float
    shift: float  # times the test's shifts (loadings 1.0, intercepts 1.5)


DESIGNS = [
    Design("the test's: 32 clusters of 40, shifts 1.0 / 1.5", 32, 40, WITHIN_RESIDUAL, 1.0),
    Design("36 clusters of 30, residual 0.4, shifts 1.0 / 1.5", 36, 30, 0.4, 1.0),
    Design("32 clusters of 40, shifts 0.6 / 0.9", 32, 40, WITHIN_RESIDUAL, 0.6),
]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def replicate(design: Design, seed: int) -> dict:
    """One data set, one fit: per kind the hits and misses, the false flags, the smallest P of a true
    pair and the largest of an invariant one."""
    start = cpu_seconds()
    data = simulate(seed, design.n_clusters, design.size, design.residual, design.shift)
    fit = bm.Model(SYNTAX, data, cluster="cluster").fit(draws=400, tune=400, chains=2, random_seed=seed, quiet=True)
    table = fit.departures(loadings=AMOUNT, intercepts=AMOUNT, probability=PROBABILITY, seed=seed)
    truth = truly_departing()
    true = np.array([key in truth for key in zip(table["cluster"], table["item"], table["kind"])])
    flagged = table["flagged"].to_numpy()
    out = {f"{kind} hits": int((true & flagged & (table["kind"] == kind)).sum()) for kind in ("loading", "intercept")}
    out |= {"misses": int((true & ~flagged).sum()), "false flags": int((~true & flagged).sum()),
            "invariant pairs": int((~true).sum()), "min P true": table.loc[true, "probability"].min(),
            "max P invariant": table.loc[~true, "probability"].max(),
            "max R-hat": fit.diagnostics().loc["r_hat", "value"], "CPU s": cpu_seconds() - start}
    return out


def main(replications: int) -> None:
    rows = []
    for design in DESIGNS:
        runs = pd.DataFrame([replicate(design, seed) for seed in range(1, replications + 1)])
        print(design.name, runs.sum(numeric_only=True).to_dict(), flush=True)
        true_pairs = len(truly_departing()) * replications
        rows.append({
            "design": design.name, "replications": replications,
            "true pairs": true_pairs,
            "hits (loadings + intercepts)": f"{runs['loading hits'].sum()} + {runs['intercept hits'].sum()}",
            "misses": runs["misses"].sum(),
            "false flags (of invariant pairs)": f"{runs['false flags'].sum()} (of {runs['invariant pairs'].sum()})",
            "exact replications": int(((runs["misses"] == 0) & (runs["false flags"] == 0)).sum()),
            "median min P of a true pair": f"{runs['min P true'].median():.3f}",
            "largest P of an invariant pair": f"{runs['max P invariant'].max():.3f}",
            "max R-hat": f"{runs['max R-hat'].max():.3f}",
            "median CPU s / replication": f"{runs['CPU s'].median():.1f}",
        })
    table = pd.DataFrame(rows)
    lines = [
        "# Departures from common loadings and intercepts: recovery",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {len(os.sched_getaffinity(0))} cores. Reproduce: "
        f"`.venv/bin/python bench/departures.py {replications}`.",
        "",
        "Data as in tests/test_departures.py: one within factor on y1-y4 (y1 the marker, random loadings on",
        "y2-y4), one between factor; every cluster's loadings and intercepts off the common ones by",
        "N(0, 0.05²); three (cluster, item) loadings shifted by 1.0 and three intercepts by 1.5 (times the",
        "design's factor). Each replication: new data (seeds 1, 2, ...), 2 chains x 400 draws after 400",
        "warm-up, `fit.departures(loadings=0.3, intercepts=0.3, probability=0.9)`. A hit is a shifted pair",
        "flagged, a miss one not flagged, a false flag an unshifted pair flagged.",
        "",
        "| " + " | ".join(table.columns) + " |",
        "| " + " | ".join("---" for _ in table.columns) + " |",
        *("| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)),
        "",
    ]
    (HERE / "DEPARTURES.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
