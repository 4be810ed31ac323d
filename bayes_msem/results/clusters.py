"""Cluster-specific estimates of random parameters, on their natural scale.

A random slope or loading is reported as is; a random log-variance ``v | y ~~ y``
as the cluster's variance e^v; a random covariance matrix ``Phi | f1 + f2 ~~ f1 + f2``
as the entries of each cluster's Φ_j = diag(e^τ_j) R_j diag(e^τ_j); its components
(``Phi.f1``, ``Phi.f1.f2``) on their sampling scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import xarray as xr

from ..errors import SettingsError, UnavailableError
from ..likelihood.moments import correlation_cholesky
from ..plots import forest
from ..spec.table import RandomParameter, random_parameters

INTERVAL = (0.025, 0.975)


def cluster_draws(idata: xr.DataTree, table: pd.DataFrame, name: str) -> xr.DataArray:
    """Draws (chain, draw, cluster[, entry]) of the random parameter ``name`` on its natural scale."""
    random = random_parameters(table[table["random"].notna()])
    if "random_effects" not in idata.posterior:
        raise UnavailableError("this model has no random parameters (cluster-specific estimates need 'NAME | relation' "
                               "terms); random intercepts and between-level factors are latent scores: "
                               "fit.latent_scores('between').")
    effects = idata.posterior["random_effects"]
    by_name = {r.name: r for r in random}
    if name in by_name:
        draws = effects.sel(random=name, drop=True)
        return np.exp(draws) if by_name[name].kind == "log_variance" else draws
    block = [r for r in random if r.written == name]
    if not block:
        known = sorted({r.written for r in random} | set(by_name))
        raise SettingsError(f"{name!r} is not a random parameter of this model; known: {', '.join(known)}. Random "
                            "intercepts and between-level factors are latent scores: fit.latent_scores('between').")
    return _covariance_draws(effects, block)


def _covariance_draws(effects: xr.DataArray, block: list[RandomParameter]) -> xr.DataArray:
    """Φ_j entries (variances and covariances) per draw and cluster, from log-SDs and partial correlations."""
    log_sd = [r for r in block if r.kind == "log_sd"]
    partial = [r.name for r in block if r.kind == "correlation"]
    k = len(log_sd)
    sd = np.exp(effects.sel(random=[r.name for r in log_sd]).values)
    chol = correlation_cholesky(pt.as_tensor_variable(np.tanh(effects.sel(random=partial).values)), k).eval()
    chol = sd[..., :, None] * chol
    phi = chol @ np.swapaxes(chol, -1, -2)
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    labels = [f"{log_sd[i].lhs}~~{log_sd[j].lhs}" for i, j in pairs]
    values = np.stack([phi[..., i, j] for i, j in pairs], axis=-1)
    dims = (*effects.dims[:-1], "entry")
    coords = {d: effects[d] for d in effects.dims[:-1]} | {"entry": labels}
    return xr.DataArray(values, dims=dims, coords=coords)


def summarise(draws: xr.DataArray) -> pd.DataFrame:
    """Mean, SD and 95% equal-tailed interval per cluster (and entry)."""
    stats = xr.Dataset({
        "mean": draws.mean(("chain", "draw")),
        "sd": draws.std(("chain", "draw")),
        "eti_2.5%": draws.quantile(INTERVAL[0], ("chain", "draw")).drop_vars("quantile"),
        "eti_97.5%": draws.quantile(INTERVAL[1], ("chain", "draw")).drop_vars("quantile"),
    })
    return stats.to_dataframe().reset_index()


def forest_plot(draws: xr.DataArray, name: str, path: str | Path | None = None):
    """Forest plot (:mod:`..plots.forest`) of the cluster-specific values of ``name``: a row per cluster,
    under a header per entry of a covariance block; saved to ``path`` if given."""
    stacked = draws.stack(sample=("chain", "draw"))
    if "entry" in draws.dims:
        stacked = stacked.stack(row=("entry", "cluster"))
        groups = [f"{name}: {entry}" for entry in stacked["entry"].values]
    else:
        stacked = stacked.rename(cluster="row")
        groups = [""] * stacked.sizes["row"]
    labels = [str(c) for c in stacked["cluster" if "entry" in draws.dims else "row"].values]
    values = stacked.transpose("sample", "row").values
    return forest.forest(groups, labels, [forest.from_draws(name, values)], f"Cluster-specific values of {name}",
                         name, "cluster", path=path)
