"""Prior and posterior predictive draws (:mod:`..simulation.simulator` at each draw of θ), their plots through
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
from scipy.stats import gaussian_kde

from ..data.clustered import ClusteredData, unit_dim
from ..simulation.simulator import Simulator
from ..spec.plan import Plan


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


def modelled_observed(plan: Plan) -> list[str]:
    """The modelled observed variables of every level, the lowest level's first."""
    names = list(next(iter(plan.levels.values())).roles.observed)
    return names + [v for lp in list(plan.levels.values())[1:] for v in lp.roles.observed if v not in names]


def moment_ppp(simulator: Simulator, theta: np.ndarray, seed: int | None) -> float:
    """PPP of the moment discrepancy (module docstring) over the draws ``theta`` (draws, parameters)."""
    rng = np.random.default_rng(seed)
    plan, data = simulator.plan, simulator.data
    names = modelled_observed(plan)
    observed = moments(data, names, len(plan.levels) > 1)
    replicated = np.stack([moments(simulator.replicated_data(t, rng), names, len(plan.levels) > 1) for t in theta])
    return moment_discrepancy_ppp(observed, replicated)


def moment_discrepancy_ppp(observed: np.ndarray, replicated: np.ndarray) -> float:
    """PPP = P(T(y_rep) ≥ T(y)) of T = Σ_k ((m_k − μ_k) / σ_k)² from the moments of the data
    (``observed``) and of each replicated data set (``replicated``: sets, moments)."""
    centre, scale = replicated.mean(0), replicated.std(0)
    keep = scale > 0  # moments the model fixes (e.g. the variance of a 0/1 code's mean) carry no information
    t_observed = (((observed - centre)[keep] / scale[keep]) ** 2).sum()
    t_replicated = (((replicated - centre)[:, keep] / scale[keep]) ** 2).sum(1)
    return float(np.mean(t_replicated >= t_observed))


def plot_predictive(tree: xr.DataTree, group: str, path: str | Path | None = None, var_names: list[str] | None = None):
    """Replicated against observed data (``group``: prior_predictive or posterior_predictive), a
    column per variable: the distribution of the values and, with clusters, of the cluster means
    and of the within-cluster SDs (clusters with two or more observed cells); up to 40 replicated
    data sets as thin lines, the data as a thick one (:func:`_draw_statistic`); saved to ``path`` if
    given."""
    import matplotlib.pyplot as plt

    names = var_names or [str(v) for v in tree[group].data_vars]  # the observed data also hold covariates
    observed = tree["observed_data"]
    cluster = observed[unit_dim(1)].values if unit_dim(1) in observed.coords else None
    statistics = _STATISTICS if cluster is not None else _STATISTICS[:1]
    figure, axes = plt.subplots(len(statistics), len(names), squeeze=False, layout="constrained",
                                figsize=(max(5.0, 0.6 + 3.0 * len(names)), 0.9 + 2.3 * len(statistics)))
    for column, name in enumerate(names):
        replicated = tree[group][name].transpose("chain", "draw", "row").values.reshape(-1, observed.sizes["row"])
        replicated = replicated[np.linspace(0, len(replicated) - 1, min(_SETS, len(replicated))).astype(int)]
        for row, (title, statistic) in enumerate(statistics):
            ax = axes[row, column]
            _draw_statistic(ax, statistic(observed[name].values, cluster),
                            [statistic(values, cluster) for values in replicated])
            ax.set_title(f"{name}: {title}", fontsize="medium")
    axes[0, 0].legend(frameon=False, fontsize="small")
    kind = "posterior" if group.startswith("posterior") else "prior"
    figure.suptitle(f"{kind.capitalize()} predictive check", x=0.01, ha="left", fontweight="bold")
    if path is not None:
        figure.savefig(path, dpi=150)
    return figure


def _values(values: np.ndarray, cluster: np.ndarray | None) -> np.ndarray:
    return values[~np.isnan(values)]


def _cluster_means(values: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    return pd.Series(values).groupby(cluster).mean().dropna().to_numpy()


def _cluster_sds(values: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    return pd.Series(values).groupby(cluster).std(ddof=1).dropna().to_numpy()


_SETS = 40
_STATISTICS = [("values", _values), ("cluster means", _cluster_means), ("within-cluster SDs", _cluster_sds)]


def _draw_statistic(ax, observed: np.ndarray, replicated: list[np.ndarray]) -> None:
    """The distribution of a statistic in each replicated data set (thin blue lines) and in the data
    (a thick black one): a density (Gaussian kernel) where it takes more than ten distinct values,
    else the proportion of each value (blue ticks, black dots)."""
    replicated = [np.round(v, 9) for v in replicated]  # equal SDs of 0/1 items differ in the last bits
    observed = np.round(observed, 9)
    support = np.unique(np.concatenate([observed, *replicated]))
    discrete = len(support) <= 10
    if discrete:
        curve = lambda v: (v[:, None] == support).mean(axis=0)  # noqa: E731
        replicated_style, observed_style = {"linestyle": "none", "marker": "_", "markersize": 14}, {
            "linestyle": "none", "marker": "o", "markersize": 5}
    else:
        support = np.linspace(*np.quantile(support, [0.002, 0.998]), 200)
        curve = lambda v: gaussian_kde(v)(support) if np.ptp(v) > 0 else np.zeros_like(support)  # noqa: E731
        replicated_style, observed_style = {"linewidth": 0.8}, {"linewidth": 1.8}
    for k, values in enumerate(replicated):
        ax.plot(support, curve(values), color="C0", alpha=0.3, label="replicated" if k == 0 else None,
                **replicated_style)
    ax.plot(support, curve(observed), color="black", label="observed", **observed_style)
    if not discrete:
        ax.set_yticks([])  # a density's scale says little; a proportion's does
    ax.set_ylabel("proportion" if discrete else "density", fontsize="small")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
