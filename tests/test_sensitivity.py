"""Power-scaling prior sensitivity (ArviZ's psense): with 15 clusters the between-level factor
variance is flagged and the within loadings are not; with 300 clusters nothing is."""

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm

SYNTAX = "level: within\n f =~ y1 + y2 + y3\nlevel: between\n fb =~ y1 + y2 + y3"


def _simulate(clusters: int, seed: int = 1) -> pd.DataFrame:
    """Two-level CFA, 5 members per cluster: loadings 1, 0.8, 0.7 at both levels, within factor
    variance 1, between factor SD 0.3, residual SDs 0.6 (within) and 0.2 (between). (With 15
    clusters the between factor variance's prior sensitivity was 0.12 on each of four seeds, the
    within parameters' at most 0.017.)"""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(clusters), 5)
    loadings = np.array([1.0, 0.8, 0.7])
    between = rng.normal(scale=0.3, size=clusters)[cluster][:, None] * loadings
    between += rng.normal(scale=0.2, size=(clusters, 3))[cluster]
    y = rng.normal(size=len(cluster))[:, None] * loadings + rng.normal(scale=0.6, size=(len(cluster), 3)) + between
    return pd.DataFrame(y, columns=["y1", "y2", "y3"]).assign(cluster=cluster)


@pytest.fixture(scope="module")
def fits():
    return {clusters: bm.Model(SYNTAX, _simulate(clusters), cluster="cluster")
            .fit(draws=1000, tune=1000, chains=2, random_seed=1) for clusters in (15, 300)}


@pytest.fixture(scope="module")
def sensitivities(fits):
    return {clusters: fit.prior_sensitivity() for clusters, fit in fits.items()}


def test_few_clusters_flag_the_between_variance_not_the_within_loadings(sensitivities):
    table = sensitivities[15].set_index(["lhs", "op", "rhs", "level"])
    assert table.loc[("fb", "~~", "fb", "between"), "prior"] > 0.05
    assert table.loc[("fb", "~~", "fb", "between"), "diagnosis"].startswith("potential")
    within_loadings = table.loc[(["f"], ["=~"], slice(None), ["within"]), "prior"]
    assert len(within_loadings) == 2 and (within_loadings < 0.05).all()


def test_many_clusters_flag_nothing(sensitivities):
    table = sensitivities[300]
    assert (table["prior"] < 0.05).all() and (table["diagnosis"] == "").all()


def _figure(plot):
    """The matplotlib figure of an arviz-plots PlotCollection."""
    return plot.viz["figure"].item()


def test_sensitivity_plot_of_chosen_parameters(fits, tmp_path):
    every = _figure(fits[15].plot_prior_sensitivity())
    chosen = _figure(fits[15].plot_prior_sensitivity(tmp_path / "fb.png", parameters=["between:fb~~fb"]))
    assert len(chosen.axes) < len(every.axes)
    assert (tmp_path / "fb.png").read_bytes()[:4] == b"\x89PNG"


def test_prior_sets_plot_one_interval_per_set(fits):
    """Chains are combined: one point estimate per prior set and parameter, not one per chain."""
    model = fits[15].source
    comparison = bm.sensitivity(model, {"default": {}, "tight": {"variance": "gamma(2, 4)[sd]"}},
                                draws=200, tune=200, chains=2, random_seed=1)
    points = comparison.plot(parameters=["between:fb~~fb"]).viz["point_estimate"]
    assert "chain" not in points.dims and points.sizes["prior_set"] == 2
