"""Simulate the three-level random-intercept design of the Stata blog example (Wiggins 2011).

Children i in schools j in counties k:

    y_ijk = intercept + slope * x_ijk + U_k + V_jk + E_ijk
    U_k ~ N(0, var_U)      county random intercept
    V_jk ~ N(0, var_V)     school random intercept
    E_ijk ~ N(0, var_E)    child-level error
    x_ijk ~ Uniform(0, 1); U, V, E, x mutually independent.

With the values in ``TRUTH`` this is y = 2x + U + V + E with unit variances. Sizes are
unbalanced by default: each count argument is an int (balanced) or an inclusive (low, high)
range drawn uniformly per county / per school.

Usage: ``python simulate.py out.csv``
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

TRUTH: dict[str, float] = {
    "intercept": 0.0,
    "slope_x": 2.0,
    "var_U_county": 1.0,
    "var_V_school": 1.0,
    "var_E_child": 1.0,
}

Count = int | tuple[int, int]


def _draw(rng: np.random.Generator, spec: Count, n: int) -> np.ndarray:
    if isinstance(spec, int):
        return np.full(n, spec)
    low, high = spec
    return rng.integers(low, high + 1, size=n)


def simulate(
    seed: int = 3,
    n_counties: int = 40,
    schools_per_county: Count = (3, 6),
    children_per_school: Count = (5, 15),
) -> pd.DataFrame:
    """One row per child: county, school (unique across counties), child (unique), x, y."""
    rng = np.random.default_rng(seed)
    n_schools = _draw(rng, schools_per_county, n_counties)
    school_county = np.repeat(np.arange(1, n_counties + 1), n_schools)
    n_children = _draw(rng, children_per_school, school_county.size)

    school = np.repeat(np.arange(1, school_county.size + 1), n_children)
    county = school_county[school - 1]
    n = school.size

    u = rng.normal(0.0, np.sqrt(TRUTH["var_U_county"]), n_counties)
    v = rng.normal(0.0, np.sqrt(TRUTH["var_V_school"]), school_county.size)
    e = rng.normal(0.0, np.sqrt(TRUTH["var_E_child"]), n)
    x = rng.uniform(0.0, 1.0, n)
    y = TRUTH["intercept"] + TRUTH["slope_x"] * x + u[county - 1] + v[school - 1] + e

    return pd.DataFrame({"county": county, "school": school,
                         "child": np.arange(1, n + 1), "x": x, "y": y})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python simulate.py out.csv")
    simulate().to_csv(sys.argv[1], index=False)
