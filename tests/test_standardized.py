"""The standardized solution, R² and ICC of a random-slope model: cluster by cluster, averaged over
clusters, against the closed form of y_ij = u_j + s_j x_ij + e_ij."""

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.results.standardized import icc_table, r_squared_table, standardized_table


def test_random_slope_model_is_standardized_per_cluster_and_averaged():
    """With var(e) = σ², the pooled within variance v_x of x and cluster slopes s_j: std.all of
    y ~ x is the mean over clusters of s_j √v_x / √(s_j² v_x + σ²), R² the mean of
    s_j² v_x / (s_j² v_x + σ²), and the ICC τ² / (mean_j(s_j² v_x + σ²) + τ²)."""
    rng = np.random.default_rng(2)
    cluster = np.repeat(np.arange(5), 4)
    frame = pd.DataFrame({"x": rng.normal(size=20), "y": rng.normal(size=20), "cluster": cluster})
    model = bm.Model("level: within\n s | y ~ x\nlevel: between\n y ~~ s", frame, cluster="cluster")
    values = {"within:y~~y": 0.5, "between:y~1": 1.0, "between:s~1": 0.4, "between:y~~y": 0.8,
              "between:s~~s": 0.3, "between:y~~s": 0.1}
    theta = model.plan.parameters["name"].map(values).to_numpy()[None]
    slopes = np.array([0.1, 0.5, -0.3, 1.2, 0.7])
    random = np.zeros((1, 5, 1))
    random[0, :, [r.name for r in model.plan.random].index("s")] = slopes
    x = frame["x"] - frame.groupby("cluster")["x"].transform("mean")
    v_x = (x**2).sum() / (20 - 5)
    total = slopes**2 * v_x + 0.5
    table = standardized_table(theta, model.plan, model.data, random=random).set_index(["lhs", "op", "rhs", "level"])
    assert table.loc[("y", "~", "x", "within"), "std.all"] == pytest.approx(np.mean(slopes * np.sqrt(v_x / total)))
    assert table.loc[("y", "~~", "y", "within"), "std.all"] == pytest.approx(np.mean(0.5 / total))
    r2 = r_squared_table(theta, model.plan, model.data, random=random)
    assert r2.query("level == 'within'")["mean"].item() == pytest.approx(np.mean(slopes**2 * v_x / total))
    icc = icc_table(theta, model.plan, model.data, random=random)
    assert icc["mean"].item() == pytest.approx(0.8 / (total.mean() + 0.8))
