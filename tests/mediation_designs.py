"""Data of the multilevel mediation designs (Preacher, Zyphur & Zhang 2010) with known truth.

Each simulator returns a data set (a 1-based ``cluster`` column, then x, m, y) and the true
values of the main parameters of its template ``mediation_<design>``: keys are names of
``theta``'s ``parameter`` dimension (``within:m~x``) or defined parameters (``ind_between``).
A design's number says the level of x, m and y: 2-1-1 has x at the cluster level, m and y
at the unit level (each split into a within and a between part).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

Design = tuple[pd.DataFrame, dict[str, float]]


def _clusters(rng: np.random.Generator, n_clusters: int, sizes: tuple[int, int]) -> np.ndarray:
    """The cluster index (0..n_clusters-1) of every row; sizes uniform in ``sizes`` (inclusive)."""
    return np.repeat(np.arange(n_clusters), rng.integers(sizes[0], sizes[1] + 1, size=n_clusters))


def _frame(cluster: np.ndarray, **columns: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"cluster": cluster + 1, **columns})


def simulate_111(seed: int = 21, n_clusters: int = 100, sizes: tuple[int, int] = (5, 15)) -> Design:
    """1-1-1: x, m, y on units, each the sum of a between and a within part.

    Within: m = 0.4 x + N(0, 0.8), y = 0.5 m + 0.1 x + N(0, 0.8), x ~ N(0, 1).
    Between: x ~ N(0.5, 0.4), m = 1 + 0.6 x + N(0, 0.2), y = 2 + 0.5 m + 0.2 x + N(0, 0.2).
    Indirect effects 0.4 · 0.5 = 0.2 (within) and 0.6 · 0.5 = 0.3 (between).
    """
    rng = np.random.default_rng(seed)
    cluster = _clusters(rng, n_clusters, sizes)
    xb = 0.5 + np.sqrt(0.4) * rng.standard_normal(n_clusters)
    mb = 1.0 + 0.6 * xb + np.sqrt(0.2) * rng.standard_normal(n_clusters)
    yb = 2.0 + 0.5 * mb + 0.2 * xb + np.sqrt(0.2) * rng.standard_normal(n_clusters)
    noise = rng.standard_normal((len(cluster), 3))
    xw = noise[:, 0]
    mw = 0.4 * xw + np.sqrt(0.8) * noise[:, 1]
    yw = 0.5 * mw + 0.1 * xw + np.sqrt(0.8) * noise[:, 2]
    truth = {"within:m~x": 0.4, "within:y~m": 0.5, "within:y~x": 0.1, "between:m~x": 0.6, "between:y~m": 0.5,
             "between:y~x": 0.2, "between:x~1": 0.5, "between:m~1": 1.0, "between:y~1": 2.0,
             "ind_within": 0.2, "ind_between": 0.3}
    return _frame(cluster, x=xb[cluster] + xw, m=mb[cluster] + mw, y=yb[cluster] + yw), truth


def simulate_211(seed: int = 22, n_clusters: int = 100, sizes: tuple[int, int] = (5, 15)) -> Design:
    """2-1-1: x on clusters; m and y on units.

    Between: x ~ N(0, 1), m = 1 + 0.5 x + N(0, 0.3), y = 2 + 0.6 m + 0.2 x + N(0, 0.3).
    Within: m ~ N(0, 1), y = 0.3 m + N(0, 0.8). Indirect effect 0.5 · 0.6 = 0.3, between only.
    """
    rng = np.random.default_rng(seed)
    cluster = _clusters(rng, n_clusters, sizes)
    x = rng.standard_normal(n_clusters)
    mb = 1.0 + 0.5 * x + np.sqrt(0.3) * rng.standard_normal(n_clusters)
    yb = 2.0 + 0.6 * mb + 0.2 * x + np.sqrt(0.3) * rng.standard_normal(n_clusters)
    mw = rng.standard_normal(len(cluster))
    yw = 0.3 * mw + np.sqrt(0.8) * rng.standard_normal(len(cluster))
    truth = {"within:y~m": 0.3, "between:m~x": 0.5, "between:y~m": 0.6, "between:y~x": 0.2,
             "between:m~1": 1.0, "between:y~1": 2.0, "ind_between": 0.3}
    return _frame(cluster, x=x[cluster], m=mb[cluster] + mw, y=yb[cluster] + yw), truth


def simulate_221(seed: int = 23, n_clusters: int = 100, sizes: tuple[int, int] = (5, 15)) -> Design:
    """2-2-1: x and m on clusters; y on units.

    Between: x ~ N(0, 1), m = 1 + 0.5 x + N(0, 0.5), y = 2 + 0.6 m + 0.2 x + N(0, 0.3).
    Within: y ~ N(0, 1). Indirect effect 0.5 · 0.6 = 0.3.
    """
    rng = np.random.default_rng(seed)
    cluster = _clusters(rng, n_clusters, sizes)
    x = rng.standard_normal(n_clusters)
    m = 1.0 + 0.5 * x + np.sqrt(0.5) * rng.standard_normal(n_clusters)
    yb = 2.0 + 0.6 * m + 0.2 * x + np.sqrt(0.3) * rng.standard_normal(n_clusters)
    y = yb[cluster] + rng.standard_normal(len(cluster))
    truth = {"between:m~x": 0.5, "between:y~m": 0.6, "between:y~x": 0.2, "between:m~1": 1.0,
             "between:y~1": 2.0, "ind_between": 0.3}
    return _frame(cluster, x=x[cluster], m=m[cluster], y=y), truth


RANDOM_SLOPES = {"mean_a": 0.3, "mean_b": 0.3, "var_a": 0.2, "var_b": 0.2, "cov_ab": 0.1}


def simulate_111_random(seed: int = 25, n_clusters: int = 100, sizes: tuple[int, int] = (20, 40)) -> Design:
    """1-1-1 with random a and b: x a unit covariate (centred within clusters), m and y with
    random intercepts.

    m = m_j + a_j x + e_m,  y = y_j + b_j (m − m_j) + 0.1 x + e_y,  e ~ N(0, 0.8);
    (a_j, b_j) ~ N((0.3, 0.3), [[0.2, 0.1], [0.1, 0.2]]), (m_j, y_j) ~ N((1, 2), [[0.3, 0.1], [0.1, 0.3]]).
    The within indirect effect is E[a_j b_j] = 0.3 · 0.3 + 0.1 = 0.19, not 0.09.
    """
    t = RANDOM_SLOPES
    rng = np.random.default_rng(seed)
    cluster = _clusters(rng, n_clusters, sizes)
    slopes = rng.multivariate_normal([t["mean_a"], t["mean_b"]], [[t["var_a"], t["cov_ab"]], [t["cov_ab"], t["var_b"]]],
                                     size=n_clusters)
    intercepts = rng.multivariate_normal([1.0, 2.0], [[0.3, 0.1], [0.1, 0.3]], size=n_clusters)
    noise = rng.standard_normal((len(cluster), 3))
    x = noise[:, 0] - pd.Series(noise[:, 0]).groupby(cluster).transform("mean").to_numpy()
    mw = slopes[cluster, 0] * x + np.sqrt(0.8) * noise[:, 1]
    yw = slopes[cluster, 1] * mw + 0.1 * x + np.sqrt(0.8) * noise[:, 2]
    truth = {"between:a~1": t["mean_a"], "between:b~1": t["mean_b"], "between:a~~b": t["cov_ab"],
             "within:y~x": 0.1, "between:m~1": 1.0, "between:y~1": 2.0,
             "ind_within": t["mean_a"] * t["mean_b"] + t["cov_ab"]}
    return _frame(cluster, x=x, m=intercepts[cluster, 0] + mw, y=intercepts[cluster, 1] + yw), truth
