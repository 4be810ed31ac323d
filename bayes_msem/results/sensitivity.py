"""Power-scaling sensitivity of the posterior to the prior and to the likelihood (Kallioinen,
Paananen, Bürkner & Vehtari 2023), through ArviZ's ``psense`` tools.

Raising the prior (or the likelihood) to a power α near 1 and reweighting the draws by
importance sampling shows how much each parameter's posterior moves; ArviZ reports that
movement as a cumulative Jensen–Shannon distance per unit of log α, and its diagnosis flags
*prior-data conflict* (sensitive to both) and *strong prior / weak likelihood* (sensitive to
the prior only) above a threshold (0.05). The prior is that of the model's parameters θ (their
sampled vectors); the standardised latent variables z of sampled strategies belong to the
hierarchical part and are not scaled. The likelihood is p(y | θ) per cluster where the strategy
integrates the latent variables, and p(y | θ, z) where it samples them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pytensor.graph.replace import graph_replace

from ..errors import ArgumentTypeError, SettingsError
from ..plots.forest import Series, forest, free_rows, from_draws
from ..sampling.samplers import jittered

SENSITIVITY_CAPTION = ("Above the threshold: prior and likelihood, potential prior-data conflict; prior only, "
                       "potential strong prior / weak likelihood.")


def draw_densities(model: pm.Model, posterior: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """log p(θ) and log p(y | θ, z) (the model's ``loglik`` term) per draw (chain, draw), from the
    sampled variables' draws on their natural scale."""
    inputs = {rv.name: pt.tensor(rv.name, shape=(None,) * rv.ndim, dtype="float64") for rv in model.free_RVs}
    prior = pt.sum([pm.logp(rv, inputs[rv.name]).sum() for rv in model.free_RVs if not jittered(rv.name)])
    loglik = graph_replace(model["loglik"], {rv: inputs[rv.name] for rv in model.free_RVs}, strict=False)
    function = pytensor.function(list(inputs.values()), [prior, loglik], on_unused_input="ignore")
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    values = np.array([[function(*(posterior[name].values[c, d] for name in inputs)) for d in range(draws)]
                       for c in range(chains)])
    return values[..., 0], values[..., 1]


def sensitivity_tree(posterior: xr.Dataset, log_prior: np.ndarray, log_likelihood: xr.DataArray | np.ndarray
                     ) -> xr.DataTree:
    """The DataTree ArviZ's psense tools read: θ (one variable per parameter, named as
    ``plan.parameter_name``), its log prior and the log-likelihood per draw."""
    coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    if not isinstance(log_likelihood, xr.DataArray):
        log_likelihood = xr.DataArray(log_likelihood, dims=("chain", "draw"), coords=coords)
    return xr.DataTree.from_dict({
        "posterior": posterior["theta"].to_dataset("parameter"),
        "log_prior": xr.Dataset({"prior": (("chain", "draw"), log_prior)}, coords=coords),
        "log_likelihood": xr.Dataset({"y": log_likelihood.assign_coords(coords)}),
    })


def sensitivity_table(tree: xr.DataTree, table: pd.DataFrame, threshold: float = 0.05) -> pd.DataFrame:
    """One row per free parameter (lhs, op, rhs, level) with its prior and likelihood sensitivity
    and ArviZ's diagnosis."""
    import arviz as az

    summary = az.psense_summary(tree, threshold=threshold, round_to=6)
    free = table[table["free"] > 0].drop_duplicates("free").sort_values("free")
    out = free[["lhs", "op", "rhs", "level"]].reset_index(drop=True)
    out["prior"] = summary["prior"].to_numpy(dtype=float)
    out["likelihood"] = summary["likelihood"].to_numpy(dtype=float)
    out["diagnosis"] = [str(d).replace("✓", "").strip() for d in summary["diagnosis"]]
    return out


def sensitivity_densities(tree: xr.DataTree, parameters: list[str] | None = None, path=None):
    """Each parameter's posterior under power-scaled priors (left) and likelihoods (right), one row
    per parameter of ``parameters`` (θ's names; all by default) from arviz-plots' ``plot_psense_dist``,
    2.2 inches a row so that titles clear the axes above; saved to ``path`` if given."""
    import arviz_plots as azp

    rows = len(parameters) if parameters else len(tree.posterior.data_vars)
    figure = {"figsize": (9, 0.6 + 2.2 * rows), "layout": "constrained"}
    plot = azp.plot_psense_dist(tree, var_names=parameters, backend="matplotlib", figure_kwargs=figure)
    if path is not None:
        plot.savefig(path)
    return plot


@dataclass(frozen=True)
class PriorComparison:
    """Fits of one model under several named sets of priors (:func:`sensitivity`)."""

    fits: dict

    def table(self) -> pd.DataFrame:
        """The free parameters' posterior mean, SD and 95% interval under each prior set, side by
        side: one row per parameter, columns (prior set, statistic)."""
        columns = ["mean", "sd", "eti_2.5%", "eti_97.5%"]
        frames = []
        for name, fit in self.fits.items():
            table = fit.parameters()
            table = table[table["free"]].set_index(["lhs", "op", "rhs", "level"])[columns]
            frames.append(table.set_axis(pd.MultiIndex.from_product([[name], columns]), axis=1))
        return pd.concat(frames, axis=1)

    def plot(self, path=None, parameters: list[str] | None = None):
        """Forest plot (:mod:`..plots.forest`) of each free parameter's posterior under each prior set, one
        colour per set, rows grouped by level and section; ``parameters`` by name as in ``theta``
        (e.g. ``"between:fb~~fb"``); saved to ``path`` if given."""
        rows = free_rows(next(iter(self.fits.values())).table, parameters)
        series = [from_draws(name, _draws(fit.idata.posterior["theta"], list(rows["name"])))
                  for name, fit in self.fits.items()]
        return forest(list(rows["group"]), list(rows["label"]), series, "Posterior under each set of priors",
                      "parameter value", path=path)


def _draws(theta: xr.DataArray, names: list[str]) -> np.ndarray:
    """Draws (samples, parameters) of the θ entries ``names``, chains pooled."""
    return theta.sel(parameter=names).stack(sample=("chain", "draw")).transpose("sample", "parameter").values


def sensitivity_plot(table: pd.DataFrame, sensitivities: pd.DataFrame, threshold: float,
                     parameters: list[str] | None = None, path=None):
    """Dot plot of each free parameter's prior and likelihood sensitivity (``sensitivities``, from
    :func:`sensitivity_table`) against ``threshold``, rows grouped by level and section."""
    rows = free_rows(table, parameters).merge(sensitivities, on=["lhs", "op", "rhs", "level"], how="left")
    series = [Series(kind, rows[kind].to_numpy()) for kind in ("prior", "likelihood")]
    return forest(list(rows["group"]), list(rows["label"]), series,
                  "Sensitivity to the prior and to the likelihood (power-scaling)",
                  "sensitivity (cumulative Jensen-Shannon distance per unit of log power)",
                  caption=SENSITIVITY_CAPTION, reference=threshold, reference_label=f"threshold {threshold:g}",
                  path=path)


def sensitivity(model, priors: Mapping[str, Mapping[str, str]] | Sequence[Mapping[str, str]],
                **fit_settings) -> PriorComparison:
    """The model refitted under each set of default priors (kind → prior, as ``Model(priors=...)``,
    added to the model's own), named in a mapping or "set 1", "set 2", … in a list; ``fit_settings``
    go to :meth:`Model.fit`."""
    if isinstance(priors, (str, bytes)) or not isinstance(priors, (Mapping, Sequence)):
        raise ArgumentTypeError("priors takes sets of default priors: a mapping name -> {kind: prior} or a list "
                                f"of {{kind: prior}}, got {type(priors).__name__}.")
    named = dict(priors) if isinstance(priors, Mapping) else {f"set {k}": p for k, p in enumerate(priors, start=1)}
    if not named:
        raise SettingsError('sensitivity needs at least one set of priors, e.g. {"wide": {"loading": '
                            '"normal(0, 10)"}}.')
    for name, prior_set in named.items():
        if not isinstance(prior_set, Mapping):
            raise ArgumentTypeError(f"the prior set {name!r} must map parameter kinds to priors, e.g. "
                                    f'{{"loading": "normal(0, 10)"}}; got {type(prior_set).__name__}.')
    fits = {}
    for name, prior_set in named.items():
        refit = copy.copy(model)
        refit.priors, refit._plan, refit._pymc_model = {**model.priors, **prior_set}, None, None
        fits[name] = refit.fit(**fit_settings)
    return PriorComparison(fits)
