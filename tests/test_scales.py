"""Rescaling (``Model(rescale=True)``): the data the model is fitted to, the factor that takes
each parameter back to the variables' own units, and the models whose meaning it would change.
The estimates themselves are checked against lavaan and lme4 in test_reference.py."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.data.scales import parameter_factors

SD = {"y1": 10.0, "y2": 0.5, "y3": 2.0, "x": 4.0}


def _data(n=60, seed=1):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    return pd.DataFrame({"y1": SD["y1"] * (f + rng.normal(size=n)), "y2": SD["y2"] * (f + rng.normal(size=n)),
                         "y3": SD["y3"] * (f + rng.normal(size=n)), "x": SD["x"] * rng.normal(size=n),
                         "u": rng.integers(0, 2, n), "g": np.repeat(np.arange(n // 4), 4)})


def _factors(syntax, **kwargs):
    model = bm.Model(syntax, _data(), rescale=True, **kwargs)
    table = model.parameter_table()
    factors = parameter_factors(table, model.scales)
    return {f"{r.lhs} {r.op} {r.rhs}".strip(): factor for r, factor in zip(table.itertuples(index=False), factors)}, model


def test_the_model_is_fitted_to_unit_sds_and_non_gaussian_responses_keep_their_codes():
    data = _data()
    model = bm.Model("f =~ y1 + y2 + y3\nu ~ x", data, rescale=True, family={"u": "bernoulli"})
    for name in ["y1", "y2", "y3", "x"]:
        assert np.std(model.data.column(name), ddof=1) == pytest.approx(1.0)
        assert model.scales[name] == pytest.approx(data[name].std())
    assert "u" not in model.scales and set(np.unique(model.data.column("u"))) == {0.0, 1.0}
    assert bm.Model("f =~ y1 + y2 + y3", data).scales == {}


def test_parameters_scale_with_their_variables_and_factors_with_their_marker():
    factors, model = _factors("f =~ y1 + y2 + y3\nf ~ x")
    c = model.scales
    assert factors["f =~ y1"] == pytest.approx(1.0)  # the marker: f is in y1's units
    assert factors["f =~ y2"] == pytest.approx(c["y2"] / c["y1"])
    assert factors["f ~ x"] == pytest.approx(c["y1"] / c["x"])
    assert factors["y3 ~~ y3"] == pytest.approx(c["y3"] ** 2)
    assert factors["f ~~ f"] == pytest.approx(c["y1"] ** 2)
    assert factors["y2 ~1"] == pytest.approx(c["y2"])


def test_factors_identified_by_their_variance_keep_unit_scale():
    factors, model = _factors("f =~ y1 + y2 + y3", std_lv=True)
    assert factors["f =~ y1"] == pytest.approx(model.scales["y1"])
    assert factors["f ~~ f"] == 1.0


def test_a_factor_of_factors_takes_its_marker_factors_units():
    factors, model = _factors("f1 =~ y1 + y2\nf2 =~ y3 + x\nh =~ f2 + f1")
    c = model.scales
    assert factors["h ~~ h"] == pytest.approx(c["y3"] ** 2)  # h's marker is f2, whose marker is y3
    assert factors["h =~ f1"] == pytest.approx(c["y1"] / c["y3"])


def test_random_slopes_scale_like_the_path_they_vary():
    model = bm.Model("level: within\n  s | y1 ~ x\nlevel: between\n  y1 ~~ s\n", _data(), cluster="g", rescale=True)
    table = model.parameter_table()
    factors = dict(zip(zip(table["lhs"], table["op"], table["rhs"], table["level"]), parameter_factors(table, model.scales)))
    slope = model.scales["y1"] / model.scales["x"]
    assert factors[("s", "~1", "", "between")] == pytest.approx(slope)
    assert factors[("s", "~~", "s", "between")] == pytest.approx(slope**2)
    assert factors[("y1", "~~", "s", "between")] == pytest.approx(model.scales["y1"] * slope)


@pytest.mark.parametrize("syntax, message", [
    ("f =~ y1 + 0.5*y2 + y3", r"f =~ y2 is fixed at 0.5, which in the variables' own units is 0\.0"),
    ("f =~ y1 + a*y2 + a*y3", r"equality constraint on f =~ y2, f =~ y3 joins parameters of variables on different"),
    ("level: within\n  v | y1 ~~ y1\nlevel: between\n  y1 ~~ y1\n", r"random variance 'v' .*log would shift"),
])
def test_models_the_rescaling_would_change_are_refused(syntax, message):
    with pytest.raises(bm.SpecificationError, match=message):
        bm.Model(syntax, _data(), cluster="g" if "level" in syntax else None, rescale=True)


def test_fits_rescaled_differently_are_not_compared():
    fits = [SimpleNamespace(info={"scales": {"y1": 10.0}}), SimpleNamespace(info={"scales": {}})]
    with pytest.raises(ValueError, match="rescaled differently"):
        bm.compare(fits)


def test_simulate_and_study_work_in_the_variables_own_units():
    """simulate() takes parameters in the data's units and keeps the design's covariates in them;
    a study, whose replications would each be rescaled by their own SDs, is refused."""
    syntax = "y1 ~ x"
    values = {"y1~x": 2.0, "y1~~y1": 1.0, "y1~1": 0.0}
    plain, rescaled = (bm.Model(syntax, _data(), rescale=r).simulate(values, seed=3) for r in (False, True))
    pd.testing.assert_frame_equal(plain, rescaled)
    with pytest.raises(ValueError, match="a study cannot use rescale=True"):
        bm.study(bm.Model(syntax, _data(), rescale=True), values, replications=2)
