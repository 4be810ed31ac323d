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


def _points(ax, series: str) -> dict[str, float]:
    """The x of each row's point of ``series`` in a forest plot, keyed by the row's header and label."""
    (line,) = [line for line in ax.get_lines() if line.get_label() == series]
    ticks, header, rows = ax.get_yticklabels(), "", {}
    for tick in ticks:
        if tick.get_fontweight() == "bold":
            header = tick.get_text()
            continue
        (x,) = line.get_xdata()[abs(line.get_ydata() - tick.get_position()[1]) < 0.5]
        rows[f"{header}: {tick.get_text().strip()}"] = x
    return rows


def test_sensitivity_dot_plot_and_densities(fits, sensitivities, tmp_path):
    """One row per free parameter under its level and section, its prior and likelihood
    sensitivities as ArviZ's psense gives them, and the threshold; densities on request."""
    figure = fits[15].plot_prior_sensitivity(tmp_path / "psense.png")
    assert (tmp_path / "psense.png").read_bytes()[:4] == b"\x89PNG"
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels() if t.get_fontweight() == "bold"] == [
        "within: Latent Variables", "within: Variances", "between: Latent Variables", "between: Intercepts",
        "between: Variances"]
    table = sensitivities[15]
    sections = {"=~": "Latent Variables", "~1": "Intercepts", "~~": "Variances"}
    for kind in ("prior", "likelihood"):
        expected = {f"{r.level}: {sections[r.op]}: {r.lhs} {r.op} {r.rhs}".strip(): getattr(r, kind)
                    for r in table.itertuples()}
        assert _points(ax, kind) == pytest.approx(expected)
    (threshold,) = [line for line in ax.get_lines() if line.get_label() == "threshold 0.05"]
    assert list(threshold.get_xdata()) == [0.05, 0.05]
    densities = fits[15].plot_prior_sensitivity(parameters=["between:fb~~fb"], densities=True)
    assert len(densities.viz["figure"].item().axes) == 2  # the prior's and the likelihood's power scaling
    for densities in (False, True):
        with pytest.raises(bm.SettingsError, match="not free parameters of this model: 'fb~~fb'; .*between:fb~~fb"):
            fits[15].plot_prior_sensitivity(parameters=["fb~~fb"], densities=densities)


def test_prior_sets_plot_one_interval_per_set(fits):
    """Chains are combined: one point per prior set and parameter, at its posterior mean."""
    model = fits[15].source
    comparison = bm.sensitivity(model, {"default": {}, "tight": {"variance": "gamma(2, 4)[sd]"}},
                                draws=200, tune=200, chains=2, random_seed=1)
    ax = comparison.plot(parameters=["between:fb~~fb", "within:f=~y2"]).axes[0]
    means = comparison.table()
    for name in ("default", "tight"):
        assert _points(ax, name) == pytest.approx({
            "between: Variances: fb ~~ fb": means.loc[("fb", "~~", "fb", "between"), (name, "mean")],
            "within: Latent Variables: f =~ y2": means.loc[("f", "=~", "y2", "within"), (name, "mean")]})
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["default", "tight"]
