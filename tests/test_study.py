"""Simulation from a model (Model.simulate) against the moments it implies, and Monte Carlo
studies (bm.study): the same results in this process, in local processes and on a Dask cluster,
resumption after an interruption, the summaries, and simulation-based calibration of the
marginal, hybrid and conditional strategies (slow)."""

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.cli import main
from bayes_msem.examples import TWOLEVEL_CFA, TWOLEVEL_TRUTH, simulate_twolevel
from bayes_msem.studies import sbc
from bayes_msem.studies.study import StudyResult, replication_seeds

TINY = "level: within\n  y ~ bw*x\nlevel: between\n  y ~ bb*w\n  contextual := bb - bw\n"
TINY_TRUTH = {"within:y~x": 0.5, "within:y~~y": 1.0, "between:y~w": 0.3, "between:y~~y": 0.25, "between:y~1": 0.0}
DESIGN = {"n_clusters": 30, "cluster_size": 5}
FAST = {"draws": 100, "tune": 100, "chains": 2, "progressbar": False}


def _frame(n_clusters: int = 30, size: int = 6, seed: int = 0) -> pd.DataFrame:
    """Template data: y, a row covariate x and a cluster covariate w; also b (0/1), o (0..3),
    c (counts) and a cluster-level q."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_clusters), size)
    n = len(g)
    return pd.DataFrame({"g": g, "x": rng.normal(size=n), "w": rng.normal(size=n_clusters)[g], "y": rng.normal(size=n),
                         "b": rng.integers(0, 2, n), "o": rng.integers(0, 4, n), "c": rng.poisson(2, n),
                         "q": rng.normal(size=n_clusters)[g]})


@pytest.fixture(scope="module")
def tiny() -> bm.Model:
    """The random-intercept regression every fast study test fits (compiled once per process)."""
    return bm.Model(TINY, _frame(), cluster="g")


@pytest.fixture(scope="module")
def cfa() -> bm.Model:
    return bm.Model(TWOLEVEL_CFA, simulate_twolevel(50, seed=1), cluster="school")


# ---------------------------------------------------------------- Model.simulate

def _implied(level: str, factor: str, regression: str) -> np.ndarray:
    """Σ = λ λᵀ (γ² + ψ) + diag(θ) of y1..y4 at ``level`` of the two-level CFA, covariate N(0, 1)."""
    t = TWOLEVEL_TRUTH
    loadings = np.array([1.0] + [t[f"{level}:{factor}=~y{k}"] for k in (2, 3, 4)])
    variance = t[f"{level}:{factor}~{regression}"] ** 2 + t[f"{level}:{factor}~~{factor}"]
    return np.outer(loadings, loadings) * variance + np.diag([t[f"{level}:y{k}~~y{k}"] for k in range(1, 5)])


def test_simulated_clusters_have_the_model_implied_moments(cfa):
    """2000 new clusters of 10: the pooled within covariance estimates Σ_W, the covariance of the
    cluster means minus Σ_W/10 estimates Σ_B (so the ICCs match), the means are ν; the covariates
    are N(0, 1), x per row and w per cluster."""
    frame = cfa.simulate(TWOLEVEL_TRUTH, n_clusters=2000, cluster_size=10, seed=5)
    items = ["y1", "y2", "y3", "y4"]
    assert frame.groupby("school").size().eq(10).all() and frame["school"].nunique() == 2000
    means = frame.groupby("school")[items].transform("mean")
    within = (frame[items] - means).to_numpy()
    pooled = within.T @ within / (len(frame) - 2000)
    between = frame.groupby("school")[items].mean().cov().to_numpy() - pooled / 10
    np.testing.assert_allclose(pooled, _implied("within", "fw", "x"), atol=0.06)
    np.testing.assert_allclose(between, _implied("between", "fb", "w"), atol=0.08)
    np.testing.assert_allclose(frame[items].mean(), [TWOLEVEL_TRUTH[f"between:{y}~1"] for y in items], atol=0.06)
    assert frame.groupby("school")["w"].nunique().eq(1).all()
    assert abs(frame["x"].std() - 1) < 0.03 and abs(frame.groupby("school")["w"].first().std() - 1) < 0.05


@pytest.mark.filterwarnings("ignore::bayes_msem.SamplingWarning")
def test_simulate_keeps_the_model_data_design_and_takes_a_fit_table(cfa, tiny):
    """Without n_clusters the data's clusters, covariates and missing cells stay; fit.parameters()
    is a valid source of values; a covariates frame sets clusters and covariates."""
    again = cfa.simulate(TWOLEVEL_TRUTH, seed=1)
    original = cfa.data.to_dataset()
    np.testing.assert_array_equal(again["x"], original["x"].values)
    np.testing.assert_array_equal(again["school"], original["cluster"].values)
    assert not np.allclose(again["y1"], original["y1"].values)
    assert cfa.simulate(TWOLEVEL_TRUTH, seed=1).equals(again)
    fit = tiny.fit(**FAST, random_seed=1)
    from_table = tiny.simulate(fit.parameters(), n_clusters=4, cluster_size=3, seed=2)
    by_name = tiny.simulate(fit.parameters().query("free and op != ':='").assign(
        name=lambda t: t["level"] + ":" + t["lhs"] + t["op"] + t["rhs"]).set_index("name")["mean"],
        n_clusters=4, cluster_size=3, seed=2)
    pd.testing.assert_frame_equal(from_table, by_name)
    covariates = pd.DataFrame({"g": [7, 7, 8, 8, 8], "x": [0.1, 0.2, 0.3, 0.4, 0.5], "w": [1.0, 1.0, 2.0, 2.0, 2.0]})
    drawn = tiny.simulate(TINY_TRUTH, covariates=covariates, seed=3)
    assert list(drawn["g"]) == [7, 7, 8, 8, 8] and list(drawn["x"]) == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_missing_cells_are_completely_at_random_at_the_given_rates(cfa):
    frame = cfa.simulate(TWOLEVEL_TRUTH, n_clusters=1000, cluster_size=20, seed=2, missing=0.25)
    rates = frame[["y1", "y2", "y3", "y4"]].isna().mean()
    assert (abs(rates - 0.25) < 0.015).all() and not frame[["x", "w"]].isna().any().any()
    frame = cfa.simulate(TWOLEVEL_TRUTH, n_clusters=1000, cluster_size=20, seed=2, missing={"y2": 0.5})
    assert abs(frame["y2"].isna().mean() - 0.5) < 0.015 and frame.drop(columns="y2").notna().all().all()
    assert frame.loc[frame["y2"].isna(), "x"].std() == pytest.approx(frame["x"].std(), rel=0.05)


def test_families_give_valid_values():
    """Binary 0/1, ordinal 0..3 with the thresholds' shares, negative binomial counts."""
    model = bm.Model("level: within\n  b ~ x\n  o ~ x\n  c ~ x\nlevel: between\n  b ~~ b\n  o ~~ o\n  c ~~ c\n",
                     _frame(), cluster="g", family={"b": "bernoulli", "c": "negbinomial"}, ordered=["o"])
    values = {"within:b~x": 0.0, "within:o~x": 0.0, "within:c~x": 0.3, "within:c~~c": 0.5, "within:o|t1": -0.5,
              "within:o|t2": 0.3, "within:o|t3": 1.2, "between:b~~b": 0.01, "between:o~~o": 0.01,
              "between:c~~c": 0.2, "between:b~1": 0.0, "between:c~1": 0.5}
    frame = model.simulate(values, n_clusters=400, cluster_size=10, seed=3)
    assert set(frame["b"]) == {0, 1} and abs(frame["b"].mean() - 0.5) < 0.04
    assert set(frame["o"]) == {0, 1, 2, 3}
    from scipy.stats import norm

    shares = np.diff(norm.cdf(np.concatenate([[-np.inf], [-0.5, 0.3, 1.2], [np.inf]]) / np.sqrt(1.01)))
    np.testing.assert_allclose(frame["o"].value_counts(normalize=True).sort_index(), shares, atol=0.03)
    assert (frame["c"] >= 0).all() and (frame["c"] == frame["c"].round()).all() and frame["c"].var() > frame["c"].mean()


def test_random_slopes_vary_over_clusters():
    """Per-cluster least-squares slopes of 400 clusters of 40 rows: mean 0.4, variance 0.3 plus
    the sampling variance σ²/Σ(x − x̄)²."""
    model = bm.Model("level: within\n  s | y ~ x\nlevel: between\n  y ~~ s\n", _frame(), cluster="g")
    values = {"within:y~~y": 1.0, "between:y~~s": 0.1, "between:y~~y": 0.5, "between:y~1": 0.0,
              "between:s~~s": 0.3, "between:s~1": 0.4}
    frame = model.simulate(values, n_clusters=400, cluster_size=40, seed=4)
    centred = frame.assign(x=frame["x"] - frame.groupby("g")["x"].transform("mean"))
    slopes = centred.groupby("g").apply(lambda c: (c["x"] * c["y"]).sum() / (c["x"] ** 2).sum(), include_groups=False)
    sampling = (1 / centred.groupby("g")["x"].apply(lambda x: (x ** 2).sum())).mean()
    assert abs(slopes.mean() - 0.4) < 0.08 and abs(slopes.var() - sampling - 0.3) < 0.08


def test_three_levels_nest():
    """Rows in classes in schools at the given sizes, each covariate constant in the units of its
    level; the data are valid model data."""
    frame = _frame().assign(cls=lambda d: d["g"], sch=lambda d: d["g"] // 3, z=lambda d: d["w"],
                            v=lambda d: np.repeat(np.random.default_rng(1).normal(size=10), 18))
    syntax = "level: within\n  y ~ x\nlevel: cls\n  y ~ z\nlevel: sch\n  y ~ v\n"
    model = bm.Model(syntax, frame, cluster=["cls", "sch"])
    values = dict.fromkeys(model.plan.parameters["name"], 0.4)
    drawn = model.simulate(values, n_clusters=30, cluster_size=[4, (2, 3)], seed=1)
    assert drawn.groupby("cls")["sch"].nunique().eq(1).all() and drawn.groupby("cls").size().eq(4).all()
    assert drawn.groupby("sch")["cls"].nunique().between(2, 3).all() and drawn["sch"].nunique() == 30
    assert drawn.groupby("cls")["z"].nunique().eq(1).all() and drawn.groupby("sch")["v"].nunique().eq(1).all()
    assert drawn["x"].nunique() == len(drawn)
    bm.Model(syntax, drawn, cluster=["cls", "sch"])


def test_single_level_models_draw_rows():
    model = bm.Model("y ~ x", _frame())
    drawn = model.simulate({"y~x": 1.0, "y~~y": 0.5, "y~1": 2.0}, n_clusters=5000, seed=1)
    assert len(drawn) == 5000 and list(drawn.columns) == ["y", "x"]
    assert drawn["y"].mean() == pytest.approx(2.0, abs=0.05) and drawn["y"].var() == pytest.approx(1.5, abs=0.08)


@pytest.mark.parametrize("values, design, message", [
    ({**TINY_TRUTH, "within:y~z": 1.0}, {}, "unknown parameter name(s) 'within:y~z' (did you mean 'within:y~x'?)"),
    ({k: v for k, v in TINY_TRUTH.items() if k != "between:y~w"}, {}, "no value for the free parameter(s) 'between:y~w'"),
    ({**TINY_TRUTH, "within:y~~y": 0.0}, {}, "'within:y~~y' must be positive"),
    ({**TINY_TRUTH, "within:y~1": 1.0}, {}, "'within:y~1' is fixed to 0"),
    (TINY_TRUTH, {"n_clusters": 1, "cluster_size": 5}, "n_clusters must be an integer >= 2"),
    (TINY_TRUTH, {"n_clusters": 10}, "n_clusters needs cluster_size"),
    (TINY_TRUTH, {"cluster_size": 5}, "cluster_size needs n_clusters"),
    (TINY_TRUTH, {"n_clusters": 10, "cluster_size": (6, 3)}, "range (low, high) with 1 <= low <= high"),
    (TINY_TRUTH, {"n_clusters": 10, "cluster_size": [5, 2]}, "one size per level above the rows (1: 'g')"),
    (TINY_TRUTH, {"missing": {"x": 0.1}}, "no missing cells in 'x'"),
    (TINY_TRUTH, {"missing": 1.0}, "missing rate of 'y' must be in [0, 1)"),
])
def test_simulate_errors_name_the_cause_and_the_fix(tiny, values, design, message):
    with pytest.raises(ValueError) as error:
        tiny.simulate(values, seed=1, **design)
    assert message in str(error.value)


def test_random_parameters_are_set_through_their_moments_which_must_be_positive_definite():
    model = bm.Model("level: within\n  s | y ~ x\nlevel: between\n  y ~~ s\n", _frame(), cluster="g")
    with pytest.raises(ValueError, match="varies over clusters as the random parameter 's'; give its mean"):
        model.simulate({"within:y~x": 0.5}, seed=1)
    values = {"within:y~~y": 1.0, "between:y~~s": 2.0, "between:y~~y": 0.5, "between:y~1": 0.0,
              "between:s~~s": 0.3, "between:s~1": 0.4}
    with pytest.raises(ValueError, match="non-finite values of 'y': check that every covariance matrix"):
        model.simulate(values, n_clusters=10, cluster_size=5, seed=1)


# ---------------------------------------------------------------- studies

def _study(model, folder, replications=3, **settings):
    return bm.study(model, settings.pop("parameters", TINY_TRUTH), replications, DESIGN, out=folder,
                    seed=settings.pop("seed", 11), workers=settings.pop("workers", 0), **FAST, **settings)


def _comparable(result: StudyResult) -> pd.DataFrame:
    return result.replications.drop(columns="seconds")


def test_replication_seeds_are_the_spawned_children():
    children = np.random.SeedSequence(42).spawn(7)
    assert replication_seeds(42, 6) == tuple(int(w) for w in children[6].generate_state(3, np.uint32))


def test_study_here_and_on_a_dask_cluster_agree(tiny, tmp_path):
    from distributed import LocalCluster

    here = _study(tiny, tmp_path / "here")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        dask = _study(tiny, tmp_path / "dask", scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(_comparable(here), _comparable(dask))
    assert sorted(p.name for p in (tmp_path / "dask" / "replications").iterdir()) == \
        [f"replication-00000{r}.parquet" for r in range(3)]
    table = here.summary()
    assert list(table.index) == [*TINY_TRUTH, "contextual"] and table["replications"].eq(3).all()
    rows = here.replications
    np.testing.assert_allclose(rows.loc[rows["parameter"] == "contextual", "truth"], 0.3 - 0.5)
    assert table["coverage"].between(0, 1).all() and (table["r_hat"] < 1.1).all()
    assert table.loc["between:y~1", "relative_bias"] != table.loc["between:y~1", "relative_bias"]  # truth 0: NaN


def test_an_interrupted_study_resumes_without_losing_or_repeating_replications(tiny, tmp_path):
    seen = []

    def stop_after_two(replication, rows):
        seen.append(replication)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _study(tiny, tmp_path, replications=5, callback=stop_after_two)
    files = sorted((tmp_path / "replications").glob("*.parquet"))
    assert [p.name for p in files] == ["replication-000000.parquet", "replication-000001.parquet"]
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    resumed = _study(tiny, tmp_path, replications=5, seed=None, callback=lambda r, rows: seen.append(r))
    assert seen == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in (tmp_path / "replications").iterdir()) == \
        [f"replication-00000{r}.parquet" for r in range(5)]
    assert {p: (tmp_path / "replications" / p).read_bytes() for p in before} == {p: b for p, (b, _) in before.items()}
    assert all((tmp_path / "replications" / p).stat().st_mtime_ns == t for p, (_, t) in before.items())
    assert resumed.replications.groupby("replication").size().eq(len(TINY_TRUTH) + 1).all()
    uninterrupted = _study(tiny, tmp_path / "whole", replications=5)
    pd.testing.assert_frame_equal(_comparable(resumed), _comparable(uninterrupted))


def test_a_folder_holding_another_study_is_refused(tiny, tmp_path):
    _study(tiny, tmp_path, replications=1)
    with pytest.raises(ValueError, match=r"holds a study with other settings \(parameters\)"):
        _study(tiny, tmp_path, replications=1, parameters={**TINY_TRUTH, "within:y~x": 0.6})


def test_failed_replications_are_recorded_and_left_out(tiny, tmp_path, monkeypatch):
    def broken(self, **settings):
        raise RuntimeError("the sampler stopped")

    monkeypatch.setattr(bm.Model, "fit", broken)
    with pytest.warns(UserWarning, match="2 of 2 replications failed"):
        result = _study(tiny, tmp_path, replications=2)
    assert list(result.failures()) == ["RuntimeError: the sampler stopped"] * 2
    assert result.summary().empty


def test_summary_measures():
    """Bias, RMSE, coverage and power of two replications of one parameter, by hand."""
    rows = pd.DataFrame({"replication": [0, 1], "parameter": "a", "level": "", "kind": "regression", "truth": 1.0,
                         "mean": [1.2, 0.6], "median": [1.1, 0.7], "sd": [0.2, 0.4], "lower": [0.9, -0.2],
                         "upper": [1.6, 0.9], "r_hat": [1.0, 1.02], "ess_bulk": [400.0, 300.0], "divergences": [0, 3],
                         "error": None})
    table = StudyResult(rows, {"parameters": {"a": 1.0}}, None).summary().loc["a"]
    assert table["bias"] == pytest.approx(-0.1) and table["relative_bias"] == pytest.approx(-0.1)
    assert table["rmse"] == pytest.approx(np.sqrt((0.04 + 0.16) / 2))
    assert table["coverage"] == 0.5 and table["power"] == 0.5 and table["divergent_fits"] == 0.5
    assert table["r_hat"] == pytest.approx(1.01) and table["mean_sd"] == pytest.approx(0.3)
    assert StudyResult(rows, {"parameters": {"a": 1.0}}, None).summary("median").loc["a", "bias"] == pytest.approx(-0.1)


def test_rank_uniformity_statistics(tmp_path):
    """Bins of uneven width get their exact shares; uniform ranks pass, ranks piled up at 0 fail."""
    shares = sbc.bin_probabilities(40, 10)  # 41 ranks in 10 bins: one bin holds 5
    assert shares.sum() == pytest.approx(1) and sorted(set(np.round(shares * 41))) == [4, 5]
    uniform = np.tile(np.arange(41), 5)
    assert sbc.uniformity(uniform, 40, 10)[2] == pytest.approx(1.0)
    assert sbc.uniformity(np.zeros(100, int), 40, 10)[2] < 1e-10
    figure = sbc.plot_rank_histograms({"a": uniform, "b": uniform[::2]}, 40, 10, tmp_path / "ranks.png")
    assert len([ax for ax in figure.axes if ax.get_visible()]) == 2
    assert (tmp_path / "ranks.png").read_bytes()[:4] == b"\x89PNG"


def test_prior_study_ranks_the_truth(tiny, tmp_path):
    result = _study(tiny, tmp_path, replications=3, parameters="prior", rank_draws=19)
    rows = result.replications
    assert rows["truth"].nunique() == 3 * (len(TINY_TRUTH) + 1) and rows["rank"].between(0, 20).all()
    table = result.sbc(["within:y~x", "between:y~~y"], bins=4)
    assert list(table.index) == ["within:y~x", "between:y~~y"] and table["df"].eq(3).all()
    result.plot_ranks(tmp_path / "ranks.png", bins=4)
    fixed = _study(tiny, tmp_path / "fixed", replications=1)
    with pytest.raises(ValueError, match="needs θ drawn from the prior"):
        fixed.sbc()


def test_cli_study(tiny, tmp_path, capsys):
    (tmp_path / "model.txt").write_text(TINY)
    _frame().to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "truth.json").write_text(json.dumps(TINY_TRUTH))
    common = [str(tmp_path / "model.txt"), str(tmp_path / "data.csv"), "--cluster", "g", "--replications", "2",
              "--clusters", "30", "--cluster-size", "4:6", "--draws", "100", "--tune", "100", "--workers", "0",
              "--seed", "3"]
    assert main(["study", *common, "--parameters", str(tmp_path / "truth.json"), "--out", str(tmp_path / "a")]) == 0
    summary = pd.read_csv(tmp_path / "a" / "summary.csv", index_col=0)
    assert list(summary.index) == [*TINY_TRUTH, "contextual"]
    assert main(["study", *common, "--prior", "--bins", "5", "--sbc", "within:y~x", "--out", str(tmp_path / "b")]) == 0
    assert list(pd.read_csv(tmp_path / "b" / "sbc.csv", index_col=0).index) == ["within:y~x"]
    assert (tmp_path / "b" / "ranks.png").exists()
    assert main(["study", *common, "--prior", "--cluster-size", "4:x", "--out", str(tmp_path / "c")]) == 2
    assert "cannot read the cluster size '4:x'" in capsys.readouterr().err
    (tmp_path / "wrong.json").write_text(json.dumps({**TINY_TRUTH, "within:y~z": 1}))
    assert main(["study", *common, "--parameters", str(tmp_path / "wrong.json"), "--out", str(tmp_path / "d")]) == 2
    assert "unknown parameter name(s) 'within:y~z'" in capsys.readouterr().err


# ---------------------------------------------------------------- slow: local processes, calibration

@pytest.mark.slow
def test_local_processes_and_a_dask_cluster_of_processes_give_the_same_results(tiny, tmp_path):
    from distributed import LocalCluster

    here = _study(tiny, tmp_path / "here", replications=3)
    processes = _study(tiny, tmp_path / "processes", replications=3, workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = _study(tiny, tmp_path / "dask", replications=3, scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(_comparable(here), _comparable(processes))
    pd.testing.assert_frame_equal(_comparable(here), _comparable(dask))


@pytest.mark.slow
def test_a_killed_study_resumes(tmp_path):
    """``bayes-msem study`` killed (SIGKILL) after two replications are stored, then run again:
    every replication stored once, the first ones untouched."""
    (tmp_path / "model.txt").write_text(TINY)
    _frame().to_csv(tmp_path / "data.csv", index=False)
    command = [sys.executable, "-m", "bayes_msem.cli", "study", str(tmp_path / "model.txt"), str(tmp_path / "data.csv"),
               "--cluster", "g", "--prior", "--replications", "40", "--clusters", "30", "--cluster-size", "5",
               "--draws", "100", "--tune", "100", "--workers", "0", "--seed", "5", "--out", str(tmp_path / "out")]
    folder = tmp_path / "out" / "replications"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(list(folder.glob("*.parquet"))) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.kill()
    process.wait()
    before = {p.name: p.read_bytes() for p in folder.glob("*.parquet")}
    assert 2 <= len(before) < 40
    assert subprocess.run(command, capture_output=True).returncode == 0
    names = sorted(p.name for p in folder.glob("*.parquet"))
    assert names == [f"replication-{r:06d}.parquet" for r in range(40)]
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert StudyResult.read(tmp_path / "out").replications.groupby("replication").size().eq(len(TINY_TRUTH) + 1).all()


TIGHT = {"regression": "normal(0, 1)", "intercept": "normal(0, 1)", "variance": "gamma(4, 4)[sd]"}
CALIBRATED = {
    "marginal": ("level: within\n  y ~ x\nlevel: between\n  y ~ w\n", {}),
    "hybrid": ("level: within\n  v | y ~~ y\n  y ~ x\nlevel: between\n  y ~ w\n", {}),
    "conditional": ("level: within\n  b ~ x\nlevel: between\n  b ~ w\n", {"family": {"b": "bernoulli"}}),
}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(CALIBRATED))
def test_simulation_based_calibration(strategy, tmp_path):
    """100 replications with θ from the (tight) prior: the binned ranks of every parameter pass
    the chi-square test of uniformity at 0.01 / (number of parameters)."""
    syntax, options = CALIBRATED[strategy]
    model = bm.Model(syntax, _frame(), cluster="g", priors=TIGHT, **options)
    assert model.strategy.kind == strategy
    result = bm.study(model, "prior", 100, {"n_clusters": 30, "cluster_size": 6}, out=tmp_path, seed=2024,
                      draws=250, tune=250, chains=2, rank_draws=49, workers=0, progressbar=False)
    assert result.failures().empty
    table = result.sbc(bins=10)
    assert (table["p_value"] > 0.01 / len(table)).all(), table
