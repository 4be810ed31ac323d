"""Cross-classified models (``crossed=True``): fits against statsmodels' maximum-likelihood
estimates, recovery of a binary persons × items model, simulation, and the errors of bad input.

ML reference (``crossed_schools``: 1,500 pupils, 40 schools × 30 neighbourhoods): with the default
weakly informative priors the posterior is dominated by the likelihood, so its mean lies within a
small fraction of a posterior SD of the ML estimate. As in tests/test_reference.py we require
0.5 SD for the coefficient and the intercept and 1 SD for the variances, whose posteriors are
skewed right (the mean sits right of the mode that ML estimates: for a variance of 30 to 40
clusters by about 0.3 to 0.5 SD), and the posterior SDs within 30 % of the ML standard errors.
4 chains × 1000 draws: Monte Carlo error of a mean is under 0.05 SD.
"""

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem import datasets

PERSONS_ITEMS = """
level: within
  y ~ x
level: person
  y ~~ y
level: item
  y ~~ y
"""
BINARY_TRUTH = {"within:y~x": 0.5, "person:y~~y": 1.0, "item:y~~y": 0.6, "item:y~1": -0.3}


def free_parameters(fit) -> pd.DataFrame:
    """The fit's free parameters indexed by their θ names (level:lhs op rhs)."""
    table = fit.parameters()
    table = table[table["free"]]
    return table.set_index(table["level"] + ":" + table["lhs"] + table["op"] + table["rhs"])


@pytest.fixture(scope="module")
def schools_fit():
    info = datasets.info("crossed_schools")
    model = bm.Model(info.model, datasets.load("crossed_schools"), **info.options)
    assert model.strategy.name == "crossed"
    return model.fit(draws=1000, tune=1000, chains=4, random_seed=1, quiet=True)


def test_crossed_posterior_is_near_statsmodels_ml(schools_fit):
    reference = datasets.reference("crossed_schools").set_index("param")
    ours = free_parameters(schools_fit)
    for param, name in datasets.info("crossed_schools").parameters.items():
        mean, sd = ours.loc[name, ["mean", "sd"]]
        est, se = reference.loc[param, ["est", "se"]]
        tolerance = 1.0 if param.startswith("var_") else 0.5
        assert abs(mean - est) < tolerance * sd, (param, mean, sd, est)
        assert 0.7 < sd / se < 1.3, (param, sd, se)
    values = schools_fit.diagnostics()["value"]
    assert values["divergences"] == 0 and values["r_hat"] < 1.01


def test_crossed_fit_reports_levels_and_neighbourhood_effects(schools_fit):
    assert set(schools_fit.parameters()["level"]) == {"within", "school", "neighbourhood"}
    effects = schools_fit.idata.posterior["scores_neighbourhood"]
    assert effects.sizes["upper"] == 30
    data = datasets.load("crossed_schools")
    reference = datasets.reference("crossed_schools").set_index("param")["est"]
    # each neighbourhood's mean residual, shrunk, follows its estimated effect
    residual = data["y"] - reference["slope_x"] * data["x"] - reference["intercept"]
    observed = residual.groupby(data["neighbourhood"]).mean()
    estimated = effects.mean(("chain", "draw")).to_series().droplevel(1) - reference["intercept"]
    assert np.corrcoef(observed.loc[estimated.index], estimated)[0, 1] > 0.8
    scores = schools_fit.latent_scores()
    assert set(scores["level"]) == {"neighbourhood"} and len(scores) == 30
    summary = schools_fit.summary()
    assert "cross-classified SEM (2 crossed classifications)" in summary and "Clusters (neighbourhood)     30" in summary
    with pytest.raises(bm.UnavailableError, match="not available for cross-classified fits"):
        schools_fit.loo()


def test_crossed_fit_is_saved_and_read_back(schools_fit, tmp_path):
    schools_fit.save(tmp_path / "crossed.nc")
    fit = bm.load(tmp_path / "crossed.nc")
    assert fit.info["crossed"] and fit.frame().groupby("school")["neighbourhood"].nunique().min() > 1
    rebuilt = bm.Model.from_fit(fit)
    assert rebuilt.strategy.name == "crossed" and rebuilt.data.crossed[0].n_clusters == 30


@pytest.fixture(scope="module")
def binary_design() -> pd.DataFrame:
    """150 persons × 20 items, one row per response, a row covariate x."""
    rng = np.random.default_rng(20261205)
    persons, items = 150, 20
    frame = pd.DataFrame({"person": np.repeat(np.arange(persons), items), "item": np.tile(np.arange(items), persons)})
    return frame.assign(x=rng.normal(size=len(frame)), y=rng.integers(0, 2, len(frame)))


def test_binary_crossed_model_recovers_its_variances(binary_design):
    """Data simulated by the package at BINARY_TRUTH (seed fixed before fitting) and fitted by the
    conditional strategy: each parameter's truth within 2.5 posterior SDs of its mean."""
    design = bm.Model(PERSONS_ITEMS, binary_design, cluster=["person", "item"], crossed=True, family={"y": "bernoulli"})
    data = design.simulate(BINARY_TRUTH, seed=7)
    assert set(data["y"]) == {0.0, 1.0}
    model = bm.Model(PERSONS_ITEMS, data, cluster=["person", "item"], crossed=True, family={"y": "bernoulli"})
    assert model.strategy.name == "conditional"
    fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=3, quiet=True)
    ours = free_parameters(fit)
    for name, truth in BINARY_TRUTH.items():
        mean, sd = ours.loc[name, ["mean", "sd"]]
        assert abs(mean - truth) < 2.5 * sd, (name, mean, sd, truth)
    assert fit.diagnostics()["value"]["divergences"] == 0


def test_crossed_simulation_draws_each_classification_s_effects(binary_design):
    model = bm.Model(PERSONS_ITEMS, binary_design.assign(y=np.random.default_rng(1).normal(size=len(binary_design))),
                     cluster=["person", "item"], crossed=True)
    truth = {"within:y~x": 0.0, "within:y~~y": 0.01, "person:y~~y": 1.0, "item:y~~y": 4.0, "item:y~1": 0.0}
    data = model.simulate(truth, seed=2)
    # nearly no residual: each row is its person's effect plus its item's
    two_way = data["y"] - data.groupby("person")["y"].transform("mean") - data.groupby("item")["y"].transform("mean")
    assert (two_way + data["y"].mean()).std() < 0.2
    assert data.groupby("item")["y"].mean().var() > 1.0 and data.groupby("person")["y"].mean().var() > 0.5
    with pytest.raises(bm.SettingsError, match="covariates= frame"):
        model.simulate(truth, n_clusters=10, cluster_size=5)


CROSSED = """
level: within
  y ~ x
level: school
  y ~ w
level: neighbourhood
  y ~ d
"""


def crossed_frame(seed: int = 0, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"school": rng.integers(0, 8, rows), "neighbourhood": rng.integers(0, 6, rows)})
    frame["w"] = rng.normal(size=8)[frame["school"]]
    frame["d"] = rng.normal(size=6)[frame["neighbourhood"]]
    return frame.assign(x=rng.normal(size=rows), y=rng.normal(size=rows))


def test_non_nested_columns_name_crossed_true():
    with pytest.raises(bm.DataError, match=r"not nested in 'neighbourhood'.*pass crossed=True"):
        bm.Model(CROSSED, crossed_frame(), cluster=["school", "neighbourhood"])


def test_crossed_model_bad_input_is_refused():
    frame = crossed_frame()
    columns = ["school", "neighbourhood"]
    with pytest.raises(bm.DataError, match="The cluster column 'neighborhood' is not a column.*'neighbourhood'"):
        bm.Model(CROSSED.replace("neighbourhood", "neighborhood"), frame, cluster=["school", "neighborhood"],
                 crossed=True)
    with pytest.raises(bm.DataError, match="'d' varies within .* cluster\\(s\\) of 'neighbourhood'"):
        bm.Model(CROSSED, frame.assign(d=np.arange(len(frame))), cluster=columns, crossed=True)
    with pytest.raises(bm.DataError, match="'w' varies within .* cluster\\(s\\) of 'school'"):
        bm.Model(CROSSED, frame.assign(w=np.arange(len(frame))), cluster=columns, crossed=True)
    with pytest.raises(bm.DataError, match="Every cluster of 'neighbourhood' holds a single row"):
        bm.Model(CROSSED, frame.assign(neighbourhood=np.arange(len(frame)), d=np.arange(len(frame))),
                 cluster=columns, crossed=True)
    with pytest.raises(bm.DataError, match="'neighbourhood' has 1 distinct cluster"):
        bm.Model(CROSSED.replace("y ~ d", "y ~~ y"), frame.assign(neighbourhood=0), cluster=columns, crossed=True)
    with pytest.raises(bm.SettingsError, match="crossed=True needs the columns of two classifications"):
        bm.Model(CROSSED, frame, cluster="school", crossed=True)
    slopes = CROSSED.replace("y ~ x", "s | y ~ x").replace("y ~ w", "y ~ w\n  s ~~ s")
    with pytest.raises(bm.SpecificationError, match="random parameters .* over crossed classifications"):
        bm.Model(slopes, frame, cluster=columns, crossed=True).plan
