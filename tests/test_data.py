"""Tests for bayes_msem.data.clustered: validation errors, sorting and grouping by cluster."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.data.clustered import ClusteredData, DataError, validate


@pytest.fixture
def df() -> pd.DataFrame:
    """Unbalanced clusters with string ids, rows out of cluster order, non-default index labels."""
    return pd.DataFrame(
        {
            "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            "x": [0.5, -1.0, 2.0, 0.0, 1.5, 3.0, -2.0],
            "w": [10.0, 20.0, 10.0, 30.0, 20.0, 10.0, 30.0],
            "g": ["b", "a", "b", "c", "a", "b", "c"],
        },
        index=[f"r{i}" for i in range(7)],
    )


def test_sorting_and_grouping(df: pd.DataFrame) -> None:
    d = validate(df, ["y", "x", "w"], cluster="g", between=["w"])
    assert isinstance(d, ClusteredData)
    assert d.cluster == "g"
    assert d.cluster_ids.tolist() == ["b", "a", "c"]  # order of first row in the file
    assert d.row_labels.tolist() == ["r0", "r2", "r5", "r1", "r4", "r3", "r6"]
    assert d.cluster_index.dtype == np.int64 and d.sizes.dtype == np.int64
    assert d.cluster_index.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert d.sizes.tolist() == [3, 2, 2]
    assert d.n_rows == 7 and d.n_clusters == 3
    assert d.column("y").dtype == np.float64
    assert d.column("y").tolist() == [1.0, 3.0, 6.0, 2.0, 5.0, 4.0, 7.0]
    np.testing.assert_array_equal(d.matrix(["y", "x"]), df.loc[d.row_labels, ["y", "x"]].to_numpy())
    assert d.matrix([]).shape == (7, 0)
    np.testing.assert_array_equal(d.cluster_values(["w"])[:, 0], [10.0, 20.0, 30.0])
    assert set(d.values) == {"y", "x", "w"}
    with pytest.raises(ValueError):
        d.column("y")[0] = 99.0  # read-only


def test_cluster_means_match_pandas(df: pd.DataFrame) -> None:
    d = validate(df, ["y", "x"], cluster="g")
    expected = df.groupby("g", sort=False)[["y", "x"]].mean().loc[d.cluster_ids].to_numpy()
    np.testing.assert_allclose(d.cluster_means(["y", "x"]), expected)


def test_cluster_column_kinds(df: pd.DataFrame) -> None:
    ints = df.assign(g=df["g"].map({"a": 7, "b": 3, "c": 5}))
    d = validate(ints, ["y"], cluster="g")
    assert d.cluster_ids.tolist() == [3, 7, 5]
    cats = df.assign(g=pd.Categorical(df["g"], categories=["c", "a", "b", "unused"]))
    d = validate(cats, ["y"], cluster="g")
    assert d.cluster_ids.tolist() == ["b", "a", "c"] and d.sizes.tolist() == [3, 2, 2]


def test_single_level(df: pd.DataFrame) -> None:
    d = validate(df, ["y", "x"])
    assert d.cluster is None
    assert d.n_rows == d.n_clusters == 7
    assert d.cluster_index.tolist() == list(range(7))
    assert d.sizes.tolist() == [1] * 7
    assert d.cluster_ids.tolist() == d.row_labels.tolist() == list(df.index)
    np.testing.assert_array_equal(d.column("x"), df["x"].to_numpy())
    np.testing.assert_array_equal(d.cluster_means(["x"])[:, 0], df["x"].to_numpy())


def test_bool_and_nullable_dtypes(df: pd.DataFrame) -> None:
    data = df.assign(
        b=[True, False, True, True, False, False, True],
        nb=pd.array([True, False, True, True, False, False, False], dtype="boolean"),
        i=pd.array([1, 2, 3, 4, 5, 6, 7], dtype="Int64"),
        f=pd.array([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5], dtype="Float64"),
    )
    d = validate(data, ["b", "nb", "i", "f"])
    assert all(v.dtype == np.float64 for v in d.values.values())
    assert d.column("b").tolist() == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert d.column("i").tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    with pytest.raises(DataError, match=r"'i': 1 missing \(rows 'r2'\)"):
        validate(data.assign(i=pd.array([1, 2, None, 4, 5, 6, 7], dtype="Int64")), ["i"])


def test_demo_twolevel() -> None:
    data = bm.datasets.load("demo_twolevel")
    names = [f"y{i}" for i in range(1, 7)] + ["x1", "x2", "x3", "w1", "w2"]
    d = validate(data, names, cluster="cluster", between=["w1", "w2"])
    assert d.n_rows == 2500 and d.n_clusters == 200
    assert d.sizes.sum() == 2500
    expected = data.groupby("cluster", sort=False)[["y1", "x1"]].mean().loc[d.cluster_ids].to_numpy()
    np.testing.assert_allclose(d.cluster_means(["y1", "x1"]), expected)
    with pytest.raises(DataError, match="'y1' varies within 200 cluster"):
        validate(data, ["y1"], cluster="cluster", between=["y1"])


# --- errors: each message names the cause and the fix ---------------------------------------


def errmsg(*args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        validate(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("data", [{"y": [1.0, 2.0]}, np.array([[1.0], [2.0]])])
def test_not_a_dataframe(data) -> None:
    msg = errmsg(data, ["y"])
    assert "pandas DataFrame" in msg and "pd.DataFrame(" in msg


def test_empty() -> None:
    msg = errmsg(pd.DataFrame({"y": pd.Series([], dtype=float)}), ["y"])
    assert "no rows" in msg


def test_missing_variable(df: pd.DataFrame) -> None:
    msg = errmsg(df, ["Y", "xx"])
    assert "'Y' is not a column" in msg and "Did you mean 'y'" in msg
    assert "Available columns: 'y', 'x', 'w', 'g'" in msg and "rename" in msg
    wide = pd.DataFrame({f"item{i}": [1.0, 2.0] for i in range(30)})
    msg = errmsg(wide, ["item_3"])
    assert "Did you mean" in msg and "'item3'" in msg and "Available columns" not in msg


def test_missing_cluster_column(df: pd.DataFrame) -> None:
    msg = errmsg(df, ["y"], cluster="G")
    assert "cluster column 'G' is not a column" in msg and "Did you mean 'g'" in msg


def test_duplicate_column(df: pd.DataFrame) -> None:
    data = pd.concat([df, df[["y"]]], axis=1)
    assert "appears 2 times" in errmsg(data, ["y"])


def test_cluster_missing_values(df: pd.DataFrame) -> None:
    data = df.assign(g=["b", None, "b", "c", np.nan, "b", "c"])
    msg = errmsg(data, ["y"], cluster="g")
    assert "2 missing" in msg and "'r1', 'r4'" in msg and "drop those rows" in msg and "assign" in msg


def test_too_few_clusters(df: pd.DataFrame) -> None:
    msg = errmsg(df.assign(g="a"), ["y"], cluster="g")
    assert "1 distinct cluster" in msg and "at least 2" in msg and "30+" in msg


def test_all_singletons(df: pd.DataFrame) -> None:
    msg = errmsg(df.assign(g=range(7)), ["y"], cluster="g")
    assert "single member" in msg and "cannot be separated" in msg and "right one" in msg


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (["a", "b", "a", "b", "a", "b", "a"], ["text such as 'a', 'b'", "pd.get_dummies", "cat.codes"]),
        (pd.Categorical([1, 2, 1, 2, 1, 2, 1]), ["dtype category", "pd.get_dummies", "cat.codes"]),
        (pd.date_range("2020-01-01", periods=7), ["datetime64", "days since start"]),
        (pd.to_timedelta(range(7), unit="D"), ["timedelta64", "total_seconds"]),
        (np.arange(7) * (1 + 1j), ["complex", "real part"]),
    ],
)
def test_non_numeric(df: pd.DataFrame, values, words: list[str]) -> None:
    msg = errmsg(df.assign(z=values), ["y", "z"])
    assert "column 'z' has dtype" in msg and "numeric" in msg
    assert all(w in msg for w in words), msg


def test_missing_values(df: pd.DataFrame) -> None:
    data = df.assign(y=[1.0, np.nan, 3.0, 4.0, 5.0, 6.0, 7.0], x=[None] * 6 + [1.0])
    data["x"] = data["x"].astype(float)
    msg = errmsg(data, ["y", "x"])
    assert "'y': 1 missing (rows 'r1')" in msg
    assert "'x': 6 missing (rows 'r0', 'r1', 'r2', 'r3', 'r4', ...)" in msg
    assert "covariates" in msg and "'y ~~ y'" in msg and "data.dropna(subset=['y', 'x'])" in msg


def test_missing_cells_allowed_where_integrated_out(df: pd.DataFrame) -> None:
    data = df.assign(y=[1.0, np.nan, 3.0, 4.0, 5.0, 6.0, 7.0])
    d = validate(data, ["y", "x"], cluster="g", missing_ok=["y"])
    assert d.has_missing and np.isnan(d.column("y")).sum() == 1
    assert np.isfinite(d.cluster_means(["y"])).all()
    with pytest.raises(DataError, match="'y'.* no observed values"):
        validate(data.assign(y=np.nan), ["y", "x"], cluster="g", missing_ok=["y"])


def test_infinite_values(df: pd.DataFrame) -> None:
    msg = errmsg(df.assign(x=[0.0, np.inf, 1.0, -np.inf, 2.0, 3.0, 4.0]), ["y", "x"])
    assert "Infinite" in msg and "'x' (rows 'r1', 'r3')" in msg and "drop" in msg


def test_constant_variable(df: pd.DataFrame) -> None:
    msg = errmsg(df.assign(c=2.5), ["y", "c"])
    assert "'c'" in msg and "carries no information" in msg and "remove it from the model" in msg


def test_between_varies_within(df: pd.DataFrame) -> None:
    data = df.assign(w=[10.0, 20.0, 10.0, 30.0, 20.0, 11.0, 31.0])
    msg = errmsg(data, ["y", "w"], cluster="g", between=["w"])
    assert "'w' varies within 2 cluster(s)" in msg and "cluster 'b' has values 10 and 11" in msg
    assert "cluster mean" in msg and "within level" in msg
    # rounding noise is tolerated
    validate(df.assign(w=df["w"] * (1 + 1e-13 * np.arange(7))), ["w"], cluster="g", between=["w"])


def test_group_mean_center_adds_cluster_means_and_deviations():
    from bayes_msem import group_mean_center

    frame = pd.DataFrame({"g": ["a", "b", "a", "b"], "x": [1.0, 10.0, 3.0, 14.0]})
    centred = group_mean_center(frame, ["x"], "g")
    assert centred["x_cm"].tolist() == [2.0, 12.0, 2.0, 12.0]
    assert centred["x_cwc"].tolist() == [-1.0, -2.0, 1.0, 2.0]
    with pytest.raises(DataError, match="cluster"):
        group_mean_center(frame, ["x"], "school")


def _three_level(class_ids):
    return pd.DataFrame({"y": np.arange(8.0) ** 1.5, "x": np.arange(8.0) % 3, "w": [1.0] * 4 + [2.0] * 4,
                         "class": class_ids, "school": ["s1"] * 4 + ["s2"] * 4})


def test_three_levels_nested():
    d = validate(_three_level(["a", "a", "b", "b", "c", "c", "d", "d"]), ["y", "x"], cluster=["class", "school"],
                 upper_levels=[["w"]])
    assert d.upper.column == "school" and d.upper.n_clusters == 2
    np.testing.assert_array_equal(d.upper.ids[d.upper.parent], ["s1", "s1", "s2", "s2"])


def test_three_levels_not_nested():
    msg = errmsg(_three_level(["a", "a", "b", "b", "a", "a", "b", "b"]), ["y"], cluster=["class", "school"])
    assert "not nested in 'school'" in msg and "class 'a' appears in 2 different school clusters" in msg
    assert "make them unique" in msg and "data['school'].astype(str) + '/' + data['class'].astype(str)" in msg


def test_three_levels_upper_variable_varies():
    data = _three_level(["a", "a", "b", "b", "c", "c", "d", "d"]).assign(w=[1.0] * 2 + [3.0] * 2 + [2.0] * 4)
    msg = errmsg(data, ["y"], cluster=["class", "school"], upper_levels=[["w"]])
    assert "'w' varies within 1 cluster(s)" in msg and "cluster 's1'" in msg


def test_three_levels_one_class_per_school():
    msg = errmsg(_three_level(["a"] * 4 + ["b"] * 4), ["y"], cluster=["class", "school"])
    assert "single class cluster" in msg


def test_variables_on_very_different_scales_get_a_warning():
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"y": rng.normal(size=100), "income": rng.normal(50_000, 20_000, size=100)})
    with pytest.warns(bm.DataWarning, match=r"differ by a factor of .*data\['income'\] / 10000.*rescale=True"):
        bm.Model("y ~ income", data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bm.DataWarning)
        bm.Model("y ~ income", data.assign(income=data["income"] / 10_000))  # comparable now: no warning
