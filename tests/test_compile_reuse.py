"""Compile once per model structure: a model of the same structure on new data reuses the
compiled sampler, swapping only the data, coordinates and starting values.

Reuse is checked by counting compilations, not by timing: how fast a reused model starts
sampling (under 2 s) is measured by ``bench/refit.py``."""

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.examples import TWOLEVEL_CFA, simulate_twolevel
from bayes_msem.sampling import samplers

pytestmark = pytest.mark.slow


@pytest.fixture
def compilations(monkeypatch) -> list:
    """The models compiled for nutpie during a test, one entry per compilation."""
    compiled = []

    def counting(model):
        compiled.append(model)
        return original(model)

    original = samplers.compile_nutpie
    monkeypatch.setattr(samplers, "compile_nutpie", counting)
    samplers._COMPILED.clear()
    return compiled


def _fit(data):
    return bm.Model(TWOLEVEL_CFA, data, cluster="school").fit(draws=200, tune=200, chains=2, random_seed=7)


def test_new_data_reuses_the_compiled_model_and_matches_a_fresh_compile(compilations):
    first, second = simulate_twolevel(n_clusters=60, seed=11), simulate_twolevel(n_clusters=90, seed=12)
    _fit(first)
    reused = _fit(second)
    assert len(compilations) == 1
    assert reused.idata.observed_data.sizes["row"] == len(second)
    samplers._COMPILED.clear()
    fresh = _fit(second)
    assert len(compilations) == 2
    np.testing.assert_array_equal(reused.idata.posterior["theta"].values, fresh.idata.posterior["theta"].values)


def test_hybrid_model_reuse_takes_the_new_cluster_ids(compilations):
    """With random parameters the compiled model is reused for data with as many clusters; the
    cluster coordinate follows the new data."""
    rng = np.random.default_rng(3)
    syntax = "level: within\n  s | y ~ x\nlevel: between\n  y ~~ s\n"

    def data(ids):
        cluster = np.repeat(ids, 8)
        x = rng.normal(size=len(cluster))
        slope = rng.normal(1.0, 0.3, len(ids)).repeat(8)
        return pd.DataFrame({"g": cluster, "x": x, "y": slope * x + rng.normal(size=len(cluster))})

    fits = [bm.Model(syntax, data(ids), cluster="g").fit(draws=100, tune=100, chains=1, random_seed=1)
            for ids in (np.arange(30), np.arange(100, 130))]
    assert len(compilations) == 1
    assert list(fits[1].cluster_effects("s")["cluster"]) == list(range(100, 130))


def test_conditional_model_reuse_with_unused_data(compilations):
    """A conditional model registers statistics its graph may not use (no cluster-level outcomes
    here); a refit on new data passes the compiled sampler only those it uses."""
    rng = np.random.default_rng(4)

    def data():
        cluster = np.repeat(np.arange(40), 6)
        x = rng.normal(size=len(cluster))
        u = rng.normal(scale=0.5, size=40)[cluster]
        return pd.DataFrame({"g": cluster, "x": x, "y": (rng.random(len(x)) < 1 / (1 + np.exp(-u - x))).astype(float)})

    syntax = "level: within\n  y ~ x\nlevel: between\n  y ~~ y\n"
    fits = [bm.Model(syntax, data(), cluster="g", family={"y": "bernoulli"}).fit(draws=100, tune=100, chains=1,
                                                                               random_seed=1) for _ in range(2)]
    assert len(compilations) == 1
    assert not np.array_equal(fits[0].idata.posterior["theta"].values, fits[1].idata.posterior["theta"].values)


def test_conditional_model_with_other_cluster_counts_compiles_anew(compilations):
    """The sampled cluster effects' shape is part of the structure: as many rows in more clusters
    (240 = 40 x 6 = 60 x 4) is a new structure, not a reuse with a wrongly sized compiled model."""
    rng = np.random.default_rng(5)
    syntax = "level: within\n  y ~ x\nlevel: between\n  y ~~ y\n"
    fits = []
    for n_clusters, size in [(40, 6), (60, 4)]:
        cluster = np.repeat(np.arange(n_clusters), size)
        u = rng.normal(scale=0.5, size=n_clusters)[cluster]
        frame = pd.DataFrame({"g": cluster, "y": (rng.random(len(cluster)) < 1 / (1 + np.exp(-u))).astype(float),
                              "x": rng.normal(size=len(cluster))})
        fits.append(bm.Model(syntax, frame, cluster="g", family={"y": "poisson"}).fit(draws=50, tune=50, chains=1,
                                                                                     random_seed=1))
    assert len(compilations) == 2
    assert [f.idata.posterior.sizes["cluster"] for f in fits] == [40, 60]
