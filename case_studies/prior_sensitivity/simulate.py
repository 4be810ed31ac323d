"""Simulate a two-level factor model (three indicators, five members per cluster) for a given
number of clusters.

Members i of clusters j:

    y_ij = ν + λ (f_ij + fb_j) + e_ij + u_j
    f_ij ~ N(0, var_within),  fb_j ~ N(0, var_between),
    e_ij ~ N(0, diag(residual_within)),  u_j ~ N(0, diag(residual_between))

with the same loadings λ = (1, 0.8, 0.7) at both levels and ν = 0. The between-level factor is
small (SD 0.3 against 1 within), so with few clusters the data say little about its variance.

Usage: ``python simulate.py clusters out.csv``
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

MEMBERS = 5
LOADINGS = (1.0, 0.8, 0.7)
TRUTH: dict[str, float] = {
    "var_within": 1.0,
    "var_between": 0.09,        # SD 0.3
    "residual_within": 0.36,    # SD 0.6, each indicator
    "residual_between": 0.04,   # SD 0.2, each indicator
}


def simulate(clusters: int, seed: int = 1) -> pd.DataFrame:
    """One row per member: y1, y2, y3 and the cluster id."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(clusters), MEMBERS)
    loadings = np.array(LOADINGS)
    between = rng.normal(scale=np.sqrt(TRUTH["var_between"]), size=clusters)[cluster][:, None] * loadings
    between += rng.normal(scale=np.sqrt(TRUTH["residual_between"]), size=(clusters, 3))[cluster]
    within = rng.normal(scale=np.sqrt(TRUTH["var_within"]), size=len(cluster))[:, None] * loadings
    within += rng.normal(scale=np.sqrt(TRUTH["residual_within"]), size=(len(cluster), 3))
    return pd.DataFrame(within + between, columns=["y1", "y2", "y3"]).assign(cluster=cluster)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python simulate.py clusters out.csv")
    simulate(int(sys.argv[1])).to_csv(sys.argv[2], index=False)
