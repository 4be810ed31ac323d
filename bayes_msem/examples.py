"""A worked two-level example on simulated data: pupils (rows) nested in schools (clusters).

A within-school factor ``fw`` and a between-school factor ``fb`` are both measured
by y1-y4; ``fw`` depends on a pupil covariate ``x`` and ``fb`` on a school covariate
``w``. :func:`simulate_twolevel` draws data from this model with the parameter values
in :data:`TWOLEVEL_TRUTH`, so a fit can be checked against the truth::

    python -m bayes_msem.examples
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import SettingsError

TWOLEVEL_CFA = """
level: within
    fw =~ y1 + y2 + y3 + y4
    fw ~ x
level: between
    fb =~ y1 + y2 + y3 + y4
    fb ~ w
"""

_ITEMS = ("y1", "y2", "y3", "y4")

# Within: loadings ~0.7-1 (first fixed to 1), residual variances ~1, fw's residual variance 0.8.
# Between: loadings ~0.7-1, residual variances 0.15-0.25, fb's residual variance 0.3, item means.
# With x, w ~ N(0, 1) the item ICCs are about 0.19-0.28.
TWOLEVEL_TRUTH: dict[str, float] = {
    "within:fw=~y2": 0.8,
    "within:fw=~y3": 0.9,
    "within:fw=~y4": 0.7,
    "within:fw~x": 0.5,
    "within:y1~~y1": 1.0,
    "within:y2~~y2": 0.9,
    "within:y3~~y3": 0.8,
    "within:y4~~y4": 1.1,
    "within:fw~~fw": 0.8,
    "between:fb=~y2": 0.9,
    "between:fb=~y3": 0.7,
    "between:fb=~y4": 0.8,
    "between:fb~w": 0.4,
    "between:y1~~y1": 0.2,
    "between:y2~~y2": 0.25,
    "between:y3~~y3": 0.15,
    "between:y4~~y4": 0.2,
    "between:fb~~fb": 0.3,
    "between:y1~1": 2.0,
    "between:y2~1": 0.5,
    "between:y3~1": -0.3,
    "between:y4~1": 1.0,
}


def _loadings(level: str, factor: str) -> np.ndarray:
    """Loadings of ``factor`` on y1-y4 from the truth (the first is fixed to 1)."""
    return np.array([1.0] + [TWOLEVEL_TRUTH[f"{level}:{factor}=~{y}"] for y in _ITEMS[1:]])


def _variances(level: str) -> np.ndarray:
    """Residual variances of y1-y4 at ``level`` from the truth."""
    return np.array([TWOLEVEL_TRUTH[f"{level}:{y}~~{y}"] for y in _ITEMS])


def simulate_twolevel(n_clusters: int = 100, cluster_size: tuple[int, int] = (5, 15), seed: int = 1) -> pd.DataFrame:
    """Simulate ``n_clusters`` schools of sizes uniform in ``cluster_size`` (inclusive) from the truth.

    Returns one row per pupil with columns ``school`` (1..n_clusters), y1-y4, x and w.
    """
    low, high = cluster_size
    if not 1 <= low <= high:
        raise SettingsError(f"cluster_size must be (low, high) with 1 <= low <= high, got {cluster_size!r}.")
    t = TWOLEVEL_TRUTH
    rng = np.random.default_rng(seed)
    sizes = rng.integers(low, high + 1, size=n_clusters)
    school = np.repeat(np.arange(n_clusters), sizes)
    n = len(school)

    w = rng.standard_normal(n_clusters)
    fb = t["between:fb~w"] * w + rng.normal(0.0, np.sqrt(t["between:fb~~fb"]), n_clusters)
    means = np.array([t[f"between:{y}~1"] for y in _ITEMS])
    between = means + np.outer(fb, _loadings("between", "fb")) + rng.standard_normal((n_clusters, 4)) * np.sqrt(_variances("between"))

    x = rng.standard_normal(n)
    fw = t["within:fw~x"] * x + rng.normal(0.0, np.sqrt(t["within:fw~~fw"]), n)
    within = np.outer(fw, _loadings("within", "fw")) + rng.standard_normal((n, 4)) * np.sqrt(_variances("within"))

    y = between[school] + within
    return pd.DataFrame({"school": school + 1, **{name: y[:, k] for k, name in enumerate(_ITEMS)}, "x": x, "w": w[school]})


def main() -> None:
    """Simulate, fit the two-level model and compare the posterior means with the truth."""
    import bayes_msem as bm

    data = simulate_twolevel()
    print(f"Simulated {len(data)} pupils in {data['school'].nunique()} schools.\n")
    fit = bm.Model(TWOLEVEL_CFA, data, cluster="school").fit(draws=500, tune=500, chains=2, random_seed=1)
    print(fit.summary())
    posterior = fit.idata.posterior["theta"]
    mean = posterior.mean(("chain", "draw")).to_series()
    sd = posterior.std(("chain", "draw")).to_series()
    names = list(TWOLEVEL_TRUTH)
    table = pd.DataFrame({"truth": pd.Series(TWOLEVEL_TRUTH), "mean": mean[names], "sd": sd[names]})
    table["z"] = (table["mean"] - table["truth"]) / table["sd"]
    print("Posterior means against the truth (z = (mean - truth) / sd):")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
