"""The user's entry point: ``Model(syntax, data, cluster=...)`` runs the pipeline stages in order.

syntax ─parse→ user table ─defaults→ parameter table ─plan→ matrices and features (:mod:`.spec`);
DataFrame ─validate→ clustered data (:mod:`.data`); features ─registry→ likelihood strategy
(:mod:`.likelihood`); plan + data ─build→ ``pm.Model`` ─sample→ DataTree (:mod:`.sampling`)
─results→ :class:`Fit` (:mod:`.results`). See docs/architecture.md.
The PyMC model is built on first use; nutpie compiles once per model structure, so a
model of the same structure on new data starts sampling without compiling.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import graphviz
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from .data.clustered import (
    ClusteredData,
    DataError,
    check_group_sizes,
    check_within_variation,
    cluster_ids,
    group_values,
    recode,
    validate,
    warn_scales,
)
from .data.scales import parameter_factors, rescaled, variable_scales
from .errors import SettingsError, UnavailableError
from .likelihood.families import Family, family_columns, ordinal_levels, parse_family
from .likelihood.registry import strategy_for
from .likelihood.slopes import CONDITIONAL_CHOL, CONDITIONAL_MEAN, draw_random_effects
from .likelihood.strategy import MARGINAL, Strategy
from .plots.diagram import draw
from .results.diagnostics import failed_chains, is_start_failure, start_failure, warn
from .results.fit import Fit, check_definitions, read_fit
from .results.predictive import plot_predictive, predictive_dataset
from .sampling.build import build_model, prior_theta
from .sampling.samplers import check_settings, nutpie_model, run_sampler
from .simulation.design import ClusterSize, ParameterValues, simulate_data
from .spec.arguments import check_count, check_fit_arguments, check_groups, check_model_arguments, check_seed
from .spec.constraints import constraint_rows, solve_constraints
from .spec.groups import group_table, per_group_modifiers
from .spec.plan import Plan, data_variables, make_plan, missing_allowed
from .spec.priors import default_priors
from .spec.syntax import parse
from .spec.table import NOMINAL_SEPARATOR, SpecificationError, assign_roles, build_table, definitions, expand_nominal


class Model:
    """A multilevel SEM written in lavaan syntax, tied to a data set.

    Parameters
    ----------
    syntax : lavaan model syntax, with ``level:`` blocks for two-level models.
    data : a DataFrame with one row per unit (the lowest level).
    cluster : the column that identifies clusters (two-level models), or the columns of the clusters
        of each level, lowest first (e.g. ``["class", "school"]`` for three levels, one more per level).
    std_lv : identify factors by fixing their variances to 1 instead of their first loading.
    priors : default priors per kind of parameter, e.g. ``{"loading": "normal(0, 5)"}``.
    family : the response family of non-Gaussian variables, e.g. ``{"y4": "bernoulli"}`` (links:
        ``"bernoulli(probit)"``, ``"ordinal(logit)"``, ``"bernoulli(cloglog)"``; also ``"poisson"`` and
        ``"negbinomial"`` and ``"gamma"``, whose lowest-level ``y ~~ y`` is their dispersion, and
        ``"binomial(n=trials)"``, successes out of the trials in the column ``trials``, and ``"tobit(lower=0)"``,
        censored normal, with limits ``lower``, ``upper`` or both, numbers or columns, ``"interval(upper=hi)"``,
        a normal response known to lie between the value in its own column and the one in ``hi``, and ``"nominal"``,
        multinomial logit with one latent response ``y#k`` per category past the first); the others are Gaussian.
    ordered : ordinal variables, as in lavaan (cumulative probit with thresholds ``y | t1 + ...``).
    group : the column of the groups of a multiple-group model (lavaan's ``group``): the model holds
        in each group with parameters of its own, except those ``group_equal`` makes equal
        (lavaan's ``group.equal`` classes: ``"loadings"``, ``"intercepts"``, ``"residuals"``,
        ``"means"``, ``"regressions"``, ``"lv.variances"``, ...) but for the parameters named in
        ``group_partial`` (``"visual =~ x2"``). Labelled parameters are equal across groups.
        ``group_approx`` makes classes approximately equal (blavaan's ``wiggle``): each group's
        parameter is a common mean plus a deviation with the prior given, a normal's SD
        (``{"intercepts": 0.1}``) or a prior centred at 0 (``{"intercepts": "cauchy(0, 0.1)"}``,
        sparse: finds the few groups that depart); :meth:`Fit.approximate` reports and flags them.
    crossed : the columns of ``cluster`` are crossed classifications, not nested levels (pupils in
        schools and in neighbourhoods, responses in persons and in items): a block per classification,
        ``level: school`` and ``level: neighbourhood``, each variable of the within level named in a
        classification's block with a random intercept over it (docs/syntax.md, Crossed classifications).
    rescale : fit with every continuous variable divided by its standard deviation (for variables on
        very different scales, which the default priors and the sampler's adaptation handle badly);
        :meth:`Fit.parameters`, ``summary``, ``cluster_effects`` and ``latent_scores`` report in the
        variables' own units (:mod:`.data.scales`). Priors written in the syntax or ``priors`` then apply
        to the rescaled variables, as do ``fit.idata`` and LOO.
    """

    def __init__(self, syntax: str, data: pd.DataFrame, cluster: str | list[str] | None = None, *,
                 std_lv: bool = False, priors: Mapping[str, str] | None = None,
                 family: Mapping[str, str] | None = None, ordered: Sequence[str] = (), rescale: bool = False,
                 group: str | None = None, group_equal: Sequence[str] = (), group_partial: Sequence[str] = (),
                 group_approx: Mapping[str, float | str] | None = None, crossed: bool = False):
        check_model_arguments(syntax, data, cluster, std_lv, priors, family, ordered, rescale, crossed)
        check_groups(group, group_equal, group_partial, group_approx)
        if crossed and group is not None:
            raise SettingsError("multiple groups (group=) of a cross-classified model (crossed=True) are not supported "
                                "yet; fit each group's rows as a model of its own.")
        self._arguments = dict(data=data, cluster=cluster, std_lv=std_lv, priors=priors, family=family, ordered=ordered,
                               rescale=rescale, group=group, group_equal=group_equal, group_partial=group_partial,
                               group_approx=group_approx, crossed=crossed)
        self.syntax = syntax
        self.crossed = crossed
        self.cluster = cluster
        self.std_lv = std_lv
        self.priors = dict(priors or {})
        self.families, data, nominal = nominal_families(response_families(family, ordered), data)
        clusters = [] if cluster is None else [cluster] if isinstance(cluster, str) else list(cluster)
        groups = group_values(data, group, clusters) if group is not None else []
        user = expand_nominal(per_group_modifiers(parse(syntax), groups), nominal)
        categories = {v: len(ordinal_levels(pd.to_numeric(data[v], errors="coerce").to_numpy(float)))
                      for v, f in self.families.items() if f.has_thresholds and v in getattr(data, "columns", ())}
        families = {v: f.name for v, f in self.families.items()}
        self.table = build_table(user, cluster, std_lv, families, categories)
        roles = assign_roles(self.table[self.table["op"].isin(["=~", "~", "~~", "~1"])])  # the same in every group
        self.group, self.group_equal, self.group_partial = group, list(group_equal), list(group_partial)
        self.group_approx = dict(group_approx or {})
        if groups:
            self.table = group_table(self.table, groups, group_equal, group_partial, group_approx, families)
        self.definitions = definitions(user)
        self.constraints = constraint_rows(user)
        solve_constraints(self.table, self.constraints)  # refuses bad constraints here, not at the first fit
        check_definitions(self.table, self.definitions)  # these two fail here, not at the first fit
        default_priors(self.priors)
        variables, between, upper = data_variables(roles, crossed)
        if groups:
            check_group_sizes(data, group, next(iter(roles.values())).observed, clusters)
        auxiliary = family_columns(self.families)
        validated = validate(data, variables, cluster, between, missing_allowed(roles), upper, auxiliary, crossed)
        self.data: ClusteredData = recode(validated, {v: functools.partial(f.codes, columns=validated.values)
                                                      for v, f in self.families.items()})
        coded = data.assign(**{v: pd.Series(self.data.column(v), index=self.data.row_labels).reindex(data.index)
                               for v in self.families}) if groups else data  # the categories' codes of all the data
        self.groups: dict[str, ClusteredData] = {
            g: validate(coded[coded[group] == g], variables, cluster, between, missing_allowed(roles), upper, auxiliary,
                        crossed)
            for g in groups}
        continuous = [v for v in variables if v not in self.families]  # not the columns families read
        self.scales = variable_scales(self.data, continuous) if rescale else {}
        if rescale:
            if len(self.constraints):
                raise SpecificationError("rescale=True cannot carry constraints written with ==, < or > other than "
                                         "a == b between labels: their numbers are in the variables' own units. "
                                         "Rescale the data yourself (e.g. divide by a power of ten) and fit without rescale.")
            parameter_factors(self.table, self.scales)  # refuses models the rescaling would change
            self.data = rescaled(self.data, self.scales)
            self.groups = {g: rescaled(part, self.scales) for g, part in self.groups.items()}
        warn_scales(self.data, continuous)
        self._plan: Plan | None = None
        self._pymc_model: pm.Model | None = None
        self._strategy: Strategy | None = None  # the registry's choice unless set (benchmarks force one)

    def parameter_table(self) -> pd.DataFrame:
        """The full parameter table: the user's rows plus the defaults, with free-parameter numbers."""
        return self.table.copy()

    def diagram(self, path: str | Path | None = None, format: str = "png") -> graphviz.Digraph:
        """The path diagram (:mod:`.plots.diagram`), paths labelled with their labels and fixed values;
        rendered to ``path`` (PNG, SVG, … by its suffix, else ``format``) when given."""
        return draw(self.table, path, format)

    @property
    def plan(self) -> Plan:
        """Matrices, free parameters and the features that choose the likelihood strategy (raises
        for unsupported features)."""
        if self._plan is None:
            plan = make_plan(self.table, self.priors, {v: str(f) for v, f in self.families.items()},
                             self.data.has_missing, self.constraints, self.crossed)
            check_within_variation(plan, self.data)
            self._plan = plan
        return self._plan

    @property
    def strategy(self) -> Strategy:
        """The likelihood strategy of the model (:mod:`.likelihood.registry`)."""
        return self._strategy or strategy_for(self.plan)

    @property
    def pymc_model(self) -> pm.Model:
        """The PyMC model, for users who want to go further."""
        if self._pymc_model is None:
            self._pymc_model = build_model(self.plan, self.data, self.groups, self.strategy)
        return self._pymc_model

    def _structure(self) -> str:
        """A key for everything but the data: models with equal keys share compiled samplers."""
        sampled = self.plan.random or self.strategy.kind != MARGINAL  # latent variables per row or cluster
        shape = [self.data.n_units(rank) for rank in range(self.data.n_levels)] if sampled else None
        return json.dumps([self.table.to_json(), self.constraints.to_json(), sorted(self.priors.items()),
                           self.strategy.name, shape, self.data.has_missing, sorted(self.plan.families.items())])

    def fit(self, draws: int = 1000, tune: int = 1000, chains: int = 4, random_seed: int | None = None,
            sampler: str = "nutpie", progressbar: bool | str = "auto", target_accept: float = 0.8,
            quiet: bool = False) -> Fit:
        """Sample the posterior with NUTS and return a :class:`Fit`; warns (:class:`SamplingWarning`)
        for every failed convergence check of :meth:`Fit.diagnostics`, with its remedy.

        ``progressbar``: the sampler's progress bar; ``"auto"`` shows it in a terminal or notebook.
        ``quiet``: print nothing (neither the line that says a model structure is being compiled
        nor the progress bar)."""
        check_settings(draws, tune, chains, sampler)
        check_fit_arguments(random_seed, target_accept, progressbar, quiet)
        started = time.perf_counter()
        model = self.pymc_model
        compiled = nutpie_model(model, self._structure(), quiet) if sampler == "nutpie" else None
        compiled_at = time.perf_counter()
        try:
            idata = run_sampler(model, compiled, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                                sampler=sampler, progressbar=progressbar and not quiet, target_accept=target_accept)
        except Exception as error:  # nutpie's RuntimeError, PyMC's SamplingError or ParallelSamplingError
            if not is_start_failure(error):
                raise
            raise start_failure("no chain could evaluate the log density at its start", model.point_logps()) from None
        if len(failed_chains(idata)) == chains:
            raise start_failure("no chain moved from its starting values (every transition divergent)",
                                model.point_logps())
        finished = time.perf_counter()
        if CONDITIONAL_MEAN in idata.posterior:  # random slopes were integrated out: draw them
            names = [r.name for r in self.plan.random]
            posterior = draw_random_effects(idata.posterior.to_dataset(), cluster_ids(self.data), names, random_seed)
            idata["posterior"] = xr.DataTree(posterior)
        elif self.groups and self.plan.random:  # a group's (g1::…): cluster effects are not reported by group yet
            helpers = [v for v in idata.posterior.data_vars if v.split("::")[-1] in (CONDITIONAL_MEAN, CONDITIONAL_CHOL)]
            idata["posterior"] = xr.DataTree(idata.posterior.to_dataset().drop_vars(helpers))
        observed = self.data.to_dataset()
        if self.groups:  # each row's group, for the rebuilt model of a saved fit
            of_row = {label: g for g, part in self.groups.items() for label in part.row_labels}
            observed[self.group] = ("row", [of_row[label] for label in self.data.row_labels])
        idata["observed_data"] = xr.DataTree(observed)
        info = {
            "version": _version(), "cluster": self.cluster, "n_rows": self.data.n_rows,
            "n_clusters": self.data.n_clusters,
            "n_upper_clusters": [self.data.n_units(rank) for rank in range(2, self.data.n_levels)],
            "crossed": self.crossed, "strategy": self.strategy.kind,
            "sampler": sampler,
            "syntax": self.syntax, "std_lv": self.std_lv, "families": dict(self.plan.families), "priors": self.priors,
            "scales": self.scales,
            "seconds_compile": compiled_at - started,
            "seconds_sample": finished - compiled_at,
        }
        if self.groups:
            info |= {"group": self.group, "groups": list(self.groups), "group_equal": self.group_equal,
                     "group_partial": self.group_partial, "group_approx": self.group_approx}
        fit = Fit.from_draws(idata, self.table, self.definitions, info)
        fit.source = self
        warn(fit.diagnostics())  # one SamplingWarning per failed convergence check
        return fit

    def variant(self, **changes) -> Model:
        """The same model with some of its settings changed (any argument of :class:`Model` but the
        syntax and the data), e.g. ``model.variant(group_equal=["loadings"])``."""
        return type(self)(self.syntax, **{**self._arguments, **changes})

    def _one_group(self, what: str) -> None:
        if self.groups:
            raise UnavailableError(f"{what} is not available for multiple-group models yet.")

    @classmethod
    def from_fit(cls, fit: Fit) -> Model:
        """The model of ``fit``, rebuilt from the syntax, settings and data it keeps."""
        info = fit.info
        return cls(info["syntax"], fit.frame(), cluster=info.get("cluster"), std_lv=info.get("std_lv", False),
                   priors=info.get("priors"), family=info.get("families"), group=info.get("group"),
                   group_equal=info.get("group_equal", ()), group_partial=info.get("group_partial", ()),
                   group_approx=info.get("group_approx"), crossed=info.get("crossed", False))

    def sample_prior_predictive(self, draws: int = 500, random_seed: int | None = None) -> xr.DataTree:
        """θ drawn from the priors and one data set replicated from each (:mod:`.simulation.simulator`): a
        DataTree with groups ``prior`` (θ), ``prior_predictive`` (each observed variable over chain,
        draw, row) and ``observed_data``, for :func:`~.results.predictive.plot_predictive` or ArviZ."""
        self._one_group("sample_prior_predictive")
        check_count("draws", draws)
        check_seed("random_seed", random_seed)
        theta = xr.DataArray(prior_theta(self.pymc_model, self.plan, draws, random_seed)[None],
                             dims=("chain", "draw", "parameter"),
                             coords={"chain": [0], "draw": np.arange(draws), "parameter": self.plan.parameters["name"]})
        seed = None if random_seed is None else random_seed + 1
        return xr.DataTree.from_dict({
            "prior": xr.Dataset({"theta": theta}),
            "prior_predictive": predictive_dataset(self.plan, self.data, theta.values, seed),
            "observed_data": self.data.to_dataset(),
        })

    def simulate(self, parameters: ParameterValues, n_clusters: int | None = None,
                 cluster_size: ClusterSize | list[ClusterSize] | None = None, seed: int | None = None, *,
                 covariates: pd.DataFrame | None = None, missing: float | Mapping[str, float] | None = None
                 ) -> pd.DataFrame:
        """One data set drawn from the model at ``parameters`` (:mod:`.simulation.simulator`: every latent
        variable, random intercept and random parameter of new clusters drawn afresh, non-Gaussian
        responses from their family), as a DataFrame with the cluster column(s), in the variables'
        own units (with ``rescale=True`` too).

        ``parameters``: a value per free parameter, named as in θ's ``parameter`` dimension (e.g.
        ``{"between:fb=~y2": 0.8}``; ``"y~x"`` in single-level models) or by label, or a table with
        lhs, op, rhs, level and value (else mean) columns, such as ``fit.parameters()``.

        The design: without ``n_clusters`` the model's data (clusters, covariates, missing cells);
        else ``n_clusters`` clusters of the highest level (rows of a single-level model), each of
        ``cluster_size`` units of the level below (a number, or (low, high) for sizes uniform on
        low..high; a list, lowest first, with three or more levels, e.g. ``[10, 4]`` for 10 rows per
        class and 4 classes per school), with every exogenous observed covariate drawn N(0, 1)
        independently per unit of its level; or the clusters and covariates of a ``covariates``
        frame (one row per unit, with the cluster column(s)). ``missing``: a rate, or a rate per
        variable, at which the lowest level's modelled variables lose cells completely at random.
        Ids count from 0 at each level.
        """
        self._one_group("simulate")
        return simulate_data(self.plan, self.data, self.scales, self.cluster, parameters, n_clusters, cluster_size,
                             seed, covariates, missing)

    def plot_prior_predictive(self, path: str | Path | None = None, draws: int = 500, random_seed: int | None = None,
                              var_names: list[str] | None = None):
        """Prior predictive against observed data (:func:`~.results.predictive.plot_predictive`); saved to ``path`` if given."""
        return plot_predictive(self.sample_prior_predictive(draws, random_seed), "prior_predictive", path, var_names)


def load(path: str | Path) -> Fit:
    """Read a fit written by :meth:`Fit.save`; its :class:`Model` is rebuilt from the syntax,
    settings and data the file keeps when a result needs it."""
    fit = read_fit(path)
    fit.rebuild = Model.from_fit
    return fit


def response_families(family: Mapping[str, str] | None, ordered: Sequence[str]) -> dict[str, Family]:
    """The non-Gaussian variables and their families: ``family`` entries, and ``ordered`` ones as
    cumulative probit (lavaan's ordinal model) unless ``family`` says otherwise."""
    families = {name: Family("ordinal", "probit") for name in ordered}
    families |= {name: parse_family(text) for name, text in (family or {}).items()}
    return {name: f for name, f in families.items() if f.name != "gaussian"}


def nominal_families(families: Mapping[str, Family], data: pd.DataFrame
                     ) -> tuple[dict[str, Family], pd.DataFrame, dict[str, int]]:
    """Each nominal variable y with K categories (its distinct values) as its K − 1 latent responses
    y#1 … y#(K−1) (:func:`~.spec.table.expand_nominal`): the families with y's replaced by one per
    response (``nominal(logit, k=k)``), the data with a column per response holding y's values, and
    K per nominal variable. The families and columns of a saved fit's responses are read back as y's."""
    items = {name.rsplit(NOMINAL_SEPARATOR, 1)[0] if f.category else name: f.link
             for name, f in families.items() if f.name == "nominal"}
    if not items or not isinstance(data, pd.DataFrame):
        return dict(families), data, {}
    columns = {item: data[item] if item in data else data[f"{item}{NOMINAL_SEPARATOR}1"] for item in items
               if item in data or f"{item}{NOMINAL_SEPARATOR}1" in data}
    categories = {item: len(ordinal_levels(pd.to_numeric(values, errors="coerce").to_numpy(float)))
                  for item, values in columns.items()}
    for item, count in categories.items():
        if count < 2:
            raise DataError(f"{item!r} is declared nominal but has {count} distinct value(s); a nominal variable "
                            "needs at least two categories: check its coding or drop it from the model")
    responses = {f"{item}{NOMINAL_SEPARATOR}{k}": (item, k) for item, K in categories.items() for k in range(1, K)}
    kept = {name: f for name, f in families.items() if f.name != "nominal"}
    kept |= {name: Family("nominal", items[item], (("k", str(k)),)) for name, (item, k) in responses.items()}
    return kept, data.assign(**{name: columns[item] for name, (item, _) in responses.items()}), categories


def _version() -> str:
    try:
        return version("bayes_msem")
    except PackageNotFoundError:
        return "dev"
