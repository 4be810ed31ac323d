"""The same seed gives the same draws with nutpie, PyMC, numpyro and blackjax; another seed gives other draws."""

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm

SYNTAX = "level: within\n  y ~ x\nlevel: between\n  y ~~ y\n"


@pytest.fixture(scope="module")
def model() -> bm.Model:
    rng = np.random.default_rng(3)
    cluster = np.repeat(np.arange(20), 5)
    x = rng.normal(size=100)
    y = 0.5 * x + rng.normal(scale=0.7, size=20)[cluster] + rng.normal(size=100)
    return bm.Model(SYNTAX, pd.DataFrame({"g": cluster, "x": x, "y": y}), cluster="g")


# In a worker of the full suite JAX starts (test_kernel.py) before PyMC asks it for one host device
# per chain; the chains then run vectorised on one device (samplers._chain_method).
@pytest.mark.parametrize("sampler", ["nutpie", "pymc", "numpyro", "blackjax"])
def test_same_seed_same_draws(model: bm.Model, sampler: str) -> None:
    def draws(seed: int) -> np.ndarray:
        fit = model.fit(draws=50, tune=50, chains=2, random_seed=seed, sampler=sampler)
        return fit.idata.posterior["theta"].values

    first = draws(11)
    np.testing.assert_array_equal(first, draws(11))
    assert not np.array_equal(first, draws(12))


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_vectorised_chains_run_with_a_progress_bar(model: bm.Model, sampler: str, monkeypatch) -> None:
    """As in a terminal, where blackjax's own progress bar cannot run vectorised (it is left off)."""
    monkeypatch.setattr("bayes_msem.sampling.samplers._chain_method", lambda chains: "vectorized")
    fit = model.fit(draws=20, tune=20, chains=2, random_seed=1, sampler=sampler, progressbar=True)
    assert fit.idata.posterior["theta"].shape[:2] == (2, 20)
