"""Tests for bayes_msem.examples: the simulator, the truth's parameter names and recovery of the truth."""

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.examples import TWOLEVEL_CFA, TWOLEVEL_TRUTH, simulate_twolevel


def test_simulate_shape_columns_and_cluster_sizes() -> None:
    df = simulate_twolevel(n_clusters=40, cluster_size=(3, 7), seed=5)
    assert list(df.columns) == ["school", "y1", "y2", "y3", "y4", "x", "w"]
    sizes = df.groupby("school").size()
    assert len(sizes) == 40 and sizes.min() >= 3 and sizes.max() <= 7
    assert sizes.nunique() > 1  # unbalanced
    assert len(df) == sizes.sum()
    assert (df.groupby("school")["w"].nunique() == 1).all()  # w is a cluster-level variable
    assert np.isfinite(df.drop(columns="school").to_numpy()).all()


def test_simulate_is_deterministic_by_seed() -> None:
    pd.testing.assert_frame_equal(simulate_twolevel(seed=3), simulate_twolevel(seed=3))
    assert not simulate_twolevel(seed=3).equals(simulate_twolevel(seed=4))


def test_simulate_rejects_bad_cluster_size() -> None:
    with pytest.raises(ValueError, match="cluster_size"):
        simulate_twolevel(cluster_size=(5, 2))


def test_truth_names_are_the_free_parameters() -> None:
    model = bm.Model(TWOLEVEL_CFA, simulate_twolevel(), cluster="school")
    names = list(model.plan.parameters["name"])
    assert len(names) == len(set(names))
    assert set(TWOLEVEL_TRUTH) == set(names)


@pytest.fixture(scope="module")
def recovery_fit() -> bm.Fit:
    """One nutpie fit of the example model on 150 simulated clusters (compiled once for the module)."""
    data = simulate_twolevel(n_clusters=150)
    return bm.Model(TWOLEVEL_CFA, data, cluster="school").fit(draws=300, tune=300, chains=2, random_seed=1)


@pytest.mark.slow
def test_recovers_the_truth(recovery_fit: bm.Fit) -> None:
    theta = recovery_fit.idata.posterior["theta"]
    mean = theta.mean(("chain", "draw")).to_series()
    sd = theta.std(("chain", "draw")).to_series()
    truth = pd.Series(TWOLEVEL_TRUTH)
    z = ((mean[truth.index] - truth) / sd[truth.index]).abs()
    # The posterior concentrates around the truth at rate 1/sqrt(n), so (mean - truth) / sd is roughly
    # standard normal per parameter. |z| < 4 fails by chance with probability ~6e-5 per parameter, about
    # 1e-3 over the 22 parameters: a failure means bias, not bad luck.
    assert (z < 4).all(), f"parameters far from the truth:\n{z[z >= 4]}"
    assert recovery_fit.diagnostics().loc["r_hat", "value"] < 1.05
