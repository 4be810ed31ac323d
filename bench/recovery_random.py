"""Recovery of random loadings, random residual variances and cluster-specific factor covariance
matrices on simulated data (100 clusters of 30): coverage of 90% intervals of the population
parameters over replications, and the correlation of cluster-specific estimates with the truth.

    .venv/bin/python bench/recovery_random.py [replications [design ...]]   # default 20, all designs

Each finished design appends its row to bench/RECOVERY.md.

Each model is compiled once; the replications reuse it with new data.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import bayes_msem as bm

CLUSTERS, SIZE = 100, 30


@dataclass
class Design:
    name: str
    syntax: str
    truth: dict[str, float]  # population parameters by parameter name


def _between(rng, n_y: int) -> np.ndarray:
    """Random intercepts from one between factor: loadings 1, .8, .7, ...; factor variance .4; residual .1."""
    loadings = np.array([1.0, 0.8, 0.7, 0.6, 0.8, 0.7])[:n_y]
    fb = rng.normal(0, np.sqrt(0.4), CLUSTERS)
    return fb[:, None] * loadings + rng.normal(0, np.sqrt(0.1), (CLUSTERS, n_y))


def _between_truth(n_y: int) -> dict[str, float]:
    loadings = [1.0, 0.8, 0.7, 0.6, 0.8, 0.7][:n_y]
    truth = {f"between:fb=~y{k + 1}": v for k, v in enumerate(loadings) if k}
    truth |= {f"between:y{k + 1}~~y{k + 1}": 0.1 for k in range(n_y)}
    truth |= {f"between:y{k + 1}~1": 0.0 for k in range(n_y)} | {"between:fb~~fb": 0.4}
    return truth


def _frame(y: np.ndarray, r: dict[str, np.ndarray]) -> pd.DataFrame:
    data = pd.DataFrame(y, columns=[f"y{k + 1}" for k in range(y.shape[1])])
    data["cluster"] = np.repeat(np.arange(CLUSTERS), SIZE)
    data.attrs["random"] = r
    return data


def random_loadings(rng) -> pd.DataFrame:
    l2 = rng.normal(0.9, 0.3, CLUSTERS)
    l3 = rng.normal(0.7, 0.3, CLUSTERS)
    cluster = np.repeat(np.arange(CLUSTERS), SIZE)
    fw = rng.normal(0, 1, len(cluster))
    loadings = np.column_stack([np.ones(CLUSTERS), l2, l3, np.full(CLUSTERS, 0.8)])[cluster]
    y = fw[:, None] * loadings + rng.normal(0, np.sqrt(0.5), (len(cluster), 4)) + _between(rng, 4)[cluster]
    return _frame(y, {"l2": l2, "l3": l3})


def random_variances(rng) -> pd.DataFrame:
    v1 = rng.normal(np.log(0.5), 0.5, CLUSTERS)
    v2 = rng.normal(np.log(0.6), 0.5, CLUSTERS)
    cluster = np.repeat(np.arange(CLUSTERS), SIZE)
    fw = rng.normal(0, 1, len(cluster))
    sd = np.column_stack([np.exp(v1 / 2), np.exp(v2 / 2), np.full(CLUSTERS, np.sqrt(0.5)), np.full(CLUSTERS, np.sqrt(0.5))])
    y = fw[:, None] * np.array([1.0, 0.8, 0.9, 0.7]) + rng.normal(size=(len(cluster), 4)) * sd[cluster]
    return _frame(y + _between(rng, 4)[cluster], {"v1": v1, "v2": v2})


def random_covariance(rng) -> pd.DataFrame:
    tau1, tau2 = rng.normal(0.0, 0.4, CLUSTERS), rng.normal(np.log(0.8), 0.4, CLUSTERS)
    z = rng.normal(np.arctanh(0.3), 0.4, CLUSTERS)
    rho = np.tanh(z)
    cluster = np.repeat(np.arange(CLUSTERS), SIZE)
    e1, e2 = rng.normal(size=(2, len(cluster)))
    f1 = np.exp(tau1)[cluster] * e1
    f2 = np.exp(tau2)[cluster] * (rho[cluster] * e1 + np.sqrt(1 - rho[cluster] ** 2) * e2)
    loadings = np.array([1.0, 0.8, 0.7])
    y = np.column_stack([f1[:, None] * loadings, f2[:, None] * loadings])
    y = y + rng.normal(0, np.sqrt(0.5), y.shape) + _between(rng, 6)[cluster]
    return _frame(y, {"Phi.f1": tau1, "Phi.f2": tau2, "Phi.f1.f2": z})


DESIGNS = [
    (Design("random loadings", """
level: within
  fw =~ y1 + y4
  l2 | fw =~ y2
  l3 | fw =~ y3
level: between
  fb =~ y1 + y2 + y3 + y4
""", {"within:fw=~y4": 0.8, "within:fw~~fw": 1.0, **{f"within:y{k}~~y{k}": 0.5 for k in range(1, 5)},
      "between:l2~1": 0.9, "between:l3~1": 0.7, "between:l2~~l2": 0.09, "between:l3~~l3": 0.09,
      **_between_truth(4)}), random_loadings),
    (Design("random residual variances", """
level: within
  fw =~ y1 + y2 + y3 + y4
  v1 | y1 ~~ y1
  v2 | y2 ~~ y2
level: between
  fb =~ y1 + y2 + y3 + y4
""", {"within:fw=~y2": 0.8, "within:fw=~y3": 0.9, "within:fw=~y4": 0.7, "within:fw~~fw": 1.0,
      "within:y3~~y3": 0.5, "within:y4~~y4": 0.5, "between:v1~1": np.log(0.5), "between:v2~1": np.log(0.6),
      "between:v1~~v1": 0.25, "between:v2~~v2": 0.25, **_between_truth(4)}), random_variances),
    (Design("cluster-specific factor covariance matrix", """
level: within
  f1 =~ y1 + y2 + y3
  f2 =~ y4 + y5 + y6
  Phi | f1 + f2 ~~ f1 + f2
level: between
  fb =~ y1 + y2 + y3 + y4 + y5 + y6
""", {"within:f1=~y2": 0.8, "within:f1=~y3": 0.7, "within:f2=~y5": 0.8, "within:f2=~y6": 0.7,
      **{f"within:y{k}~~y{k}": 0.5 for k in range(1, 7)},
      "between:Phi.f1~1": 0.0, "between:Phi.f2~1": np.log(0.8), "between:Phi.f1.f2~1": np.arctanh(0.3),
      "between:Phi.f1~~Phi.f1": 0.16, "between:Phi.f2~~Phi.f2": 0.16, "between:Phi.f1.f2~~Phi.f1.f2": 0.16,
      **_between_truth(6)}), random_covariance),
]


HEADER = """# Recovery of random parameters

Simulated: {clusters} clusters of {size}; 2 chains x 1000 draws after 1000 warm-up; 90% equal-tailed
intervals of every population parameter with a known value (loadings, variances, means and variances
of the random parameters); correlation of the posterior mean of each cluster's random parameter
with its true value. Reproduce: `.venv/bin/python bench/recovery_random.py 20`.

| design | replications | intervals | covered | coverage (90%) | binomial 95% band | mean corr(cluster estimate, truth) | max R-hat | divergences | median seconds / fit | least covered parameter |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
"""


def run(replications: int, names: list[str], out: Path) -> None:
    if not out.exists():
        out.write_text(HEADER.format(clusters=CLUSTERS, size=SIZE))
    for design, simulate in DESIGNS:
        if names and design.name.split()[-1] not in names:
            continue
        covered = total = divergences = 0
        hits = dict.fromkeys(design.truth, 0)
        correlations, r_hats, seconds = [], [], []
        for seed in range(replications):
            data = simulate(np.random.default_rng(1000 + seed))
            started = time.perf_counter()
            fit = bm.Model(design.syntax, data, cluster="cluster").fit(draws=1000, tune=1000, chains=2, random_seed=seed)
            seconds.append(time.perf_counter() - started)
            theta = fit.idata.posterior["theta"]
            lower = theta.quantile(0.05, ("chain", "draw"))
            upper = theta.quantile(0.95, ("chain", "draw"))
            for name, value in design.truth.items():
                hit = bool(lower.sel(parameter=name) <= value <= upper.sel(parameter=name))
                total, covered, hits[name] = total + 1, covered + hit, hits[name] + hit
            for name, values in data.attrs["random"].items():
                estimate = fit.idata.posterior["random_effects"].sel(random=name).mean(("chain", "draw")).values
                correlations.append(np.corrcoef(estimate, values)[0, 1])
            diagnostics = fit.diagnostics()["value"]
            r_hats.append(diagnostics["r_hat"])
            divergences += int(diagnostics["divergences"])
            print(design.name, seed, f"{seconds[-1]:.1f}s", f"covered {covered}/{total}", flush=True)
        band = 1.96 * np.sqrt(0.9 * 0.1 / total)
        row = (f"| {design.name} | {replications} | {total} | {covered} | {covered / total:.3f} | {0.9 - band:.3f}-{0.9 + band:.3f} "
               f"| {np.mean(correlations):.3f} (min {np.min(correlations):.3f}) | {max(r_hats):.3f} | {divergences} "
               f"| {np.median(seconds[1:] or seconds):.1f} | {min(hits, key=hits.get)} ({min(hits.values())}/{replications}) |")
        print(row, flush=True)
        with out.open("a") as handle:
            handle.write(row + "\n")


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 20, sys.argv[2:], Path(__file__).with_name("RECOVERY.md"))
