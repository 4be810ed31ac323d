"""Scaling of the JAX path: a two-level CFA with 6 indicators on 2,000 to 100,000 clusters.

    .venv/bin/python bench/scaling.py                       # CPU: every size, numpyro and nutpie; writes bench/SCALING.md
    .venv/bin/python bench/scaling.py --clusters 100000 --sampler numpyro --out $OUT/scaling.json   # e.g. on a GPU

The model: one factor per level on y1-y6 (marker loadings on y1), free loadings, residual
variances and item means; clusters of 5-50 rows (uniform), so 100,000 clusters hold about 2.75
million rows. Each size is fitted in a fresh process with 2 chains x 500 warm-up + 500 draws
(numpyro's NUTS through PyMC's JAX backend, or nutpie). Reported: rows, the wall time of ``fit()`` (compile included), min bulk ESS over
``theta``, min-ESS per second, and the posterior means against the truth (largest |z|).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SIZES = (2_000, 20_000, 100_000)
SETTINGS = dict(draws=500, tune=500, chains=2, random_seed=1)
LOADINGS_W, LOADINGS_B = [1.0, 0.8, 0.9, 0.7, 0.8, 0.6], [1.0, 0.9, 0.8, 0.7, 0.9, 0.8]
MEANS = [0.5, 0.0, -0.5, 1.0, 0.2, -0.2]
SYNTAX = ("level: within\n  fw =~ y1 + y2 + y3 + y4 + y5 + y6\n"
          "level: between\n  fb =~ y1 + y2 + y3 + y4 + y5 + y6\n")
TRUTH = {**{f"within:fw=~y{k}": v for k, v in enumerate(LOADINGS_W[1:], start=2)},
         **{f"between:fb=~y{k}": v for k, v in enumerate(LOADINGS_B[1:], start=2)},
         **{f"between:y{k}~1": v for k, v in enumerate(MEANS, start=1)},
         "within:fw~~fw": 1.0, "between:fb~~fb": 0.4}


def simulate(n_clusters: int, seed: int = 1) -> pd.DataFrame:
    """y_ij = ν + λ_B fb_j + λ_W fw_ij + u_j + e_ij: Var(fw) = 1, Var(fb) = 0.4, residual
    variances 0.5 within and 0.1 between; cluster sizes uniform on 5-50."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(n_clusters), rng.integers(5, 51, n_clusters))
    between = (np.array(MEANS) + np.outer(rng.normal(0, np.sqrt(0.4), n_clusters), LOADINGS_B)
               + rng.normal(0, np.sqrt(0.1), (n_clusters, 6)))
    y = between[cluster] + np.outer(rng.normal(0, 1, len(cluster)), LOADINGS_W) + rng.normal(0, np.sqrt(0.5), (len(cluster), 6))
    return pd.DataFrame(y, columns=[f"y{k}" for k in range(1, 7)]).assign(cluster=cluster)


def measure(n_clusters: int, sampler: str) -> dict:
    import arviz as az
    import jax

    import bayes_msem as bm

    data = simulate(n_clusters)
    started = time.perf_counter()
    fit = bm.Model(SYNTAX, data, cluster="cluster").fit(sampler=sampler, **SETTINGS)
    wall = time.perf_counter() - started
    theta = fit.idata.posterior["theta"]
    ess = az.ess(fit.idata, var_names=["theta"])["theta"]
    mean, sd = theta.mean(("chain", "draw")).to_series(), theta.std(("chain", "draw")).to_series()
    z = max(abs(mean[k] - v) / sd[k] for k, v in TRUTH.items())
    return {"clusters": n_clusters, "rows": len(data), "sampler": sampler, "device": str(jax.devices()[0]),
            "wall": wall, "compile": fit.info["seconds_compile"], "sampling": fit.info["seconds_sample"],
            "min_ess": float(ess.min()), "max_rhat": float(az.rhat(fit.idata, var_names=["theta"])["theta"].max()),
            "max_abs_z": float(z)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--sampler", nargs="*", default=["numpyro", "nutpie"])
    parser.add_argument("--out", type=Path, help="write the results as JSON here (default: SCALING.md)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.clusters[0], args.sampler[0])))
        return
    results = []
    for sampler in args.sampler:
        for n in args.clusters:
            out = subprocess.run([sys.executable, __file__, "--measure", "--clusters", str(n), "--sampler", sampler],
                                 check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            print(results[-1], flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
        return
    rows = [f"| {r['clusters']:,} | {r['rows']:,} | {r['sampler']} | {r['device']} | {r['wall']:.1f} | {r['compile']:.1f} "
            f"| {r['sampling']:.1f} | {r['min_ess']:.0f} | {r['min_ess'] / r['wall']:.1f} | {r['max_rhat']:.3f} "
            f"| {r['max_abs_z']:.2f} |" for r in results]
    (HERE / "SCALING.md").write_text(
        "# Scaling: two-level CFA, 6 indicators, clusters of 5-50\n\n"
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {len(os.sched_getaffinity(0))} CPU cores\n"
        "- Settings: 2 chains x 500 warm-up + 500 draws, seed 1; each size in a fresh process\n\n"
        "| clusters | rows | sampler | device | wall s | compile s | sampling s | min bulk ESS | min-ESS/s "
        "| max R-hat | largest \\|mean − truth\\| / SD |\n| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        + "\n".join(rows) + "\n\n" + NOTES + "\nReproduce: `.venv/bin/python bench/scaling.py`\n")


NOTES = """The marginal strategy reduces the data to the cross-products of the cluster means (with any
cluster covariates) per distinct cluster size (46 here) and the pooled within scatter, so a
gradient costs the same at 2,000 and at 100,000 clusters: nutpie's sampling takes about 1 s at
every size, and its wall time is the compile. *Wall s* is `bm.Model(...)` (validation and the
statistics) plus `fit()` to the returned Fit: compilation (numpyro: JAX tracing, inside its
sampling time), warm-up and draws, and the conversion of the draws. No GPU was lent for these
runs; `--out` writes JSON for a run on one.

The last column is the largest of 19 |z| (loadings, item means, factor variances): about 2.5 is
typical for 19 draws of a standard normal and 3 not rare. Per parameter (nutpie, residual
variances included, 31 parameters), the largest |z| were fb~~fb at 20,000 clusters (-2.90) and
the between residual variance of y4 (-3.16) and fb=~y5 (-2.94) at 100,000; the z of the other
size for each was 1.07 to 1.56, signs were mixed throughout, and the item means agreed with the
plain mean of the cluster means to within 0.0013: no parameter is off at both sizes.
"""


if __name__ == "__main__":
    main()
