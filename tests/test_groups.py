"""Multiple groups (lavaan's group=, group.equal, group.partial): the stacked parameter table and
its equalities, the checks of the group column, the log-likelihood as the sum of the groups' own,
and a fit's table and report by group. lavaan's invariance fits are in test_reference.py."""

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.replace import graph_replace

import bayes_msem as bm
from bayes_msem.spec.groups import group_table, row_class
from bayes_msem.spec.plan import positive_definite
from bayes_msem.spec.syntax import parse
from bayes_msem.spec.table import build_table

CFA = "f =~ y1 + y2 + y3\n"
TWO_LEVEL = "level: within\n  fw =~ y1 + y2 + y3\nlevel: between\n  fb =~ y1 + y2 + y3\n"


def _frame(seed: int = 0, clusters: int = 24, size: int = 5) -> pd.DataFrame:
    """Three indicators of a factor with a cluster part, clusters nested in groups A and B."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(clusters), size)
    factor = rng.normal(size=len(cluster)) + 0.7 * rng.normal(size=clusters)[cluster]
    values = {f"y{k}": loading * factor + rng.normal(scale=0.6, size=len(cluster))
              for k, loading in enumerate([1.0, 0.8, 1.2], start=1)}
    return pd.DataFrame(values).assign(cluster=cluster, grp=np.where(cluster < clusters // 2, "A", "B"))


def _grouped(syntax: str, equal=(), partial=()) -> pd.DataFrame:
    return group_table(build_table(parse(syntax)), ["A", "B"], equal, partial)


def test_row_classes_follow_lavaans_group_equal():
    latent = {"f", "g"}
    cases = {("f", "=~", "y1"): "loadings", ("y1", "~", "x"): "regressions", ("y1", "|", "t1"): "thresholds",
             ("y1", "~1", ""): "intercepts", ("f", "~1", ""): "means", ("y1", "~~", "y1"): "residuals",
             ("y1", "~~", "y2"): "residual.covariances", ("f", "~~", "f"): "lv.variances",
             ("f", "~~", "g"): "lv.covariances"}
    assert {key: row_class(key[1], key[0], key[2], latent) for key in cases} == cases
    assert row_class("~1", "u", "", latent, binary={"u"}) == "thresholds"  # a binary item's one threshold


def test_equalities_share_free_numbers_across_groups():
    configural = _grouped(CFA)
    per_group = int(configural.query("group == 'A'")["free"].max())
    assert int(configural["free"].max()) == 2 * per_group  # nothing shared
    metric = _grouped(CFA, ["loadings"]).set_index(["group", "lhs", "op", "rhs"])["free"]
    assert metric[("A", "f", "=~", "y2")] == metric[("B", "f", "=~", "y2")] > 0
    assert metric[("A", "y1", "~1", "")] != metric[("B", "y1", "~1", "")]
    scalar = _grouped(CFA, ["loadings", "intercepts"], ["y3 ~1"]).set_index(["group", "lhs", "op", "rhs"])
    assert scalar.at[("A", "y1", "~1", ""), "free"] == scalar.at[("B", "y1", "~1", ""), "free"]
    assert scalar.at[("A", "y3", "~1", ""), "free"] != scalar.at[("B", "y3", "~1", ""), "free"]  # partial
    # lavaan's identification of scalar models: the factor mean fixed to 0 in the first group only
    assert scalar.at[("A", "f", "~1", ""), "free"] == 0 and scalar.at[("B", "f", "~1", ""), "free"] > 0
    equal_means = _grouped(CFA, ["loadings", "intercepts", "means"]).set_index(["group", "lhs", "op", "rhs"])
    assert equal_means.at[("B", "f", "~1", ""), "free"] == 0  # equal means: 0 in every group
    labelled = _grouped("f =~ y1 + a*y2 + y3\n").set_index(["group", "lhs", "op", "rhs"])["free"]
    assert labelled[("A", "f", "=~", "y2")] == labelled[("B", "f", "=~", "y2")]  # a label names one parameter


def test_per_group_modifiers_decide_each_group():
    """c(...) as lavaan reads it: entry g labels, fixes, frees or gives a prior to the term in group g; a
    label shared by the entries makes the parameter equal, distinct labels free it from group_equal."""
    syntax = ('f =~ c(NA, 1)*y1 + c(b, b)*y2 + c(b3a, b3b)*y3\nf ~~ c(1, NA)*f\n'
              'y1 ~ c(prior("normal(5, 1)"), prior("normal(0, 1)"))*1\n')
    table = bm.Model(syntax, _frame(), group="grp", group_equal=["loadings"]).parameter_table()
    rows = table.set_index(["group", "lhs", "op", "rhs"])
    assert rows.at[("A", "f", "=~", "y1"), "free"] > 0 and rows.at[("B", "f", "=~", "y1"), "fixed"] == 1
    assert rows.at[("A", "f", "~~", "f"), "fixed"] == 1 and rows.at[("B", "f", "~~", "f"), "free"] > 0
    assert rows.at[("A", "f", "=~", "y2"), "free"] == rows.at[("B", "f", "=~", "y2"), "free"] > 0
    assert rows.at[("A", "f", "=~", "y3"), "free"] != rows.at[("B", "f", "=~", "y3"), "free"]  # its own labels
    assert rows.loc[[("A", "y1", "~1", ""), ("B", "y1", "~1", "")], "prior"].tolist() == ["normal(5, 1)",
                                                                                          "normal(0, 1)"]
    one_group = bm.Model("f =~ y1 + c(a)*y2 + y3\n", _frame()).parameter_table()  # c(x) alone: the modifier x
    assert one_group.set_index(["lhs", "rhs"]).at[("f", "y2"), "label"] == "a"


@pytest.mark.parametrize(("syntax", "says"), [
    ("f =~ y1 + c(a, b, c)*y2 + y3\n", r"line 1: c\(...\) on 'f =~ y2' has 3 entries; the model has 2 groups \(A, B\)"),
    ("f =~ y1 + y2 + y3\ny3 ~ c(1)*1\n", r"'y3 ~ 1' has 1 entry; the model has 2 groups"),
    ("f =~ y1 + y2 + y3\ny1 ~~ c(-1, NA)*y1\n", "a variance cannot be negative"),
    ("f =~ y1 + c(a, a)*c(1, 2)*y2 + y3\n", r"the label 'a' is fixed to different values \[1.0, 2.0\]"),
    ("f =~ y1 + c(a, b)*y2 + y3\ny1 ~ c(a, NA)*1\n", "shared by parameters of different kinds"),
    ('f =~ c(prior("normal(1, 1)"), prior("normal(1, 2)"))*y1 + y2 + y3\n', "would have no effect: that parameter is "
     "fixed at 1"),
    ("f =~ c(NA, NA)*y1 + y2 + y3\n", "has no scale"),
])
def test_bad_per_group_modifiers_are_refused(syntax, says):
    with pytest.raises(bm.SpecificationError, match=says):
        bm.Model(syntax, _frame(), group="grp")


def test_per_group_modifiers_without_groups_are_refused():
    with pytest.raises(bm.SpecificationError, match="has 2 entries, one per group, but the model has no groups"):
        bm.Model("f =~ y1 + c(a, b)*y2 + y3\n", _frame())


@pytest.mark.parametrize(("kwargs", "error", "says"), [
    (dict(group="school"), bm.DataError, "The group column 'school' is not a column"),
    (dict(group="one"), bm.DataError, "holds one group"),
    (dict(group="grp", cluster="split"), bm.DataError, "clusters must be nested in groups"),
    (dict(group_equal=["loadings"]), bm.SettingsError, "give the group column too"),
    (dict(group=3), bm.ArgumentTypeError, "group must be the name of the group column"),
    (dict(group="grp", group_equal="loadings"), bm.ArgumentTypeError, "group_equal"),
    (dict(group="grp", group_equal=["loading"]), bm.SpecificationError, "unknown group_equal class"),
    (dict(group="grp", group_partial=["y2"]), bm.SpecificationError, "'lhs op rhs'"),
    (dict(group="few"), bm.DataError, "group 'C' of 'few' has 3 row.s., no more than the model's 3 observed "
     "variables: too few"),
    (dict(group="lone", cluster="cluster"), bm.DataError, "group 'C' of 'lone' has one cluster of 'cluster'"),
    (dict(group="grp", group_partial=["f =~ y9"]), bm.SpecificationError,
     "names 'f =~ y9', which is not a parameter of the model; parameters of that variable: f =~ y1, f =~ y2"),
])
def test_bad_group_settings_are_refused(kwargs, error, says):
    frame = _frame().assign(one="x", split=lambda d: d.index % 7, few=lambda d: np.where(d.index < 3, "C", d["grp"]),
                            lone=lambda d: np.where(d["cluster"] == 0, "C", d["grp"]))
    cluster = kwargs.pop("cluster", None)
    with pytest.raises(error, match=says):
        bm.Model(TWO_LEVEL if cluster else CFA, frame, cluster=cluster, **kwargs)


def _loglik(model: bm.Model):
    """The model's log-likelihood as a compiled function of θ (and, where the strategy samples latent
    variables, of their standard-normal values z, by name)."""
    theta = pt.vector("theta")
    pymc_model = model.pymc_model
    sampled = [rv for rv in pymc_model.free_RVs if rv.name.endswith("_z")]
    z = [rv.type(name=rv.name) for rv in sampled]
    loglik = graph_replace(pymc_model["loglik"], {pymc_model["theta"]: theta, **dict(zip(sampled, z))})
    function = pytensor.function([theta, *z], loglik)
    return lambda t, values: function(t, *(values[v.name] for v in z))


def _z_values(model: bm.Model, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random standard-normal values of the model's sampled latent variables z."""
    point = model.pymc_model.initial_point()
    return {name: rng.normal(size=np.shape(value)) for name, value in point.items() if name.endswith("_z")}


SAMPLED = {  # multiple groups through the strategies that sample latent variables
    "conditional": ("f =~ u + y2 + y3\n", None, {"u": "bernoulli"}),
    "hybrid": ("level: within\n  fw =~ y1 + y2\n  l3 | fw =~ y3\nlevel: between\n  fb =~ y1 + y2 + y3\n",
               "cluster", {}),
}


@pytest.mark.parametrize("name", list(SAMPLED))
def test_sampled_group_loglik_is_the_sum_of_each_groups_own(name):
    """log p(y | θ, z) = Σ_g log p(y_g | θ_g, z_g): each group a sub-model (g1::, g2::) whose sampled
    latent variables are the group's own model's, at random θ and z."""
    syntax, cluster, family = SAMPLED[name]
    frame = _frame().assign(u=lambda d: (d["y1"] > 0).astype(int))
    grouped = bm.Model(syntax, frame, cluster=cluster, group="grp", family=family)
    assert grouped.strategy.kind == name
    names = list(grouped.plan.parameters["name"])
    rng = np.random.default_rng(5)
    theta = np.array([1.0 + 0.2 * rng.random() if "~~" in n and n.split(":")[-1].split("~~")[0] ==
                      n.split("~~")[-1] else 0.3 * rng.normal() for n in names])
    z = _z_values(grouped, rng)
    total = 0.0
    for k, group in enumerate(["A", "B"], start=1):
        own = bm.Model(syntax, frame[frame["grp"] == group], cluster=cluster, family=family)
        own_theta = np.array([theta[names.index(f"{group}:{n}")] for n in own.plan.parameters["name"]])
        own_z = {n.removeprefix(f"g{k}::"): v for n, v in z.items() if n.startswith(f"g{k}::")}
        total += float(_loglik(own)(own_theta, own_z))
    np.testing.assert_allclose(float(_loglik(grouped)(theta, z)), total, rtol=1e-10)


@pytest.mark.parametrize("syntax, cluster", [(CFA, None), (TWO_LEVEL, "cluster")], ids=["single-level", "two-level"])
def test_group_loglik_is_the_sum_of_each_groups_own(syntax, cluster):
    """Configural model: log p(y | θ) = Σ_g log p(y_g | θ_g), each group's own model fitted to its rows
    alone (clusters nested in groups for two levels), at θ drawn at random around the start."""
    frame = _frame()
    grouped = bm.Model(syntax, frame, cluster=cluster, group="grp")
    names = list(grouped.plan.parameters["name"])
    rng = np.random.default_rng(3)
    theta = np.array([1.0 + 0.2 * rng.random() if "~~" in n and n.split(":")[-1].split("~~")[0] ==
                      n.split("~~")[-1] else 0.3 * rng.normal() for n in names])
    total = 0.0
    for group in ["A", "B"]:
        own = bm.Model(syntax, frame[frame["grp"] == group], cluster=cluster)
        own_theta = np.array([theta[names.index(f"{group}:{n}")] for n in own.plan.parameters["name"]])
        total += float(_loglik(own)(own_theta, {}))
    np.testing.assert_allclose(float(_loglik(grouped)(theta, {})), total, rtol=1e-10)


def _ordinal_frame(seed: int = 4, rows: int = 300) -> pd.DataFrame:
    """Four 3-category items of one factor in groups A and B, loadings and thresholds equal, the
    factor's mean 0 in A and 0.5 in B (probit link, as for ordered= items)."""
    rng = np.random.default_rng(seed)
    group = np.repeat(["A", "B"], rows)
    factor = rng.normal(size=2 * rows) + np.where(group == "B", 0.5, 0.0)
    items = {}
    for k, loading in enumerate([1.0, 1.2, 0.8, 1.0], start=1):
        latent = loading * factor + rng.normal(size=2 * rows)
        items[f"u{k}"] = np.digitize(latent, [-0.5, 0.8]) + 1  # categories 1, 2, 3
    return pd.DataFrame(items).assign(grp=group)


def test_each_groups_categories_are_coded_as_all_the_datas():
    """Categories 1, 2, 3 are codes 0, 1, 2 in every group, also in a group without category 3."""
    frame = _ordinal_frame()
    frame.loc[(frame["grp"] == "A") & (frame["u4"] == 3), "u4"] = 2
    model = bm.Model("f =~ u1 + u2 + u3 + u4\n", frame, group="grp", ordered=["u1", "u2", "u3", "u4"])
    for group, part in model.groups.items():
        rows = frame["grp"] == group
        np.testing.assert_array_equal(part.column("u4"), frame.loc[rows, "u4"].to_numpy() - 1)
        np.testing.assert_array_equal(part.column("u1"), frame.loc[rows, "u1"].to_numpy() - 1)


def test_ordinal_items_fit_across_groups_with_equal_thresholds():
    """Scalar invariance of ordinal items (lavaan's group.equal = c("loadings", "thresholds")): the
    thresholds and loadings shared, the factor mean free past the first group and recovered, and a
    leave-one-row-out LOO over both groups' rows."""
    items = ["u1", "u2", "u3", "u4"]
    model = bm.Model("f =~ u1 + u2 + u3 + u4\n", _ordinal_frame(), group="grp", ordered=items,
                     group_equal=["loadings", "thresholds"])
    assert model.strategy.kind == "conditional"
    table = model.parameter_table().set_index(["group", "lhs", "op", "rhs"])
    assert table.at[("A", "u2", "|", "t1"), "free"] == table.at[("B", "u2", "|", "t1"), "free"] > 0
    assert table.at[("A", "f", "~1", ""), "fixed"] == 0 and table.at[("B", "f", "~1", ""), "free"] > 0
    fit = model.fit(draws=300, tune=300, chains=2, random_seed=2, quiet=True)
    mean = fit.parameters().set_index(["group", "lhs", "op", "rhs"]).loc[("B", "f", "~1", "")]
    assert abs(mean["mean"] - 0.5) < 3 * mean["sd"]
    assert fit.log_likelihood(draws=60, importance_draws=40, seed=1).sizes["unit"] == 600


def test_equal_factor_covariances_keep_every_groups_matrix_positive_definite():
    """group_equal=["lv.covariances"]: one covariance for both groups, sampled as the first group's
    correlation times its SDs; the second group's implied correlation matrix stays positive definite."""
    data = bm.datasets.load("hs_multigroup")
    model = bm.Model("visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\n", data, group="school",
                     group_equal=["loadings", "lv.covariances"])
    rows = model.parameter_table().set_index(["group", "lhs", "op", "rhs"])["free"]
    assert rows[("Pasteur", "visual", "~~", "textual")] == rows[("Grant-White", "visual", "~~", "textual")] > 0
    fit = model.fit(draws=200, tune=200, chains=2, random_seed=3, quiet=True)
    theta = fit.idata.posterior["theta"].values.reshape(-1, len(model.plan.parameters))
    assert positive_definite(model.plan, theta).all()
    covariance = fit.parameters().query("op == '~~' and lhs == 'visual' and rhs == 'textual'")["mean"]
    assert covariance.nunique() == 1


@pytest.fixture(scope="module")
def group_fit():
    model = bm.Model(CFA, _frame(), group="grp", group_equal=["loadings"])
    return model.fit(draws=200, tune=200, chains=2, random_seed=1, quiet=True)


def test_a_group_fit_reports_each_group(group_fit, tmp_path):
    table = group_fit.parameters()
    assert list(dict.fromkeys(table["group"])) == ["A", "B"] and len(table) == 2 * len(table.query("group == 'A'"))
    loadings = table.query("op == '=~' and rhs == 'y2'")["mean"]
    assert loadings.nunique() == 1  # equal loadings: one posterior, shown in each group
    text = group_fit.summary()
    assert "Groups (grp)" in text and "Group: A" in text and "Group: B" in text
    with pytest.raises(bm.UnavailableError, match="not available for multiple-group fits"):
        group_fit.standardized()
    with pytest.raises(bm.UnavailableError, match="not available for multiple-group fits; fit.ppp"):
        group_fit.predictive_checks()
    loaded = bm.load(group_fit.save(tmp_path / "fit.nc"))
    pd.testing.assert_frame_equal(loaded.parameters(), table)
    assert loaded._model().groups.keys() == {"A", "B"}


def test_invariance_compares_the_steps():
    """Configural then metric: the table's rows, the ELPD difference from the pointwise values
    (its SE as √(J Var)), and the configural fit's group differences, largest first."""
    model = bm.Model(CFA, _frame(), group="grp")
    result = bm.invariance(model, steps=["configural", "metric"], ppp_draws=20, seed=1, draws=200, tune=200,
                           chains=2, random_seed=1, quiet=True)
    table = result.table.set_index("model")
    assert list(table.index) == ["configural", "metric"] and list(result.fits) == ["configural", "metric"]
    assert table.at["configural", "free parameters"] - table.at["metric", "free parameters"] == 2  # y2, y3 loadings
    loo = {step: fit.loo() for step, fit in result.fits.items()}
    difference = loo["metric"].elpd_i.values - loo["configural"].elpd_i.values
    assert table.at["metric", "elpd_diff"] == pytest.approx(difference.sum())
    assert table.at["metric", "diff_se"] == pytest.approx(np.sqrt(len(difference) * difference.var()))
    assert table["ppp"].between(0, 1).all() and np.isnan(table.at["configural", "elpd_diff"])
    differences = result.differences
    assert set(differences["class"]) == {"loadings", "intercepts", "residuals"} and (differences["group"] == "B").all()
    assert differences["standardized"].abs().is_monotonic_decreasing
    with pytest.raises(bm.SettingsError, match="unknown invariance step"):
        bm.invariance(model, steps=["weak"])


@pytest.fixture(scope="module")
def departing_intercept() -> pd.DataFrame:
    """Three groups of 150 with equal loadings and intercepts but y2's intercept 1.2 higher in group
    C (residual SD 0.6)."""
    rng = np.random.default_rng(11)
    group = np.repeat(["A", "B", "C"], 150)
    factor = rng.normal(size=len(group))
    frame = pd.DataFrame({f"y{k}": loading * factor + rng.normal(scale=0.6, size=len(group))
                          for k, loading in enumerate([1.0, 0.8, 1.2], start=1)}).assign(grp=group)
    frame.loc[frame["grp"] == "C", "y2"] += 1.2
    return frame


def test_approximately_equal_intercepts_flag_the_group_that_departs(departing_intercept):
    """With a sparse deviation prior (Cauchy, scale 0.1) each group's intercept is the common mean
    plus its deviation (exactly, in every draw), the factor means are free after the first group,
    and the one departure flagged is the true one, C's y2, first in the table."""
    model = bm.Model(CFA, departing_intercept, group="grp", group_equal=["loadings"],
                     group_approx={"intercepts": "cauchy(0, 0.1)"})
    assert [(s.name, s.sd, s.nu) for s in model.plan.approximate] == [(f"y{k}~1", 0.1, 1.0) for k in (1, 2, 3)]
    table = model.table.set_index(["group", "lhs", "op", "rhs"])
    assert table.at[("A", "f", "~1", ""), "free"] == 0 and table.at[("C", "f", "~1", ""), "free"] > 0
    fit = model.fit(draws=300, tune=300, chains=2, random_seed=1, quiet=True)
    posterior = fit.idata.posterior
    for k, chosen in enumerate(model.plan.approximate):
        theta = posterior["theta"].isel(parameter=chosen.index).values
        common = posterior["approximate_means"].isel(approximate=k).values[..., None]
        deviations = posterior["approximate_deviations"].isel(approximate=k).values
        np.testing.assert_allclose(theta, common + deviations, atol=1e-12)
    report = fit.approximate()
    assert report.loc[0, ["parameter", "group"]].tolist() == ["y2~1", "C"]
    assert report.loc[report["flagged"], ["parameter", "group"]].values.tolist() == [["y2~1", "C"]]
    assert report["prior"].eq("cauchy(0, 0.1)").all() and len(report) == 9
    assert abs(report.loc[0, "departure"] - 1.2) < 3 * report.loc[0, "sd"]


def test_a_normal_deviation_prior_spreads_one_departure_over_the_others(departing_intercept):
    """blavaan's wiggle (normal, SD 0.1) on the same data: a 1.2 departure is 12 prior SDs, so the
    posterior moves C's factor mean to absorb part of it and the other intercepts of C depart
    instead; the documented reason to prefer the sparse prior for finding non-invariant items."""
    model = bm.Model(CFA, departing_intercept, group="grp", group_equal=["loadings"], group_approx={"intercepts": 0.1})
    report = model.fit(draws=300, tune=300, chains=2, random_seed=1, quiet=True).approximate()
    flagged = report.loc[report["flagged"], ["parameter", "group"]].values.tolist()
    assert ["y2~1", "C"] in flagged and len(flagged) > 1


@pytest.mark.parametrize(("approx", "says"), [
    ({"residuals": 0.1}, "group_approx takes the classes"),
    ({"intercepts": 0}, "must be a number > 0"),
    ({"intercepts": "laplace(0, 0.1)"}, "or a prior centred at 0"),
    ({"intercepts": "normal(1, 0.1)"}, "or a prior centred at 0"),
    ({"intercepts": 0.1, "means": "cauchy(0, 0.1)"}, "must be of one family"),
    ({"loadings": 0.1}, "is in group_equal and in group_approx"),
])
def test_bad_approximate_settings_are_refused(approx, says):
    with pytest.raises(bm.SpecificationError, match=says):
        bm.Model(CFA, _frame(), group="grp", group_equal=["loadings"], group_approx=approx)
