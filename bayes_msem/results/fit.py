"""Posterior draws joined back onto the parameter table.

:class:`Fit` holds the ArviZ DataTree (posterior draws of θ, the natural-scale
parameter vector with dimension ``parameter``, and of ``defined`` parameters
from ``:=``), the parameter table and a few facts about the fit. Reflection of
factors that have no fixed loading (``std_lv=True``) is undone per draw, as in
blavaan: each such factor's first loading is made positive and the signs of
every parameter that involves the factor follow.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import operator
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import arviz as az
import graphviz
import numpy as np
import pandas as pd
import xarray as xr

from ..data.clustered import ClusteredData, data_frame
from ..data.scales import theta_factors, variable_scale
from ..errors import ArgumentTypeError, MissingFileError, SavedFitError, SettingsError, UnavailableError
from ..likelihood.registry import strategy_for
from ..likelihood.strategy import MARGINAL
from ..plots.checks import check_figure
from ..plots.diagram import draw
from ..plots.forest import free_rows
from ..simulation.simulator import Simulator
from ..spec.plan import make_plan, parameter_name, row_names
from ..spec.table import BETWEEN, SpecificationError
from . import clusters, departures, diagnostics, fit_measures, report
from .checks import (
    MAX_RESIDUAL,
    PAIR_LOR,
    PAIR_X2,
    SUM_X2,
    PredictiveChecks,
    applicable,
    categorical_items,
    predictive_checks,
)
from .pointwise import ROW_DRAWS, SampledLikelihood, posterior_proposal
from .predictive import moment_ppp, plot_predictive, predictive_dataset, thinned
from .scores import latent_draws, latent_scores
from .sensitivity import draw_densities, sensitivity_densities, sensitivity_plot, sensitivity_table, sensitivity_tree
from .standardized import icc_table, r_squared_table, standardized_table

INTERVAL = 0.95
_LOWER, _UPPER = "eti_2.5%", "eti_97.5%"
_STAT_COLUMNS = ["mean", "sd", _LOWER, _UPPER, "r_hat", "ess_bulk", "ess_tail"]
_STRATEGIES = {"marginal": "all latent variables integrated out",
               "hybrid": "random parameters sampled per cluster, all other latent variables integrated out",
               "conditional": "latent variables sampled per row and cluster, responses of any family"}
def _strategy_text(info: dict) -> str:
    """What the fit's strategy sampled and what it integrated out."""
    if info.get("crossed") and info["strategy"] == "hybrid":
        return "the first classification's effects integrated out, the other classifications' sampled"
    return _STRATEGIES.get(info["strategy"], "")


_TABLE_COLUMNS = ["lhs", "op", "rhs", "level", "label", "free", "fixed", "start", "prior", "random", "user"]


class Fit:
    """A fitted model: posterior draws in ``idata`` (an ArviZ DataTree) plus the parameter table."""

    def __init__(self, idata: xr.DataTree, table: pd.DataFrame, definitions: pd.DataFrame, info: dict):
        self.idata = idata
        self.table = table
        self.definitions = definitions
        self.info = info
        self.source = None  # the Model fitted; for a fit read from a file, built by ``rebuild`` when needed
        self.rebuild: Callable[[Fit], Any] | None = None

    @classmethod
    def from_draws(cls, idata: xr.DataTree, table: pd.DataFrame, definitions: pd.DataFrame, info: dict) -> Fit:
        """Align factor signs and evaluate defined parameters on every draw."""
        posterior = idata.posterior.to_dataset().map(lambda v: v.copy(data=np.asarray(v.values)))
        signs = factor_signs(posterior["theta"], table)
        for name in [v for v in posterior.data_vars if str(v).startswith("scores_")]:
            posterior[name] = align_scores(posterior[name], signs)
        posterior["theta"] = align_signs(posterior["theta"], table)
        if len(definitions):
            posterior["defined"] = evaluate_definitions(posterior["theta"], table, definitions)
        idata["posterior"] = xr.DataTree(posterior)
        return cls(idata, table, definitions, info)

    def parameters(self) -> pd.DataFrame:
        """One row per parameter, lavaan-style: lhs, op, rhs, level, label, free, posterior summaries.

        Variances are variances; fixed parameters show their value as the mean and no spread. A
        multiple-group fit has a ``group`` column and each parameter once per group, a parameter
        equal across groups with the same posterior in each (as lavaan shows them).
        """
        own_units = self._own_units()
        stats = self._summary("theta", "parameter", own_units)
        table = self.table
        free_names = {}
        for free, name in zip(table["free"], row_names(table)):  # a shared label's parameter: its first row's name
            free_names.setdefault(free, name)
        out = table[["lhs", "op", "rhs", "level", "label", "random", *(["group"] if "group" in table else [])]].copy()
        out["free"] = table["free"] > 0
        for column in _STAT_COLUMNS:
            values = [stats.loc[free_names[f], column] if f > 0 else np.nan for f in table["free"]]
            out[column] = values
        fixed = ~out["free"] & table["random"].isna()
        out.loc[fixed, "mean"] = table.loc[fixed, "fixed"]
        if len(self.definitions):
            defined = self._summary("defined", "definition", own_units).reset_index(names="lhs")
            defined = defined.assign(op=":=", rhs=self.definitions["expression"].to_numpy(), level="", label=None,
                                     random=None, free=True)
            out = pd.concat([out, defined[out.columns]], ignore_index=True)
        return out

    def recovery(self, truth: Mapping[tuple[str, str, str, str], float],
                 names: Mapping[tuple[str, str, str, str], str] | None = None) -> pd.DataFrame:
        """Known values beside the posterior, for simulated data: one row per ``truth`` entry, keyed
        (lhs, op, rhs, level) as in :meth:`parameters`, with its name (``names``, else "lhs op rhs
        (level)"), the truth, posterior mean, SD, 95% interval (lower, upper) and whether it covers."""
        table = self.parameters().set_index(["lhs", "op", "rhs", "level"])
        names = dict(names or {})
        rows = [(names.get(key, " ".join(key[:3]) + f" ({key[3]})"), value, *table.loc[key, ["mean", "sd", _LOWER, _UPPER]])
                for key, value in truth.items()]
        out = pd.DataFrame(rows, columns=["parameter", "truth", "mean", "sd", "lower", "upper"])
        return out.assign(covered=(out["lower"] < out["truth"]) & (out["truth"] < out["upper"]))

    def _own_units(self) -> xr.DataTree:
        """The posterior of θ and the defined parameters in the variables' own units: the fit's
        own for models fitted without ``rescale``, else θ times :func:`~..data.scales.theta_factors`."""
        scales = self.info.get("scales") or {}
        if not scales:
            return self.idata
        posterior = self.idata.posterior.to_dataset()
        factors = xr.DataArray(theta_factors(self.table, scales), dims="parameter")
        theta = posterior["theta"] * factors
        reported = {"theta": theta}
        if len(self.definitions):
            reported["defined"] = evaluate_definitions(theta, self.table, self.definitions)
        return xr.DataTree.from_dict({"posterior": xr.Dataset(reported)})

    def _summary(self, var: str, dim: str, tree: xr.DataTree | None = None) -> pd.DataFrame:
        tree = self.idata if tree is None else tree
        s = az.summary(tree, var_names=[var], ci_prob=INTERVAL, ci_kind="eti", round_to="none")
        s.index = tree.posterior[var][dim].to_numpy().tolist()
        lo, hi = (c for c in s.columns if c.startswith("eti"))
        return pd.DataFrame(s).rename(columns={lo: _LOWER, hi: _UPPER})[_STAT_COLUMNS]

    def cluster_effects(self, name: str) -> pd.DataFrame:
        """Per cluster: posterior mean, SD and 95% interval of the random parameter ``name``
        (a variance for a random log-variance; every entry of Φ_j for a covariance block)."""
        self._one_group("cluster_effects")
        return clusters.summarise(self._cluster_draws(name))

    def _cluster_draws(self, name: str) -> xr.DataArray:
        """Draws of the random parameter ``name`` per cluster, in the variables' own units."""
        return clusters.cluster_draws(self.idata, self.table, name) * self._scale()(name, BETWEEN)

    def _scale(self):
        """The function (name, level) → the variable's scale in the fit (1 unless fitted with ``rescale``)."""
        scales = self.info.get("scales") or {}
        return variable_scale(self.table, scales) if scales else lambda name, level: 1.0

    def latent_scores(self, level: str | None = None, seed: int | None = None) -> pd.DataFrame:
        """Per unit (row label or cluster id) and latent variable (factors; at the between level also
        the random intercepts, named after their variable, and the random parameters): posterior mean,
        SD and 95% interval, for one level or all. Latent variables a marginal fit integrated out are drawn from their
        conditional distribution given the data, once per posterior draw (:mod:`.scores`)."""
        self._one_group("latent_scores")
        data = ClusteredData.from_dataset(self.idata.observed_data.to_dataset(), self.info.get("cluster"))
        scores = latent_scores(self.idata.posterior.to_dataset(),
                               make_plan(self.table, crossed=self.info.get("crossed", False)), data, seed)
        scale = self._scale()
        factors = {key: scale(*key) for key in set(scores[["variable", "level"]].itertuples(index=False, name=None))}
        per_row = np.array([factors[key] for key in zip(scores["variable"], scores["level"])])
        scores[["mean", "sd", _LOWER, _UPPER]] *= per_row[:, None]
        if level is None:
            return scores
        if level not in set(scores["level"]):
            raise SettingsError(f"no latent variables at level {level!r}; levels with scores: {sorted(set(scores['level']))}.")
        return scores[scores["level"] == level].reset_index(drop=True)

    def standardized(self) -> pd.DataFrame:
        """The standardized solution per level, as lavaan's ``standardizedSolution``: std.lv and
        std.all of every loading, regression, (co)variance and intercept, computed on every
        posterior draw (:mod:`.standardized`), with the SD and 95% interval of std.all."""
        self._one_group("standardized")
        return standardized_table(*self._draws_plan_data, INTERVAL, self._random_draws())

    def r_squared(self) -> pd.DataFrame:
        """R² of every endogenous variable at each level, per posterior draw: posterior mean, SD and
        95% interval (:mod:`.standardized`)."""
        self._one_group("r_squared")
        return r_squared_table(*self._draws_plan_data, INTERVAL, self._random_draws())

    def icc(self) -> pd.DataFrame:
        """The intraclass correlation of every observed variable with parts at both levels of a
        two-level model, model-implied per posterior draw: posterior mean, SD and 95% interval."""
        self._one_group("icc")
        return icc_table(*self._draws_plan_data, INTERVAL, self._random_draws())

    def _random_draws(self) -> np.ndarray | None:
        """The clusters' random parameters (draws, clusters, K) on the draws of :attr:`_draws_plan_data`
        (None without random parameters)."""
        if "random_effects" not in self.idata.posterior:
            return None
        effects = self.idata.posterior["random_effects"].transpose("chain", "draw", "cluster", "random").values
        return effects.reshape(-1, *effects.shape[2:])

    @cached_property
    def _draws_plan_data(self):
        """θ draws (draws, parameters), the plan and the data, for per-draw computations (built on
        first use and kept: the draws, the table and the observed data do not change)."""
        data = ClusteredData.from_dataset(self.idata.observed_data.to_dataset(), self.info.get("cluster"))
        plan = make_plan(self.table, families=self.info.get("families"), missing=data.has_missing,
                         crossed=self.info.get("crossed", False))
        theta = self.idata.posterior["theta"].transpose("chain", "draw", "parameter").values
        theta = theta.reshape(-1, theta.shape[-1])
        theta.setflags(write=False)
        return theta, plan, data

    def log_likelihood(self, draws: int = 400, importance_draws: int = 100, seed: int | None = None,
                       row_draws: int = ROW_DRAWS) -> xr.DataArray:
        """log p(y_j | θ) of every cluster j (school with three levels; row of a single-level model)
        with its latent variables integrated out, kept in the DataTree's ``log_likelihood`` group
        (variable ``y``, dimension ``unit``) for LOO and WAIC. Exact on every draw when the
        strategy integrates them (marginal); for hybrid and conditional fits, on about ``draws``
        draws, by importance sampling with ``importance_draws`` draws per cluster and draw, and
        for each of these, ``row_draws`` draws of each row's latent variables where rows have
        their own (:mod:`.pointwise`). A multiple-group fit's units are each group's in turn."""
        if self.info.get("crossed"):
            raise UnavailableError("log-likelihoods per cluster (LOO, WAIC) are not available for cross-classified fits "
                                   "yet: a row belongs to a cluster of each classification, so no cluster's rows are "
                                   "independent of the others'.")
        if "log_likelihood" not in self.idata.children:
            posterior = self.idata.posterior
            theta = posterior["theta"].transpose("chain", "draw", "parameter").values
            if self.info.get("group"):  # each group's clusters (rows) in turn, its sampled variables g1::…
                model = self._model()
                parts = [(model.plan.for_group(g), data, f"g{k}::") for k, (g, data) in enumerate(model.groups.items(), 1)]
            else:
                _, plan, data = self._draws_plan_data
                parts = [(plan, data, "")]
            units = np.concatenate([data.top_ids() for _, data, _ in parts])
            if strategy_for(parts[0][0]).kind == MARGINAL:
                functions = list(self._group_functions().values()) if self.info.get("group") else [
                    self._gaussian_functions()]
                per_part = [function.cluster_loglik for function in functions]
            else:
                theta, rng = thinned(posterior["theta"], draws), np.random.default_rng(seed)
                per_part = []
                for plan, data, prefix in parts:
                    sampled = SampledLikelihood(plan, data, prefix=prefix)
                    proposal = posterior_proposal(posterior, list(sampled.inputs))
                    per_part.append(partial(sampled.integrated, proposal=proposal, draws=importance_draws, rng=rng,
                                            row_draws=row_draws))
            values = np.stack([np.concatenate([part(t) for part in per_part]) for t in theta.reshape(-1, theta.shape[-1])])
            values = values.reshape(*theta.shape[:2], -1)
            self.idata["log_likelihood"] = xr.DataTree(xr.Dataset(
                {"y": (("chain", "draw", "unit"), values)},
                coords={"chain": np.arange(theta.shape[0]), "draw": np.arange(theta.shape[1]), "unit": units}))
        return self.idata["log_likelihood"]["y"]

    def loo(self):
        """Leave-one-cluster-out cross-validation by Pareto-smoothed importance sampling (ArviZ's
        ``loo`` on :meth:`log_likelihood`: a whole cluster is left out, as new clusters are what a
        multilevel model predicts). Warns, naming them, of clusters whose Pareto k exceeds the
        reliable bound; refit without them or with more draws."""
        self.log_likelihood()
        result = az.loo(self.idata, var_name="y", pointwise=True)
        bad = result.pareto_k.values > result.good_k
        if bad.any():
            units = result.pareto_k["unit"].values[bad] if "unit" in result.pareto_k.coords else np.flatnonzero(bad)
            warnings.warn(f"LOO is unreliable for {bad.sum()} cluster(s) with Pareto k > {result.good_k:.2f} "
                          f"({', '.join(map(str, units[:10]))}{', …' if bad.sum() > 10 else ''}): these clusters "
                          "are influential; compare models with K-fold cross-validation over clusters or check "
                          "them for outliers.", stacklevel=2)
        return result

    def waic(self) -> dict[str, float]:
        """WAIC over clusters (:func:`~.fit_measures.waic`); LOO (:meth:`loo`) is the more reliable of the two."""
        return fit_measures.waic(self.log_likelihood().stack(sample=("chain", "draw")).transpose("sample", "unit").values)

    def fit_measures(self, null: Fit | None = None, draws: int = 500, seed: int | None = None) -> pd.Series:
        """The chi-square-based fit of a Gaussian single- or two-level model with random intercepts
        and complete data (:mod:`.fit_measures`): the posterior predictive p-value (PPP, from
        ``draws`` posterior draws), the mean discrepancy, the number of sample statistics p*, the
        effective number of parameters p_D (LOO's p_loo) and the posterior means and 95% intervals
        of BRMSEA, BCFI and BTLI. The CFI and TLI compare with the independence model ``null``;
        without one it is fitted here (:func:`~.fit_measures.baseline_syntax`) with this fit's
        number of chains and draws.

        Every other model (categorical or other non-Gaussian items, random slopes, loadings or
        variances, missing cells, three levels) gets the PPPs of :meth:`predictive_checks`
        (:meth:`~.checks.PredictiveChecks.summary`): ``ppp`` (the moment discrepancy, as
        :meth:`ppp`), ``draws``; with categorical items ``pairs``, ``pairs misfitting`` (item pairs
        whose X² has PPP < 0.05), ``ppp sum of pair X²`` and ``ppp max |residual|``; with two levels
        ``ppp var(cluster slope) y ~ x``, ``ppp var(cluster covariance) …``, ``ppp
        var(cluster mean) y`` and ``ppp var(cluster SD) y``."""
        self._one_group("fit_measures")
        _, plan, data = self._draws_plan_data
        if fit_measures.not_covered(plan, data):
            return pd.Series(self._predictive_checks(draws, seed).summary())
        functions = self._gaussian_functions("fit measures")
        theta = self._draws_plan_data[0]
        chosen = thinned(self.idata.posterior["theta"], draws)
        discrepancy = fit_measures.chi_square(functions, chosen.reshape(-1, chosen.shape[-1]), seed)
        model = dataclasses.replace(discrepancy, observed=2 * (discrepancy.best - np.array([functions.loglik(t) for t in theta])))
        null = null if null is not None else self._baseline(seed)
        null_functions = null._gaussian_functions("fit measures")
        null_theta = null._draws_plan_data[0]
        null_discrepancy = dataclasses.replace(model, observed=2 * (discrepancy.best - np.array(
            [null_functions.loglik(t) for t in null_theta])))
        p_d, null_p_d = self.loo().p, null.loo().p
        indices = fit_measures.bayesian_indices(model, p_d, null_discrepancy, null_p_d)
        out = {"ppp": discrepancy.ppp, "chisq": float(model.observed.mean()), "moments": model.moments,
               "p_d": float(p_d), "df": model.moments - float(p_d)}
        for name, values in indices.items():
            low, high = np.quantile(values, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2])
            out |= {name: float(values.mean()), f"{name} 2.5%": float(low), f"{name} 97.5%": float(high)}
        return pd.Series(out)

    def ppp(self, draws: int = 500, seed: int | None = None) -> float:
        """The posterior predictive p-value over about ``draws`` posterior draws: of the chi-square
        discrepancy against the saturated model for Gaussian single- and two-level models with random
        intercepts (:mod:`.fit_measures`), of the moment discrepancy for every other model
        (:mod:`.predictive`). Near 0: the data are unlike what the model replicates."""
        chosen = thinned(self.idata.posterior["theta"], draws)
        chosen = chosen.reshape(-1, chosen.shape[-1])
        if self.info.get("group"):  # the groups' chi-square discrepancies added up, draw by draw
            model = self._model()
            reasons = [fit_measures.not_covered(model.plan.for_group(g), part) for g, part in model.groups.items()]
            if any(reasons):
                raise UnavailableError(f"the PPP of a multiple-group fit needs the chi-square discrepancy, and "
                                       f"{next(r for r in reasons if r)}.")
            functions = self._group_functions()
            seeds = np.random.SeedSequence(seed).spawn(len(functions))
            parts = [fit_measures.chi_square(f, chosen, s) for f, s in zip(functions.values(), seeds)]
            return float(np.mean(sum(p.replicated for p in parts) >= sum(p.observed for p in parts)))
        _, plan, data = self._draws_plan_data
        if fit_measures.not_covered(plan, data):
            return moment_ppp(Simulator(plan, data), chosen, seed)
        return fit_measures.chi_square(self._gaussian_functions("the chi-square PPP"), chosen, seed).ppp

    def predictive_checks(self, draws: int = 500, seed: int | None = None) -> pd.DataFrame:
        """Posterior predictive checks of categorical items and of cluster-level moments over about
        ``draws`` posterior draws (:mod:`.checks`): a row per statistic with its discrepancy kind
        (``pair X²``, ``log odds ratio`` of two binary items, ``sum of pair X²``, ``max |residual|``;
        ``var(cluster slope)``, ``var(cluster covariance)``, ``var(cluster mean)``, ``var(cluster SD)``),
        the variables it reads, its value on the data, the replications' mean and SD, and its PPP
        (near 0: misfit). For models with bernoulli or ordinal items or two levels (random slopes,
        loadings and variances, or a fixed slope that may vary over clusters)."""
        return self._predictive_checks(draws, seed, required=True).table()

    def plot_predictive_checks(self, path: str | Path | None = None, draws: int = 500, seed: int | None = None):
        """The checks of :meth:`predictive_checks` as a matplotlib figure
        (:func:`~..plots.checks.check_figure`): the item pairs' X² PPPs as a triangle, then per
        summary and cluster-level statistic the replicated values' histogram against the data's
        value; saved to ``path`` if given."""
        checks = self._predictive_checks(draws, seed, required=True)
        items = categorical_items(self._draws_plan_data[1])
        pair_ppp = None
        if len(items) > 1:
            pair_ppp = np.full((len(items), len(items)), np.nan)
            for statistic in checks.statistics:
                if statistic.discrepancy == PAIR_X2:
                    a, b = (items.index(v) for v in statistic.variables.split(", "))
                    pair_ppp[b, a] = statistic.ppp
        panels = [(f"{s.discrepancy}: {s.variables}" if s.discrepancy not in (SUM_X2, MAX_RESIDUAL) else s.discrepancy,
                   s.observed, s.replicated, s.ppp) for s in checks.statistics if s.discrepancy not in (PAIR_X2, PAIR_LOR)]
        return check_figure(panels, pair_ppp, items, "Posterior predictive checks", path)

    def _predictive_checks(self, draws: int, seed: int | None, required: bool = False) -> PredictiveChecks:
        """:func:`~.checks.predictive_checks` over ``draws`` thinned draws, kept per (draws, seed);
        ``required``: an error for models with nothing to check there."""
        if self.info.get("group"):
            raise UnavailableError("posterior predictive checks of categorical items and cluster-level moments are not "
                                   "available for multiple-group fits; fit.ppp() gives the chi-square PPP of Gaussian "
                                   "random-intercept groups, fit.parameters() and fit.summary() each group's estimates.")
        _, plan, data = self._draws_plan_data
        if required and not applicable(plan):
            raise UnavailableError("these checks read bivariate tables of bernoulli or ordinal items and cluster-level "
                                   "moments of two-level models, and this model has neither; fit.fit_measures() and "
                                   "fit.ppp() check it.")
        kept = self.__dict__.setdefault("_checks", {})
        if (draws, seed) not in kept:
            chosen = thinned(self.idata.posterior["theta"], draws)
            kept[draws, seed] = predictive_checks(Simulator(plan, data), chosen.reshape(-1, chosen.shape[-1]), seed)
        return kept[draws, seed]

    def sample_posterior_predictive(self, draws: int = 500, random_seed: int | None = None) -> xr.Dataset:
        """Data replicated from about ``draws`` posterior draws (:mod:`..simulation.simulator`; the latent
        variables of new clusters drawn afresh, covariates and missing cells kept), stored as the
        DataTree's ``posterior_predictive`` group: each observed variable over (chain, draw, row)."""
        self._one_group("sample_posterior_predictive")
        _, plan, data = self._draws_plan_data
        dataset = predictive_dataset(plan, data, thinned(self.idata.posterior["theta"], draws), random_seed)
        self.idata["posterior_predictive"] = xr.DataTree(dataset)
        return dataset

    def plot_posterior_predictive(self, path: str | Path | None = None, var_names: list[str] | None = None):
        """Replicated against observed data, per variable: the values' distribution and, with
        clusters, the cluster means' and within-cluster SDs' (:func:`~.predictive.plot_predictive`, a
        matplotlib figure), after :meth:`sample_posterior_predictive` (run here with its defaults if
        it was not); saved to ``path`` if given."""
        if "posterior_predictive" not in self.idata.children:
            self.sample_posterior_predictive()
        return plot_predictive(self.idata, "posterior_predictive", path, var_names)

    def prior_sensitivity(self, threshold: float = 0.05) -> pd.DataFrame:
        """Power-scaling sensitivity of every free parameter to the prior and to the likelihood
        (:mod:`.sensitivity`, ArviZ's psense): lhs, op, rhs, level, the two sensitivities and the
        diagnosis ("potential prior-data conflict", "potential strong prior / weak likelihood")
        where a sensitivity exceeds ``threshold``."""
        self._one_group("prior_sensitivity")
        return sensitivity_table(self._sensitivity_tree(), self.table, threshold)

    def plot_prior_sensitivity(self, path: str | Path | None = None, parameters: list[str] | None = None,
                               threshold: float = 0.05, densities: bool = False):
        """Dot plot of each parameter's prior and likelihood sensitivity (:meth:`prior_sensitivity`)
        against ``threshold``, or, with ``densities=True``, its posterior under power-scaled priors and
        likelihoods (arviz-plots' ``plot_psense_dist``); ``parameters`` by name as in ``theta`` (e.g.
        ``"between:fb~~fb"``), else all; saved to ``path`` if given."""
        self._one_group("plot_prior_sensitivity")
        if not densities:
            return sensitivity_plot(self.table, self.prior_sensitivity(threshold), threshold, parameters, path)
        chosen = None if parameters is None else list(free_rows(self.table, parameters)["name"])  # checked
        return sensitivity_densities(self._sensitivity_tree(), chosen, path)

    def _sensitivity_tree(self) -> xr.DataTree:
        if getattr(self, "_sensitivity", None) is None:
            posterior = self.idata.posterior.to_dataset()
            log_prior, conditional = draw_densities(self._model().pymc_model, posterior)
            marginal = strategy_for(self._draws_plan_data[1]).kind == MARGINAL
            self._sensitivity = sensitivity_tree(posterior, log_prior, self.log_likelihood() if marginal else conditional)
        return self._sensitivity

    def _model(self):
        """The fitted Model, or one rebuilt from the syntax, settings and data the fit keeps."""
        if self.source is None:
            self.source = self.rebuild(self)
        return self.source

    def approximate(self, interval: float = 0.95) -> pd.DataFrame:
        """The parameters approximately equal across groups (``group_approx``), per parameter and
        group: the posterior mean of its deviation δ_g = θ_g − μ from the common value, and the
        posterior mean, SD and equal-tailed ``interval`` of its departure from the median group,
        θ_g − median_h θ_h (robust to the groups that depart: they pull μ, not the median);
        ``flagged`` where that interval excludes 0, the group's parameter is not invariant (with two
        groups a difference flags both). Largest departures relative to their SD first."""
        posterior = self.idata.posterior
        if "approximate_deviations" not in posterior:
            raise UnavailableError("this fit has no approximately equal parameters; give group_approx= to bm.Model, "
                                   "e.g. group_approx={'intercepts': 0.1}.")
        approx = self.table[self.table["approx"].notna()]
        priors = {parameter_name(*key): prior for *key, prior in approx[
            ["level", "lhs", "op", "rhs", "approx_prior"]].itertuples(index=False)}
        deviations = posterior["approximate_deviations"].stack(sample=("chain", "draw"))
        departures = deviations - deviations.median("group")  # θ_g − median θ_h: μ cancels
        tail = (1 - interval) / 2
        rows = []
        for name in map(str, deviations["approximate"].values):
            for group in deviations["group"].values:
                draws = departures.sel(approximate=name, group=group).values
                lower, upper = np.quantile(draws, [tail, 1 - tail])
                rows.append({"parameter": name, "group": group,
                             "deviation": float(deviations.sel(approximate=name, group=group).mean()),
                             "departure": draws.mean(), "sd": draws.std(), "lower": lower, "upper": upper,
                             "prior": priors[name], "flagged": bool(lower > 0 or upper < 0)})
        out = pd.DataFrame(rows)
        order = np.argsort(-np.abs(out["departure"] / np.maximum(out["sd"], 1e-12)), kind="stable")
        return out.iloc[order].reset_index(drop=True)

    def _one_group(self, what: str) -> None:
        if self.info.get("group"):
            raise UnavailableError(f"fit.{what}() is not available for multiple-group fits yet; fit.parameters() and "
                                   "fit.summary() give each group's estimates.")

    def frame(self) -> pd.DataFrame:
        """The data of the fit as a DataFrame with its cluster column(s)."""
        return data_frame(self.idata.observed_data.to_dataset(), self.info.get("cluster"))

    def _baseline(self, seed: int | None) -> Fit:
        """The independence model fitted to this fit's data (a model of the fitted model's class)."""
        post = self.idata.posterior
        null = type(self._model())(fit_measures.baseline_syntax(make_plan(self.table)), self.frame(),
                                   cluster=self.info.get("cluster"))
        return null.fit(draws=post.sizes["draw"], tune=post.sizes["draw"], chains=post.sizes["chain"], random_seed=seed,
                        quiet=True)

    def _gaussian_functions(self, what: str | None = None) -> fit_measures.GaussianFunctions:
        """The compiled log-likelihood of a marginal-strategy model (an error for others, and for
        the chi-square measures ``what`` outside the models they cover)."""
        _, plan, data = self._draws_plan_data
        if what is not None:
            fit_measures.check_supported(plan, data, what)
        if getattr(self, "_functions", None) is None:
            self._functions = fit_measures.GaussianFunctions(plan, data)
        return self._functions

    def _group_functions(self) -> dict[str, fit_measures.GaussianFunctions]:
        """The compiled log-likelihood of each group of a multiple-group fit, compiled once."""
        if getattr(self, "_per_group", None) is None:
            model = self._model()
            self._per_group = {g: fit_measures.GaussianFunctions(model.plan.for_group(g), part)
                               for g, part in model.groups.items()}
        return self._per_group

    def plot_cluster_effects(self, name: str, path: str | Path | None = None):
        """Forest plot (a matplotlib figure) of the cluster-specific values of ``name``: a row per
        cluster with its posterior mean and 50% and 95% intervals, a zero line; saved to ``path`` if given."""
        return clusters.forest_plot(self._cluster_draws(name), name, path)

    def departures(self, loadings: float = 0.1, intercepts: float = 0.1, probability: float = 0.9,
                   seed: int | None = None) -> pd.DataFrame:
        """Measurement invariance over many clusters: per cluster and random loading or random intercept of
        an indicator, how far the cluster's value departs from the common one (:mod:`.departures`: the
        between-level residual δ_pj, for a loading λ_pj − mean loading, for an intercept the item's
        between residual once the between factors carry the mean differences).

        ``loadings`` and ``intercepts``: the amount a of a departure that matters, in the loading's and
        the item's own units; ``probability``: the posterior probability P(|δ_pj| > a) above which a
        departure is flagged. Columns: cluster, item, kind (loading, intercept), parameter, cluster_mean,
        common_mean, departure_mean, departure_sd (posterior means and SD), amount, probability, flagged.
        Between variables a fit integrated out are drawn given the data per posterior draw (``seed``)."""
        self._one_group("departures")
        departures.check_amounts(loadings, intercepts, probability)
        _, plan, data = self._draws_plan_data
        found = departures.targets(plan)
        between = latent_draws(self.idata.posterior.to_dataset(), plan, data, seed)[BETWEEN]
        used = self.idata.posterior["theta"].sel(chain=between["chain"], draw=between["draw"])
        used = used.transpose("chain", "draw", "parameter").values.reshape(-1, used.sizes["parameter"])
        names = [t.variable for t in found]
        residuals, common = departures.residual_draws(between, used, plan, data, names)
        scale = self._scale()
        units = np.array([scale(name, BETWEEN) for name in names])
        return departures.departure_table(residuals * units, common * units, found, between["unit"].values,
                                          {"loading": loadings, "intercept": intercepts}, probability)

    def plot_departures(self, loadings: float = 0.1, intercepts: float = 0.1, probability: float = 0.9,
                        seed: int | None = None, path: str | Path | None = None):
        """Heatmap (a matplotlib figure) of :meth:`departures`: a row per cluster, a column per random
        loading and intercept, coloured by P(|departure| > amount), flagged cells outlined; saved to
        ``path`` if given."""
        return departures.departure_plot(self.departures(loadings, intercepts, probability, seed), probability, path)

    def diagram(self, path: str | Path | None = None, format: str = "png",
                standardized: bool = False) -> graphviz.Digraph:
        """The path diagram (:mod:`..plots.diagram`) with the posterior mean of each path (of its std.all
        with ``standardized=True``); rendered to ``path`` (PNG, SVG, … by its suffix, else
        ``format``) when given."""
        self._one_group("diagram")
        if standardized:
            return draw(self.table, path, format, self.standardized(), "std.all",
                        "Numbers on the paths: posterior means of the standardized estimates (std.all)")
        return draw(self.table, path, format, self.parameters(), "mean", "Numbers on the paths: posterior means")

    def diagnostics(self) -> pd.DataFrame:
        """The convergence checks, one row per check (index ``check``: r_hat, chain_modes,
        ess_bulk, ess_tail, divergences, tree_depth, e_bfmi) with columns value, threshold, verdict (``ok`` or
        ``warning``) and remedy (what to do, naming the parameters involved; empty when ok).
        R-hat and ESS cover the free and the defined parameters (:mod:`.diagnostics`)."""
        return diagnostics.report(self.idata, self.table)

    def summary(self) -> str:
        """A readable report: data, strategy, sampler, convergence verdict and the parameter estimates,
        laid out as lavaan's ``summary()`` lays them out (:mod:`.report`)."""
        checks = self.diagnostics()
        values, problems = checks["value"], checks.loc[checks["verdict"] == "warning", "remedy"]
        info = self.info
        post = self.idata.posterior
        families = info.get("families") or {}
        columns = [] if not info.get("cluster") else [info["cluster"]] if isinstance(info["cluster"], str) else info["cluster"]
        lines = [
            f"bayes_msem {info.get('version', '')} — Bayesian "
            + (f"cross-classified SEM ({len(columns)} crossed classifications)" if info.get("crossed") else
               f"{['single-level', 'two-level', 'three-level'][len(columns)] if len(columns) < 3 else f'{len(columns) + 1}-level'} SEM"),
            "",
            f"  Observations                 {info['n_rows']}",
            *([f"  Groups ({info['group']}){' ' * max(1, 20 - len(info['group']))}{', '.join(map(str, info['groups']))}"]
              if info.get("group") else []),
        ]
        upper = info.get("n_upper_clusters")
        upper = [upper] if isinstance(upper, int) else upper or []  # one number in fits saved before four levels
        for column, count in zip(columns, [info["n_clusters"], *upper]):
            lines.append(f"  Clusters ({column}){' ' * max(1, 18 - len(column))}{count}")
        lines += [
            f"  Free parameters              {int((self.table['free'].max()) if len(self.table) else 0)}",
            f"  Likelihood strategy          {info['strategy']} ({_strategy_text(info)})",
            *([f"  Response families            {', '.join(f'{v}: {f}' for v, f in families.items())}"] if families else []),
            f"  Sampler                      {info['sampler']}: {post.sizes['chain']} chains x {post.sizes['draw']} draws",
            f"  Divergent transitions        {values['divergences']:.0f}",
            f"  Worst R-hat                  {values['r_hat']:.3f}",
            f"  Smallest bulk / tail ESS     {values['ess_bulk']:.0f} / {values['ess_tail']:.0f}",
            f"  Verdict                      {'converged' if problems.empty else 'check:'}",
            *[f"    - {remedy}" for remedy in problems],
            "",
        ]
        lines += [report.LEGEND, ""]
        parameters = self.parameters()
        if info.get("group"):
            for group in info["groups"]:
                chosen = parameters[parameters["group"] == group].drop(columns="group")
                lines += [f"Group: {group}", "", *report.estimates_text(chosen, families)]
        else:
            lines += report.estimates_text(parameters, families)
        return "\n".join(lines)

    def save(self, path: str | Path) -> Path:
        """Write the fit to one netCDF file (the DataTree plus the table and facts) that :func:`load`
        reads. The file is written beside ``path`` and renamed when complete, so an interrupted save
        leaves no partial file."""
        path = Path(path)
        if not path.parent.is_dir():
            raise MissingFileError(f"cannot save the fit to {path}: the folder {path.parent} does not exist.")
        tree = self.idata.copy()
        tree.attrs = {**tree.attrs, "bayes_msem": json.dumps({
            "table": self.table.to_json(orient="split"),
            "definitions": self.definitions.to_json(orient="split"),
            "info": self.info,
        })}
        partial = path.with_name(f".{path.name}.partial")
        try:
            tree.to_netcdf(partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return path


def compare(fits: Mapping[str, Fit] | Sequence[Fit]) -> pd.DataFrame:
    """Rank fits of the same data by leave-one-cluster-out LOO (:meth:`Fit.loo`, ArviZ's
    ``compare``): best first, with the ELPD difference, its SE and stacking weights. ``fits`` are
    named in a mapping, or numbered "model 1", "model 2", … in a list."""
    if isinstance(fits, (str, bytes)) or not isinstance(fits, (Mapping, Sequence)):
        raise ArgumentTypeError(f"compare takes a list of fits or a mapping name -> fit, got {type(fits).__name__}.")
    named = dict(fits) if isinstance(fits, Mapping) else {f"model {k}": fit for k, fit in enumerate(fits, start=1)}
    if len(named) < 2:
        raise SettingsError("compare needs at least two fits.")
    for name, fit in named.items():
        if not isinstance(getattr(fit, "info", None), Mapping):
            raise ArgumentTypeError(f"compare takes fits (the result of Model.fit or bm.load); {name!r} is of type "
                                    f"{type(fit).__name__}.")
    scales = {name: fit.info.get("scales") or {} for name, fit in named.items()}
    if len({json.dumps(s, sort_keys=True) for s in scales.values()}) > 1:
        raise SettingsError(f"the fits' data were rescaled differently ({scales}); the log-likelihoods of LOO are on "
                            "the fitted scale: fit every model with the same rescale setting.")
    units = {name: fit.log_likelihood()["unit"].values for name, fit in named.items()}
    first, *others = units.items()
    for name, values in others:
        if len(values) != len(first[1]) or (values != first[1]).any():
            raise SettingsError(f"{name!r} and {first[0]!r} were not fitted to the same clusters; LOO compares "
                                "models of the same data only.")
    return az.compare({name: fit.idata for name, fit in named.items()}, var_name="y", round_to="none")


def read_fit(path: str | Path) -> Fit:
    """Read a fit written by :meth:`Fit.save` (its model is not rebuilt: see :func:`..load`)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"load takes the path of a saved fit (a str or Path), got {type(path).__name__}.")
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"no saved fit at {path}.")
    try:
        tree = xr.open_datatree(path).load()
        meta = json.loads(tree.attrs["bayes_msem"])
    except (OSError, ValueError, KeyError) as error:
        raise SavedFitError(f"{path} is not a fit saved by bayes_msem (or it is damaged): {error}") from error
    table = pd.read_json(io.StringIO(meta["table"]), orient="split")
    table = table.astype({"label": object, "prior": object, "random": object})
    table = table.where(table.notna(), None).astype({"fixed": float, "start": float})
    definitions = pd.read_json(io.StringIO(meta["definitions"]), orient="split")
    columns = _TABLE_COLUMNS + [column for column in ("group", "approx", "approx_prior") if column in table]
    return Fit(tree, table[columns], definitions, meta["info"])


def factor_signs(theta: xr.DataArray, table: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """s_f = sign of the first loading per draw (chain, draw), for each factor (level, name) without
    a fixed loading."""
    signs = {}
    for (level, factor), rows in table[table["op"] == "=~"].groupby(["level", "lhs"], sort=False):
        if (rows["fixed"].fillna(0) != 0).any():
            continue
        first = rows.iloc[0]
        signs[(level, factor)] = np.where(theta.isel(parameter=first["free"] - 1).transpose("chain", "draw").values < 0, -1.0, 1.0)
    return signs


def align_scores(scores: xr.DataArray, signs: dict[tuple[str, str], np.ndarray]) -> xr.DataArray:
    """The sampled scores (chain, draw, unit, variable) of each reflected factor times its s_f."""
    level = str(scores.name).removeprefix("scores_").replace("single", "")
    variable = scores.dims[3]
    factor = np.ones((scores.sizes["chain"], scores.sizes["draw"], 1, scores.sizes[variable]))
    for k, name in enumerate(scores[variable].values):
        factor[..., 0, k] = signs.get((level, str(name)), 1.0)
    scores = scores.transpose("chain", "draw", ...)
    return scores.copy(data=scores.values * factor)


def align_signs(theta: xr.DataArray, table: pd.DataFrame) -> xr.DataArray:
    """Undo reflection of factors without a fixed loading: their first loading becomes positive.

    With s_f = sign(first loading of f) per draw (:func:`factor_signs`), every parameter is
    multiplied by s_lhs · s_rhs (s = 1 for observed variables; variances are unchanged).
    """
    signs = factor_signs(theta, table)
    if not signs:
        return theta
    theta = theta.transpose("chain", "draw", "parameter")
    factor = np.ones(theta.shape)
    for free, rows in table[table["free"] > 0].groupby("free"):
        row = rows.iloc[0]
        sign = signs.get((row["level"], row["lhs"]), 1.0) * signs.get((row["level"], row["rhs"]), 1.0)
        factor[..., free - 1] = np.asarray(sign)
    return theta.copy(data=theta.values * factor)


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_FUNCTIONS = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs}


def evaluate_definitions(theta: xr.DataArray, table: pd.DataFrame, definitions: pd.DataFrame) -> xr.DataArray:
    """Evaluate each ``name := expression`` on every draw; labels stand for their parameters."""
    values: dict[str, xr.DataArray] = {}
    for label, free in table.loc[table["label"].notna(), ["label", "free"]].drop_duplicates("label").itertuples(index=False):
        values[label] = theta.isel(parameter=free - 1, drop=True) if free > 0 else float(table.loc[table["label"] == label, "fixed"].iloc[0])
    results = []
    for name, expression in definitions[["name", "expression"]].itertuples(index=False):
        result = _evaluate(ast.parse(expression.replace("^", "**"), mode="eval").body, values, expression)
        values[name] = result
        results.append(xr.zeros_like(theta.isel(parameter=0, drop=True), dtype=float) + result)
    return xr.concat(results, dim="definition").assign_coords(definition=definitions["name"].to_list())


def check_definitions(table: pd.DataFrame, definitions: pd.DataFrame) -> None:
    """Raise ``ValueError`` for a definition that names an unknown label or uses an operation the
    evaluator does not know, by evaluating every definition once at θ = 1."""
    if len(definitions):
        theta = xr.DataArray(np.ones(max(int(table["free"].max()), 1)), dims="parameter")
        with np.errstate(all="ignore"):
            evaluate_definitions(theta, table, definitions)


def _evaluate(node: ast.AST, values: dict, expression: str):
    """A small arithmetic evaluator: numbers, labels, + − × ÷ ^, unary minus and exp/log/sqrt/abs."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in values:
            raise SpecificationError(f"'{node.id}' in the definition '{expression}' is not a parameter label or defined name.")
        return values[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left, values, expression), _evaluate(node.right, values, expression))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, values, expression)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and len(node.args) == 1:
        return _FUNCTIONS[node.func.id](_evaluate(node.args[0], values, expression))
    raise SpecificationError(f"cannot evaluate the definition '{expression}': only numbers, labels, + - * / ^ and "
                             f"{', '.join(_FUNCTIONS)} are allowed.")


