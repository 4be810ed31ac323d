"""Contextual effects: the latent decomposition of a covariate (Lüdtke et al., 2008) against
observed group-mean centering, on data simulated with a known contextual effect.

With clusters of 5 and an ICC of x of 0.2, the observed cluster mean has reliability
λ = n·ICC / (n·ICC + 1 − ICC) = 0.556, so observed centering estimates the contextual effect
β_b − β_w as about λ(β_b − β_w) = 0.28 instead of 0.5; the latent decomposition is unbiased.
Each version is fitted to the same 20 data sets (compiled once); the mean posterior mean over
replications is compared with the truth in Monte Carlo standard errors.
"""

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.data.clustered import group_mean_center

pytestmark = pytest.mark.slow

BETA_WITHIN, BETA_BETWEEN, ICC_X, SIZE, CLUSTERS, REPLICATIONS = 0.3, 0.8, 0.2, 5, 150, 20
RELIABILITY = SIZE * ICC_X / (SIZE * ICC_X + 1 - ICC_X)

LATENT = """
level: within
  y ~ bw*x
level: between
  y ~ bb*x
  ctx := bb - bw
"""
OBSERVED = """
level: within
  y ~ bw*x_cwc
level: between
  y ~ bb*x_cm
  ctx := bb - bw
"""


def _simulate(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(CLUSTERS), SIZE)
    x_between = rng.normal(0, np.sqrt(ICC_X), CLUSTERS)
    x_within = rng.normal(0, np.sqrt(1 - ICC_X), len(cluster))
    u = rng.normal(0, 0.5, CLUSTERS)
    y = BETA_WITHIN * x_within + BETA_BETWEEN * x_between[cluster] + u[cluster] + rng.normal(0, 1, len(cluster))
    data = pd.DataFrame({"cluster": cluster, "x": x_between[cluster] + x_within, "y": y})
    return group_mean_center(data, ["x"], "cluster")


def _contextual_effects(syntax: str) -> np.ndarray:
    estimates = []
    for seed in range(REPLICATIONS):
        fit = bm.Model(syntax, _simulate(seed), cluster="cluster").fit(draws=300, tune=300, chains=2, random_seed=seed)
        table = fit.parameters()
        estimates.append(table.loc[table["lhs"] == "ctx", "mean"].item())
    return np.array(estimates)


def test_latent_decomposition_is_unbiased_and_observed_centering_is_not():
    truth = BETA_BETWEEN - BETA_WITHIN
    latent, observed = _contextual_effects(LATENT), _contextual_effects(OBSERVED)
    se_latent = latent.std(ddof=1) / np.sqrt(REPLICATIONS)
    se_observed = observed.std(ddof=1) / np.sqrt(REPLICATIONS)
    assert abs(latent.mean() - truth) < 3 * se_latent
    assert observed.mean() < truth - 3 * se_observed
    assert abs(observed.mean() - RELIABILITY * truth) < 3 * se_observed
