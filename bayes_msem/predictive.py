"""Prior and posterior predictive draws (:mod:`.simulate` at each draw of θ), their plots through
arviz-plots, and a moment discrepancy for posterior predictive checks of any model.

The moment discrepancy compares data sets through m(y): the means of the modelled observed
variables, their covariances (two levels: the pooled within-cluster covariances and the
covariances of the cluster means), over the observed cells. With μ_k and σ_k the mean and SD of
m_k over the replicated data sets,

    T(y) = Σ_k ((m_k(y) − μ_k) / σ_k)²,   PPP = P(T(y_rep) ≥ T(y) | y),

which is small when the data's moments sit in the tails of what the model replicates, e.g. a
covariance that a dropped loading or a missing factor cannot reproduce. It needs no saturated
model, so it serves models with random parameters and non-Gaussian responses, on the response
codes; it is a conservative check (the data choose θ), not a test with a known level.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .data import ClusteredData
from .plan import Plan
from .simulate import Simulator


def predictive_dataset(plan: Plan, data: ClusteredData, theta: np.ndarray, seed: int | None) -> xr.Dataset:
    """One replicated data set per draw of ``theta`` (chain, draw, parameter): each modelled observed
    variable over (chain, draw, row)."""
    simulator, rng = Simulator(plan, data), np.random.default_rng(seed)
    chains, draws = theta.shape[:2]
    sets = [simulator.replicate(t, rng) for t in theta.reshape(chains * draws, -1)]
    return xr.Dataset({name: (("chain", "draw", "row"), np.stack([s[name] for s in sets]).reshape(chains, draws, -1))
                       for name in sets[0]},
                      coords={"chain": np.arange(chains), "draw": np.arange(draws), "row": np.arange(data.n_rows)})


def thinned(theta: xr.DataArray, draws: int) -> np.ndarray:
    """About ``draws`` draws of θ (chain, draw, parameter), evenly spaced within each chain."""
    theta = theta.transpose("chain", "draw", "parameter")
    per_chain = max(1, min(theta.sizes["draw"], -(-draws // theta.sizes["chain"])))
    keep = np.linspace(0, theta.sizes["draw"] - 1, per_chain).astype(int)
    return theta.values[:, keep]


def moments(data: ClusteredData, names: list[str], two_level: bool) -> np.ndarray:
    """m(y): means, and covariances (pooled within clusters and of cluster means, with two levels)
    of ``names`` over the observed cells (pairwise)."""
    values = data.matrix(names)
    parts = [np.nanmean(values, axis=0)]
    if two_level:
        means = data.cluster_means(names)
        parts += [_covariances(values - means[data.cluster_index]), _covariances(means)]
    else:
        parts.append(_covariances(values))
    return np.concatenate(parts)


def _covariances(values: np.ndarray) -> np.ndarray:
    cov = pd.DataFrame(values).cov().to_numpy()
    return cov[np.triu_indices(len(cov))]


def moment_ppp(simulator: Simulator, theta: np.ndarray, seed: int | None) -> float:
    """PPP of the moment discrepancy (module docstring) over the draws ``theta`` (draws, parameters)."""
    rng = np.random.default_rng(seed)
    plan, data = simulator.plan, simulator.data
    names = [v for v in next(iter(plan.levels.values())).roles.observed]
    names += [v for lp in list(plan.levels.values())[1:] for v in lp.roles.observed if v not in names]
    observed = moments(data, names, len(plan.levels) > 1)
    replicated = np.stack([moments(simulator.replicated_data(t, rng), names, len(plan.levels) > 1) for t in theta])
    centre, scale = replicated.mean(0), replicated.std(0)
    keep = scale > 0  # moments the model fixes (e.g. the variance of a 0/1 code's mean) carry no information
    t_observed = (((observed - centre)[keep] / scale[keep]) ** 2).sum()
    t_replicated = (((replicated - centre)[:, keep] / scale[keep]) ** 2).sum(1)
    return float(np.mean(t_replicated >= t_observed))


def plot_predictive(tree: xr.DataTree, group: str, path: str | Path | None = None, var_names: list[str] | None = None):
    """The predictive distribution of each variable against the observed one (arviz-plots'
    ``plot_ppc_dist``); saved to ``path`` if given."""
    import arviz_plots as azp

    names = var_names or [str(v) for v in tree[group].data_vars]  # the observed data also hold covariates
    plot = azp.plot_ppc_dist(tree, group=group, var_names=names, backend="matplotlib")
    if path is not None:
        plot.savefig(path) if hasattr(plot, "savefig") else plot.viz["chart"].item().savefig(path)
    return plot
