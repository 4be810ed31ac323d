"""Simulate pupils in schools with a random intercept and a random slope.

Pupils i in schools j; x is a pupil's standardised prior attainment and y their score at the
end of the year:

    y_ij = b_j + s_j x_ij + e_ij,              e_ij ~ N(0, var_pupil)
    (b_j, s_j) ~ N((mean_intercept, mean_slope), T),
    T = [[var_intercept, cov], [cov, var_slope]]

b_j is school j's expected score of a pupil with average prior attainment, s_j how much
prior attainment matters in school j. School sizes are unequal (``size`` pupils, uniform),
so some schools' slopes are measured far more precisely than others'. x ~ N(0, 1) within
every school (no school differences in intake).

Usage: ``python simulate.py pupils.csv schools.csv``
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

TRUTH: dict[str, float] = {
    "mean_intercept": 1.0,
    "mean_slope": 0.4,
    "var_intercept": 0.25,  # SD 0.5
    "var_slope": 0.0625,    # SD 0.25
    "cov": 0.0375,          # correlation 0.3
    "var_pupil": 0.64,      # SD 0.8
}


def simulate(seed: int = 40, n_schools: int = 40, size: tuple[int, int] = (8, 50)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pupils (school, x, y) and schools (school, pupils, and the generating intercept and slope)."""
    rng = np.random.default_rng(seed)
    pupils_per_school = rng.integers(size[0], size[1] + 1, size=n_schools)
    mean = [TRUTH["mean_intercept"], TRUTH["mean_slope"]]
    cov = [[TRUTH["var_intercept"], TRUTH["cov"]], [TRUTH["cov"], TRUTH["var_slope"]]]
    intercept, slope = rng.multivariate_normal(mean, cov, size=n_schools).T
    school = np.repeat(np.arange(n_schools), pupils_per_school)
    x = rng.standard_normal(len(school))
    y = intercept[school] + slope[school] * x + rng.normal(0.0, np.sqrt(TRUTH["var_pupil"]), len(school))
    ids = np.arange(1, n_schools + 1)
    pupils = pd.DataFrame({"school": ids[school], "x": x, "y": y})
    schools = pd.DataFrame({"school": ids, "pupils": pupils_per_school, "intercept": intercept, "slope": slope})
    return pupils, schools


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python simulate.py pupils.csv schools.csv")
    for frame, path in zip(simulate(), sys.argv[1:]):
        frame.to_csv(path, index=False)
