"""Convergence checks: verdicts and remedies on fabricated draws with known problems, checked
against ArviZ's own numbers, and the warnings of real fits (one compiled model)."""

import warnings

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayes_msem as bm
from bayes_msem.examples import TWOLEVEL_CFA, simulate_twolevel
from bayes_msem.results.diagnostics import (
    ESS_PER_CHAIN,
    MAX_TREE_DEPTH,
    MODE_GAP,
    R_HAT_MAX,
    STRONGER_PRIOR,
    report,
    warn,
)
from bayes_msem.spec.plan import parameter_name
from bayes_msem.spec.syntax import parse
from bayes_msem.spec.table import build_table

TABLE = build_table(parse(TWOLEVEL_CFA), "school")
NAMES = [parameter_name(*r) for r in TABLE[TABLE["free"] > 0].drop_duplicates("free")[["level", "lhs", "op", "rhs"]]
         .itertuples(index=False)]
CHAINS, DRAWS = 2, 500

RANDOM_INTERCEPTS = """
level: within
    y1 ~ x
level: between
    y1 ~ b*w
double := 2*b
"""


def _draws(seed: int = 0, chains: int = CHAINS) -> np.ndarray:
    """Independent draws (chain, draw, parameter); variances around 1, the other parameters around 0."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(chains, DRAWS, len(NAMES)))
    for k, name in enumerate(NAMES):
        if "~~" in name:
            values[..., k] = rng.gamma(50.0, 1 / 50, size=(chains, DRAWS))
    return values


def _tree(theta: np.ndarray, **stats: np.ndarray) -> xr.DataTree:
    """A DataTree with θ named as the package names it, and the sample statistics given."""
    posterior = xr.Dataset({"theta": (("chain", "draw", "parameter"), theta)}, coords={"parameter": NAMES})
    sample_stats = xr.Dataset({name: (("chain", "draw"), value) for name, value in stats.items()})
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": sample_stats})


def _healthy_stats(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"diverging": np.zeros((CHAINS, DRAWS), bool), "maxdepth_reached": np.zeros((CHAINS, DRAWS), bool),
            "energy": rng.normal(size=(CHAINS, DRAWS))}


def _column(name: str) -> int:
    return NAMES.index(name)


def test_independent_draws_pass_every_check():
    checks = report(_tree(_draws(), **_healthy_stats()), TABLE)
    assert list(checks.index) == ["r_hat", "chain_modes", "ess_bulk", "ess_tail", "divergences", "tree_depth", "e_bfmi"]
    assert (checks["verdict"] == "ok").all() and (checks["remedy"] == "").all()
    assert list(checks["threshold"]) == [R_HAT_MAX, MODE_GAP, ESS_PER_CHAIN * CHAINS, ESS_PER_CHAIN * CHAINS, 0, 0, 0.3]
    assert checks.loc["chain_modes", "value"] < 0.5  # independent chains: means within ~0.1 SD


def test_chains_that_disagree_name_the_parameter_and_ask_for_longer_runs():
    theta = _draws()
    theta[1, :, _column("between:fb=~y2")] += 3.0  # the second chain sits elsewhere
    tree = _tree(theta, **_healthy_stats())
    checks = report(tree, TABLE)
    r_hat = azs.rhat(tree.posterior["theta"])
    assert checks.loc["r_hat", "value"] == pytest.approx(float(r_hat.max()))
    assert checks.loc["r_hat", "verdict"] == "warning"
    assert "R-hat above 1.01 for fb =~ y2 (between)" in checks.loc["r_hat", "remedy"]
    assert "tune=2000, draws=2000" in checks.loc["r_hat", "remedy"]
    assert "prior" not in checks.loc["r_hat", "remedy"]  # the loading is not a variance


def test_chains_in_different_modes_name_the_chains_and_the_sign_remedy():
    """Chain 1 of four has the within loadings' sign flipped (a mode of a factor identified by
    its variance): the chains' means lie about 2 |λ| / SD apart for those loadings."""
    theta = _draws(chains=4)
    for name in ("within:fw=~y2", "within:fw=~y3"):
        theta[..., _column(name)] = 0.8 + 0.05 * theta[..., _column(name)]
        theta[1, :, _column(name)] *= -1
    checks = report(_tree(theta, **{k: np.resize(v, (4, DRAWS)) for k, v in _healthy_stats().items()}), TABLE)
    assert checks.loc["chain_modes", "verdict"] == "warning" and checks.loc["chain_modes", "value"] > 10
    remedy = checks.loc["chain_modes", "remedy"]
    assert "chains 1 and " in remedy and "fw =~ y2 (within)" in remedy and "fw =~ y3 (within)" in remedy
    assert "fix each factor's sign" in remedy and 'prior("half_normal(1)")' in remedy


def test_a_variance_near_zero_among_the_worst_gets_a_stronger_prior():
    theta = _draws()
    fb = _column("between:fb~~fb")
    rng = np.random.default_rng(1)
    theta[0, :, fb] = rng.exponential(0.05, DRAWS)  # one chain at zero, one away from it
    theta[1, :, fb] = rng.exponential(0.5, DRAWS)
    remedy = report(_tree(theta, **_healthy_stats()), TABLE).loc["r_hat", "remedy"]
    assert "fb ~~ fb (between)" in remedy
    assert f'fb ~~ prior("{STRONGER_PRIOR}")*fb in the between block' in remedy


def test_autocorrelated_draws_have_low_ess_and_the_numbers_of_arviz():
    theta = _draws()
    k = _column("within:fw~x")
    walk = np.cumsum(np.random.default_rng(2).normal(size=(CHAINS, DRAWS)), axis=1)
    theta[..., k] = walk - walk.mean(axis=1, keepdims=True)  # each chain centred: R-hat stays moderate
    tree = _tree(theta, **_healthy_stats())
    checks = report(tree, TABLE)
    for method in ("bulk", "tail"):
        ess = azs.ess(tree.posterior["theta"], method=method)
        assert checks.loc[f"ess_{method}", "value"] == pytest.approx(float(ess.min()))
        assert checks.loc[f"ess_{method}", "verdict"] == "warning"
        assert f"{method} ESS below {ESS_PER_CHAIN * CHAINS} for fw ~ x (within)" in checks.loc[f"ess_{method}", "remedy"]
    assert "draw more (draws=" in checks.loc["ess_bulk", "remedy"]


def test_divergences_where_a_between_variance_is_small_name_it():
    theta = _draws()
    y3 = theta[..., _column("between:y3~~y3")]
    stats = _healthy_stats()
    stats["diverging"] = y3 < np.quantile(y3, 0.05)  # the funnel's neck
    checks = report(_tree(theta, **stats), TABLE)
    assert checks.loc["divergences", "value"] == stats["diverging"].sum()
    remedy = checks.loc["divergences", "remedy"]
    assert "target_accept=0.95" in remedy and "where y3 ~~ y3 (between) is small" in remedy
    assert f'y3 ~~ prior("{STRONGER_PRIOR}")*y3 in the between block' in remedy


def test_divergences_unrelated_to_the_variances_name_none():
    stats = _healthy_stats()
    stats["diverging"] = np.random.default_rng(3).random((CHAINS, DRAWS)) < 0.05
    remedy = report(_tree(_draws(), **stats), TABLE).loc["divergences", "remedy"]
    assert "target_accept=0.95" in remedy and "small" not in remedy


@pytest.mark.parametrize("name, saturated", [("maxdepth_reached", True),            # nutpie
                                             ("reached_max_treedepth", True),       # PyMC
                                             ("tree_depth", MAX_TREE_DEPTH)])       # numpyro, blackjax
def test_tree_depth_saturation_names_the_correlated_pair(name, saturated):
    theta = _draws()
    theta[..., _column("between:fb=~y3")] = theta[..., _column("between:fb=~y4")] * 2 + 0.01 * theta[..., 0]
    stats = _healthy_stats()
    del stats["maxdepth_reached"]
    hits = np.zeros((CHAINS, DRAWS), bool)
    hits[:, :50] = True
    stats[name] = np.where(hits, saturated, 3 if name == "tree_depth" else False)
    checks = report(_tree(theta, **stats), TABLE)
    assert checks.loc["tree_depth", "value"] == pytest.approx(0.1)
    remedy = checks.loc["tree_depth", "remedy"]
    assert "10.0% of the transitions" in remedy and "std_lv=True" in remedy
    assert "fb =~ y3 (between) and fb =~ y4 (between)" in remedy or "fb =~ y4 (between) and fb =~ y3 (between)" in remedy


def test_low_e_bfmi_names_the_chain_and_the_variance_that_follows_the_energy():
    theta = _draws()
    stats = _healthy_stats()
    rng = np.random.default_rng(4)
    stats["energy"][1] = np.cumsum(rng.normal(size=DRAWS))  # chain 1's energy moves slowly: a random walk
    theta[..., _column("within:y2~~y2")] = np.exp(stats["energy"] / stats["energy"].std())
    tree = _tree(theta, **stats)
    checks = report(tree, TABLE)
    e_bfmi = azs.bfmi(tree)["energy"].values
    assert e_bfmi[0] > 0.3 > e_bfmi[1]
    assert checks.loc["e_bfmi", "value"] == pytest.approx(e_bfmi.min())
    remedy = checks.loc["e_bfmi", "remedy"]
    assert "in chain(s) 1:" in remedy and "the energy follows y2 ~~ y2 (within)" in remedy
    assert f'y2 ~~ prior("{STRONGER_PRIOR}")*y2 in the within block' in remedy and "std_lv=True" in remedy
    theta[..., _column("within:y2~~y2")] = _draws()[..., _column("within:y2~~y2")]  # unrelated to the energy
    remedy = report(_tree(theta, **stats), TABLE).loc["e_bfmi", "remedy"]
    assert f"priors={{'variance': '{STRONGER_PRIOR}'}}" in remedy and "follows" not in remedy


def test_defined_parameters_are_checked_and_a_single_chain_cannot_show_convergence():
    tree = _tree(_draws(chains=1), **{k: v[:1] for k, v in _healthy_stats().items()})
    assert "two or more chains" in report(tree, TABLE).loc["r_hat", "remedy"]
    theta = _draws()
    theta[1, :, 0] += 3.0
    tree = _tree(theta, **_healthy_stats())
    defined = (10 * tree.posterior["theta"].isel(parameter=0, drop=True)).expand_dims(definition=["big"], axis=-1)
    tree["posterior"] = xr.DataTree(tree.posterior.to_dataset().assign(defined=defined))
    assert report(tree, TABLE).loc["r_hat", "remedy"].count("big (defined)") == 1


def test_one_warning_per_failed_check_with_its_remedy():
    stats = _healthy_stats()
    stats["diverging"][0, :3] = True
    checks = report(_tree(_draws(), **stats), TABLE)
    with pytest.warns(bm.SamplingWarning) as caught:
        warn(checks)
    assert [str(w.message) for w in caught] == [checks.loc["divergences", "remedy"]]


@pytest.fixture(scope="module")
def model():
    data = simulate_twolevel(n_clusters=40, cluster_size=(8, 12), seed=1)
    return bm.Model(RANDOM_INTERCEPTS, data, cluster="school")


@pytest.fixture(scope="module")
def healthy(model):
    """A fit long enough for R-hat < 1.01 with two chains, and the warnings fit() gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(draws=1000, tune=300, chains=2, random_seed=1)
    return fit, [w for w in caught if issubclass(w.category, bm.SamplingWarning)]


def test_a_healthy_fit_passes_with_arvizs_numbers_and_no_warning(healthy):
    fit, caught = healthy
    checks = fit.diagnostics()
    assert (checks["verdict"] == "ok").all(), checks
    assert caught == []
    idata = fit.idata
    r_hat, ess = (f(idata, var_names=["theta", "defined"]).to_dataset() for f in (azs.rhat, azs.ess))
    assert checks.loc["r_hat", "value"] == pytest.approx(max(float(r_hat[v].max()) for v in r_hat))
    assert checks.loc["ess_bulk", "value"] == pytest.approx(min(float(ess[v].min()) for v in ess))
    assert checks.loc["e_bfmi", "value"] == pytest.approx(float(azs.bfmi(idata)["energy"].min()))
    assert checks.loc["divergences", "value"] == int(idata.sample_stats["diverging"].sum())
    assert checks.loc["tree_depth", "value"] == float(idata.sample_stats["maxdepth_reached"].mean())
    assert "Verdict                      converged" in fit.summary()


def test_a_short_fit_warns_with_the_remedy(model):
    with pytest.warns(bm.SamplingWarning) as caught:
        fit = model.fit(draws=20, tune=5, chains=2, random_seed=1)
    checks = fit.diagnostics()
    failed = checks[checks["verdict"] == "warning"]
    assert "ess_bulk" in failed.index
    assert sorted(str(w.message) for w in caught) == sorted(failed["remedy"])
    assert "(within)" in failed.loc["ess_bulk", "remedy"] or "(between)" in failed.loc["ess_bulk", "remedy"]
    summary = fit.summary()
    assert "Verdict                      check:" in summary and f"    - {failed['remedy'].iloc[0]}" in summary


def _random_loading_funnel() -> pd.DataFrame:
    """The random-loadings template's design with 15 clusters of 150 units and loadings that vary
    little (SD 0.05): each cluster pins its loadings down, so their non-centred parameterisation
    l_j = μ + σ z_j has the funnel's shape in (σ, z_j) (z_j = (l_j − μ)/σ narrows as σ grows
    small), where NUTS with the default step size diverges."""
    import pandas as pd

    rng = np.random.default_rng(5)
    n_clusters, size, spread = 15, 150, 0.05
    cluster = np.repeat(np.arange(n_clusters), size)
    loadings = np.stack([np.ones(n_clusters), 0.8 + spread * rng.normal(size=n_clusters),
                         0.9 + spread * rng.normal(size=n_clusters), np.full(n_clusters, 0.7)], axis=1)
    within = rng.normal(scale=np.sqrt(0.8), size=len(cluster))
    between = rng.normal(scale=np.sqrt(0.3), size=n_clusters)
    means = np.array([2, 0.5, -0.3, 1.0]) + np.outer(between, [1, 0.9, 0.7, 0.8]) + rng.normal(scale=0.4, size=(n_clusters, 4))
    y = means[cluster] + loadings[cluster] * within[:, None] + rng.normal(size=(len(cluster), 4))
    return pd.DataFrame(y, columns=["y1", "y2", "y3", "y4"]).assign(cluster=cluster)


@pytest.mark.slow
def test_divergences_on_a_funnel_are_reported_and_the_remedy_removes_nearly_all():
    """The fit warns of its divergent transitions with the remedy, and following it (the same
    chains and seed at target_accept=0.95: smaller steps that follow the funnel's neck) removes at
    least four in five of them. (Seed 1 gave 15-16 divergences at the default and 0-2 at 0.95,
    the count depending on the processor type and on what the process compiled before.)"""
    model = bm.Model(bm.template("random_loadings"), _random_loading_funnel(), cluster="cluster")
    with pytest.warns(bm.SamplingWarning, match=r"divergent transitions: .*rerun with target_accept=0\.95"):
        fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=1)
    divergences = fit.diagnostics().loc["divergences", "value"]
    assert divergences >= 5
    assert "rerun with target_accept=0.95" in fit.summary()
    remedied = model.fit(draws=1000, tune=1000, chains=4, random_seed=1, target_accept=0.95)
    assert remedied.diagnostics().loc["divergences", "value"] <= divergences / 5


def test_failed_chains_are_those_that_never_moved():
    """A chain fails when all its transitions diverge or its draws never change; the fit raises
    only when every chain failed (the errors page has real fits)."""
    from bayes_msem.results.diagnostics import failed_chains

    theta = _draws(chains=3)
    theta[1] = theta[1, :1]  # chain 1 stuck at its start
    diverging = np.zeros((3, DRAWS), dtype=bool)
    diverging[2] = True  # chain 2: every transition divergent
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"theta": (("chain", "draw", "parameter"), theta)}),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), diverging)})})
    assert failed_chains(tree) == [1, 2]
