"""The shipped data sets (bayes_msem.datasets): each loads with the columns and sizes its
description gives, each reference table joins the model it was fitted with, and every file in the
folder belongs to a set. Nothing is sampled."""

from importlib.resources import files

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem import datasets

HS_COLUMNS = [f"x{i}" for i in range(1, 10)]
# (name, rows, columns, cluster column or None, number of clusters, smallest and largest cluster)
SIZES = [
    ("demo_twolevel", 2500, [f"y{i}" for i in range(1, 7)] + ["x1", "x2", "x3", "w1", "w2", "cluster"],
     "cluster", 200, (5, 20)),
    ("holzinger_swineford", 301, ["id", "sex", "ageyr", "agemo", "school", "grade", *HS_COLUMNS], "school", 2,
     (145, 156)),
    ("hs_multigroup", 301, ["id", "school", "sex", "ageyr", "grade", *HS_COLUMNS], "school", 2, (145, 156)),
    ("random_slope", 1457, ["school", "x", "y"], "school", 100, (3, 25)),
    ("three_level", 900, ["student", "class", "school", "x", "y"], "class", 180, (5, 5)),
    ("logit_random_intercept", 1488, ["cluster", "x", "y"], "cluster", 80, (5, 30)),
    ("crossed_schools", 1500, ["pupil", "school", "neighbourhood", "x", "y"], "school", 40, (24, 56)),
]


def test_names_cover_the_documented_sets():
    assert datasets.names() == [*(name for name, *_ in SIZES[:3]), "political_democracy",
                                *(name for name, *_ in SIZES[3:]), "gllamm_table1"]
    assert bm.datasets is datasets


@pytest.mark.parametrize("name, rows, columns, cluster, clusters, extremes", SIZES, ids=[s[0] for s in SIZES])
def test_every_set_loads_with_its_documented_size(name, rows, columns, cluster, clusters, extremes):
    data = datasets.load(name)
    assert list(data.columns) == columns and len(data) == rows
    sizes = data.groupby(cluster).size()
    assert len(sizes) == clusters and (sizes.min(), sizes.max()) == extremes
    description = " ".join(datasets.describe(name).split())  # as one line, whatever the wrapping
    assert f"{rows:,} " in description and datasets.info(name).licence in description


def test_demo_twolevel_cluster_covariates_are_constant_in_a_cluster():
    data = datasets.load("demo_twolevel")
    assert (data.groupby("cluster")[["w1", "w2"]].nunique() == 1).all().all()
    assert data.notna().all().all()


def test_three_level_classes_are_nested_in_schools():
    data = datasets.load("three_level")
    assert data["school"].nunique() == 60 and (data.groupby("class")["school"].nunique() == 1).all()
    assert (data.groupby("school")["class"].nunique() == 3).all()


def test_hs_multigroup_holds_the_pupils_of_holzinger_swineford():
    groups, single = datasets.load("hs_multigroup"), datasets.load("holzinger_swineford")
    pd.testing.assert_frame_equal(groups[["id", "school", *HS_COLUMNS]], single[["id", "school", *HS_COLUMNS]])
    assert groups["school"].value_counts().to_dict() == {"Pasteur": 156, "Grant-White": 145}
    assert groups["grade"].isna().sum() == 1


def _keys(table: pd.DataFrame) -> set[tuple[str, str, str, str]]:
    return set(zip(table["level"], table["lhs"], table["op"], table["rhs"]))


def _parameter_table(name: str) -> pd.DataFrame:
    info = datasets.info(name)
    return bm.Model(info.model, datasets.load(name), **info.options).parameter_table()


@pytest.mark.parametrize("name, free", [("demo_twolevel", 20), ("holzinger_swineford", 30)])
def test_lavaan_estimates_join_the_documented_model(name, free):
    """lavaan's free rows (se > 0) are the model's free parameters; its fixed rows hold the model's
    fixed values; lavaan's extra rows are the covariates' (fixed.x), absent from ours."""
    reference = datasets.reference(name)
    if "level" not in reference:
        reference = reference.assign(level="")
    ours = _parameter_table(name)
    assert len(reference.drop_duplicates(["level", "lhs", "op", "rhs"])) == len(reference)
    assert _keys(ours[ours["free"] > 0]) == _keys(reference[reference["se"] > 0]) and (ours["free"] > 0).sum() == free
    joined = ours.merge(reference, on=["level", "lhs", "op", "rhs"], how="left", validate="one_to_one")
    fixed = joined[joined["free"] == 0]
    assert (fixed["se"] == 0).all() and np.allclose(fixed["fixed"], fixed["est"])
    extra = set(reference["lhs"]) - set(ours["lhs"])
    assert extra <= {"x1", "x2", "x3", "w1", "w2"} and (reference.loc[reference["lhs"].isin(extra), "se"] == 0).all()


def test_political_democracy_loads_and_joins_lavaans_model():
    """75 countries, 11 variables, no missing values (Bollen's sample means of x1 and y1: 5.054 and
    5.465); lavaan's 31 free rows are the model's free parameters but for the intercepts, which
    lavaan's sem() leaves out by default, and its fixed rows are the marker loadings."""
    data = datasets.load("political_democracy")
    assert list(data.columns) == [*(f"y{i}" for i in range(1, 9)), "x1", "x2", "x3"] and len(data) == 75
    assert not data.isna().any().any() and data[["x1", "y1"]].mean().round(3).tolist() == [5.054, 5.465]
    reference = datasets.reference("political_democracy").assign(level="")
    ours = _parameter_table("political_democracy")
    free = ours[(ours["free"] > 0) & (ours["op"] != "~1")]
    assert _keys(free) == _keys(reference[reference["se"] > 0]) and len(free) == 31
    fixed = ours.merge(reference[reference["se"] == 0], on=["level", "lhs", "op", "rhs"], validate="one_to_one")
    assert len(fixed) == 3 and (fixed["fixed"] == fixed["est"]).all()


def test_demo_twolevel_levels_split_at_the_within_factor_mean():
    reference = datasets.reference("demo_twolevel")
    last_within = reference.index[(reference["lhs"] == "fw") & (reference["op"] == "~1")][0]
    assert (reference["level"] == np.where(reference.index <= last_within, "within", "between")).all()
    assert set(reference.loc[reference["lhs"] == "fw", "level"]) == {"within"}
    assert set(reference.loc[reference["lhs"] == "fb", "level"]) == {"between"}


def test_hs_multigroup_estimates_join_the_model_of_each_group():
    """Each of the three fits has, per school, the rows of the single-group CFA; labels shared by
    the two schools count once, which gives lavaan's npar; the fit table agrees with itself
    (AIC = −2ℓ + 2 npar, df = 2 × 54 moments − npar) and with the documented log-likelihoods."""
    estimates, fit = datasets.reference("hs_multigroup"), datasets.reference("hs_multigroup", "fit").set_index("model")
    single = _parameter_table("hs_multigroup").assign(level="")
    for (model, group), rows in estimates.groupby(["model", "group"]):
        assert _keys(rows.assign(level="")) == _keys(single), (model, group)
    for model, rows in estimates.groupby("model"):
        free = rows[rows["se"] > 0]
        npar = free["label"].eq("").sum() + free.loc[free["label"] != "", "label"].nunique()
        assert npar == fit.loc[model, "npar"]
    assert fit["logl"].round(3).to_dict() == {"configural": -3682.198, "metric": -3686.294, "scalar": -3706.323}
    np.testing.assert_allclose(fit["aic"], -2 * fit["logl"] + 2 * fit["npar"])
    assert (fit["df"] == 2 * 54 - fit["npar"]).all()


@pytest.mark.parametrize("name, loglik", [("random_slope", -2246.833), ("three_level", -1442.958),
                                          ("logit_random_intercept", -929.709)])
def test_lme4_estimates_map_onto_the_documented_model(name, loglik):
    reference = datasets.reference(name).set_index("param")["est"]
    info = datasets.info(name)
    assert set(reference.index) == set(info.parameters) | {"loglik"}
    assert reference["loglik"] == pytest.approx(loglik, abs=1e-3)
    model = bm.Model(info.model, datasets.load(name), **info.options)
    assert sorted(model.plan.parameters["name"]) == sorted(info.parameters.values())
    variances = [param for param in info.parameters if param.startswith("var_")]
    assert (reference[variances] > 0).all()


def test_crossed_schools_are_crossed_and_its_estimates_map_onto_the_model():
    data = datasets.load("crossed_schools")
    assert data["neighbourhood"].nunique() == 30
    assert (data.groupby("school")["neighbourhood"].nunique() > 1).all()
    assert (data.groupby("neighbourhood")["school"].nunique() > 1).all()
    reference = datasets.reference("crossed_schools").set_index("param")
    info = datasets.info("crossed_schools")
    assert set(reference.index) == set(info.parameters) | {"loglik"}
    assert reference.loc["loglik", "est"] == pytest.approx(-2227.697, abs=1e-3)
    assert (reference.loc[list(info.parameters), "se"] > 0).all()
    model = bm.Model(info.model, data, **info.options)
    assert sorted(model.plan.parameters["name"]) == sorted(info.parameters.values())


def test_gllamm_table1_holds_the_published_estimates():
    table = datasets.reference("gllamm_table1")
    assert list(table.columns) == ["block", "item", "factor", "level", "estimate", "se"] and len(table) == 26
    value = table.set_index(["block", "item", "factor", "level"])["estimate"]
    assert value[("factor_variance", "", "general", "subject")] == 5.22
    assert value[("factor_variance", "", "extreme", "subject")] == 3.30
    assert value[("factor_variance", "", "general", "district")] == 0.36
    assert value[("loglik", "", "", "")] == -5160.9
    identification = table[table["se"].isna() & (table["block"] == "loading")]
    assert set(zip(identification["item"], identification["factor"], identification["estimate"])) == {
        ("woman", "general", 1.0), ("defect", "extreme", 1.0), ("woman", "extreme", 0.0),
        ("couple", "extreme", 0.0), ("marriage", "extreme", 0.0), ("financial", "extreme", 0.0)}
    assert (table.groupby("block").size() == pd.Series({"factor_variance": 4, "intercept": 7, "loading": 14,
                                                         "loglik": 1})).all()
    with pytest.raises(bm.SettingsError, match=r"no data in the package.*bm.datasets.reference\('gllamm_table1'\)"):
        datasets.load("gllamm_table1")


def test_every_file_in_the_folder_belongs_to_a_set():
    shipped = {entry.name for entry in files("bayes_msem.datasets").iterdir() if entry.name.endswith(".csv")}
    named = set()
    for name in datasets.names():
        info = datasets.info(name)
        named |= {info.data} - {None} | set(info.references.values())
    assert shipped == named and len(shipped) == 18


def test_unknown_names_and_tables_list_the_choices():
    with pytest.raises(bm.SettingsError, match="no data set named 'demo'; the data sets are: demo_twolevel, "):
        datasets.load("demo")
    with pytest.raises(bm.SettingsError, match="gllamm_table1"):
        datasets.reference("nope")
    no_table = "'random_slope' has no reference table 'fit'; its tables are: estimates."
    with pytest.raises(bm.SettingsError, match=no_table):
        datasets.reference("random_slope", "fit")
