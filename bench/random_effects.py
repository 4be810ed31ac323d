"""Random slopes and random loadings: bayes_msem against hand-written PyMC models, same data, same
priors, same sampler (nutpie), timed in the same run.

    .venv/bin/python bench/random_effects.py        # prints a table and writes bench/RANDOM_EFFECTS.md

Random slope: lme4's reference data (100 schools, 3-25 pupils), y on x with correlated random
intercept and slope. The hand-written model is the usual row-level one: non-centred (b0_j, b1_j)
with an LKJ correlation, y_ij ~ N(b0_j + b1_j x_ij, σ).
Random loading: a two-level factor model (100 clusters of 30, within factor on y1-y4 with a
random loading on y2, random intercepts). The hand-written model samples every factor score and
random intercept (row-level likelihood), as one writes it without analytic integration.
"""

from __future__ import annotations

import time
from pathlib import Path

import arviz as az
import numpy as np
import nutpie
import pandas as pd
import pymc as pm

import bayes_msem as bm

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
DRAWS = dict(draws=1000, tune=1000, chains=2)
NOTES = """min bulk ESS is over the population parameters (fixed effects, variances, covariances). The
package integrates the random slope model completely (marginal strategy: the random intercepts and
slopes are Gaussian and linear, so only six parameters are sampled and each cluster's slopes are
drawn after sampling); the random loading model samples one loading per cluster (hybrid strategy)
and integrates the factor scores and random intercepts. The hand-written models sample every
random effect (and, for the loading model, every factor score). Compile times are with warm numba
caches where the model was compiled before; the ratio compares sampling alone.
"""


def _min_ess(idata, names) -> float:
    ess = az.ess(idata, var_names=names)
    return float(min(ess[n].min() for n in names))


def _time_handwritten(model: pm.Model, names: list[str]) -> dict:
    started = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    compiled_at = time.perf_counter()
    idata = nutpie.sample(compiled, seed=1, progress_bar=False, **DRAWS)
    finished = time.perf_counter()
    return {"compile": compiled_at - started, "sample": finished - compiled_at, "ess": _min_ess(idata, names)}


def _time_package(syntax: str, data: pd.DataFrame, cluster: str) -> dict:
    model = bm.Model(syntax, data, cluster=cluster)
    started = time.perf_counter()
    fit = model.fit(random_seed=1, **DRAWS)
    return {"compile": fit.info["seconds_compile"], "sample": fit.info["seconds_sample"],
            "ess": _min_ess(fit.idata, ["theta"]), "wall": time.perf_counter() - started}


def random_slope() -> tuple[dict, dict]:
    data = pd.read_csv(REFERENCE / "random_slope.csv")
    school = pd.factorize(data["school"])[0]
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 32, shape=2)
        chol, _, sds = pm.LKJCholeskyCov("chol", n=2, eta=1.0, sd_dist=pm.Gamma.dist(1, 0.5), compute_corr=True)
        z = pm.Normal("z", 0, 1, shape=(int(school.max()) + 1, 2))
        b = mu + z @ chol.T
        sigma = pm.Gamma("sigma", 1, 0.5)
        pm.Normal("y", b[school, 0] + b[school, 1] * data["x"].to_numpy(), sigma, observed=data["y"].to_numpy())
        cov = pm.Deterministic("cov", chol @ chol.T)
        pm.Deterministic("summary", pm.math.stack([mu[0], mu[1], cov[0, 0], cov[1, 1], cov[0, 1], sigma**2]))
    hand = _time_handwritten(model, ["summary"])
    ours = _time_package("level: within\n  s | y ~ x\nlevel: between\n  y ~~ s\n", data, "school")
    return hand, ours


def simulate_random_loading(seed: int = 1, clusters: int = 100, size: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(clusters), size)
    loading2 = rng.normal(0.8, 0.25, clusters)
    eta = rng.normal(0, 1, len(cluster))
    loadings = np.column_stack([np.ones(clusters), loading2, np.full(clusters, 0.9), np.full(clusters, 0.7)])[cluster]
    intercepts = rng.normal(0, 0.5, (clusters, 4))[cluster]
    y = intercepts + eta[:, None] * loadings + rng.normal(0, np.sqrt(0.5), (len(cluster), 4))
    data = pd.DataFrame(y, columns=["y1", "y2", "y3", "y4"])
    data["cluster"] = cluster
    return data


def random_loading() -> tuple[dict, dict]:
    data = simulate_random_loading()
    cluster = data["cluster"].to_numpy()
    y = data[["y1", "y2", "y3", "y4"]].to_numpy()
    n_clusters = int(cluster.max()) + 1
    with pm.Model() as model:
        loading = pm.Normal("loading", 0, 10, shape=2, initval=np.ones(2))     # y3, y4
        l2_mean = pm.Normal("l2_mean", 0, 32, initval=1.0)
        l2_sd = pm.Gamma("l2_sd", 1, 0.5, initval=0.2)
        l2 = l2_mean + l2_sd * pm.Normal("l2_z", 0, 1, shape=n_clusters)
        psi_sd = pm.Gamma("psi_sd", 1, 0.5, initval=1.0)
        eta = psi_sd * pm.Normal("eta_z", 0, 1, shape=len(cluster))
        nu = pm.Normal("nu", 0, 32, shape=4)
        tau = pm.Gamma("tau", 1, 0.5, shape=4, initval=np.full(4, 0.5))
        u = nu + tau * pm.Normal("u_z", 0, 1, shape=(n_clusters, 4))
        theta_sd = pm.Gamma("theta_sd", 1, 0.5, shape=4, initval=np.ones(4))
        lam = pm.math.stack([pm.math.ones_like(l2), l2, loading[0] + 0 * l2, loading[1] + 0 * l2], axis=1)
        pm.Normal("y", u[cluster] + lam[cluster] * eta[:, None], theta_sd, observed=y)
        pm.Deterministic("summary", pm.math.concatenate([loading, [l2_mean, l2_sd**2, psi_sd**2], theta_sd**2]))
    hand = _time_handwritten(model, ["summary"])
    ours = _time_package("level: within\n  f =~ y1 + y3 + y4\n  l2 | f =~ y2\nlevel: between\n"
                         "  y1 ~~ y1\n  y2 ~~ y2\n  y3 ~~ y3\n  y4 ~~ y4\n", data, "cluster")
    return hand, ours


def _row(name: str, hand: dict, ours: dict) -> str:
    rate = lambda r: r["ess"] / (r["compile"] + r["sample"])  # noqa: E731
    sample_rate = lambda r: r["ess"] / r["sample"]  # noqa: E731
    return (f"| {name} | {hand['compile']:.1f} / {ours['compile']:.1f} | {hand['sample']:.1f} / {ours['sample']:.1f} "
            f"| {hand['ess']:.0f} / {ours['ess']:.0f} | {sample_rate(hand):.1f} / {sample_rate(ours):.1f} "
            f"| {sample_rate(ours) / sample_rate(hand):.2f} | {rate(hand):.1f} / {rate(ours):.1f} |")


if __name__ == "__main__":
    rows = [_row("random slope (lme4 data)", *random_slope()), _row("random loading (100 x 30)", *random_loading())]
    header = ["| model | compile s (hand / package) | sampling s | min bulk ESS | min-ESS/s of sampling | ratio package / hand "
              "| min-ESS/s incl. compile |", "| --- | --- | --- | --- | --- | --- | --- |"]
    table = "\n".join(header + rows)
    print(table)
    Path(__file__).with_name("RANDOM_EFFECTS.md").write_text(
        "# Random effects: package vs hand-written PyMC (nutpie, 2 chains x 1000 + 1000)\n\n" + table + "\n\n"
        + NOTES + "\nReproduce: `.venv/bin/python bench/random_effects.py`\n")
