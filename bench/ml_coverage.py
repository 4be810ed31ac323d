"""Maximum-likelihood reference for the two-level CFA study: Wald-interval coverage at the same θ
and design as bench/study_cfa.py, so that the posterior intervals' coverage can be read beside
what the likelihood itself gives at that sample size.

Each replication simulates 50 clusters of ``--cluster-size`` rows at ``examples.TWOLEVEL_TRUTH``
(``Model.simulate``, as the study does), maximises the marginal log-likelihood (the one the
marginal strategy samples, which equals lavaan's at lavaan's estimates: test_fit_measures.py)
by BFGS over θ with log variances, and takes standard errors from the inverse of the observed
information (a central-difference Hessian on θ's natural scale). Wald intervals: est ± 1.96 SE.

    .venv/bin/python bench/ml_coverage.py --cluster-size 10 20     # writes bench/ml_coverage.csv
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

import bayes_msem as bm
from bayes_msem.examples import TWOLEVEL_CFA, TWOLEVEL_TRUTH, simulate_twolevel
from bayes_msem.results.fit_measures import GaussianFunctions
from bayes_msem.sampling.build import integrated_statistics

Z = 1.959964


def hessian(f, x: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``x``."""
    k = len(x)
    out = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.eye(k)[i] * step[i], np.eye(k)[j] * step[j]
            out[i, j] = out[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * step[i] * step[j])
    return out


def replicate(model: bm.Model, functions: GaussianFunctions, size: int, seed: int) -> pd.DataFrame:
    """ML estimates and Wald SEs of one simulated data set."""
    plan = model.plan
    names = list(plan.parameters["name"])
    variance = (plan.parameters["kind"] == "variance").to_numpy()
    truth = np.array([TWOLEVEL_TRUTH[n] for n in names])
    frame = model.simulate(TWOLEVEL_TRUTH, n_clusters=50, cluster_size=size, seed=seed)
    data = bm.Model(TWOLEVEL_CFA, frame, cluster=model.cluster).data
    stats = integrated_statistics(plan, data, False)

    def natural(u: np.ndarray) -> np.ndarray:
        return np.where(variance, np.exp(u), u)

    start = truth.copy()
    start[variance] = np.log(truth[variance])
    result = minimize(lambda u: -functions.loglik(natural(u), stats), start, method="BFGS", options={"gtol": 1e-6})
    estimate = natural(result.x)
    information = hessian(lambda t: -functions.loglik(t, stats), estimate, 1e-4 * np.maximum(1.0, np.abs(estimate)))
    se = np.sqrt(np.diag(np.linalg.inv(information)))
    # BFGS on a finite-difference gradient often ends on "precision loss" at the maximum; what
    # counts is that the gradient there is flat
    converged = np.abs(result.jac).max() < 1e-2
    return pd.DataFrame({"parameter": names, "truth": truth, "estimate": estimate, "se": se, "converged": converged})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster-size", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--replications", type=int, default=400)
    parser.add_argument("--seed", type=int, default=5000, help="replication r uses seed + r")
    args = parser.parse_args()
    warnings.simplefilter("ignore", bm.SamplingWarning)
    model = bm.Model(TWOLEVEL_CFA, simulate_twolevel(50, seed=1), cluster="school")
    functions = GaussianFunctions(model.plan, model.data)
    tables = []
    for size in args.cluster_size:
        started = time.perf_counter()
        rows = pd.concat([replicate(model, functions, size, args.seed + r) for r in range(args.replications)])
        covered = (rows["estimate"] - Z * rows["se"] < rows["truth"]) & (rows["truth"] < rows["estimate"] + Z * rows["se"])
        rows = rows.assign(covered=covered, z=(rows["estimate"] - rows["truth"]) / rows["se"])
        table = rows.groupby("parameter", sort=False).agg(
            truth=("truth", "first"), bias=("estimate", "mean"), sd_estimate=("estimate", "std"), mean_se=("se", "mean"),
            coverage=("covered", "mean"), converged=("converged", "mean"))
        table["bias"] -= table["truth"]
        tables.append(table.assign(cluster_size=size).reset_index())
        print(f"50 clusters of {size}: {args.replications} replications in {time.perf_counter() - started:.0f} s")
        print(table.round(4).to_string())
    pd.concat(tables).to_csv(Path(__file__).with_name("ml_coverage.csv"), index=False, float_format="%.4f")


if __name__ == "__main__":
    main()
