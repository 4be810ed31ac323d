"""Convergence checks of a fit, each with a verdict and a remedy that says what to do.

ArviZ computes the statistics (``arviz_stats.rhat``, ``ess``, ``bfmi``) over the free
parameters θ and the defined parameters; the sampler statistics come from the DataTree's
``sample_stats`` (nutpie, PyMC, numpyro and blackjax name them differently).

=============  ==========================================  ========================
check          value                                       warning when
=============  ==========================================  ========================
r_hat          largest rank-normalised split R-hat         above 1.01
chain_modes    largest gap between two chains' means, in   above 2
               within-chain SDs
ess_bulk       smallest bulk effective sample size         below 100 per chain
ess_tail       smallest tail effective sample size         below 100 per chain
divergences    number of divergent transitions             above 0
tree_depth     fraction of draws at the maximum tree depth above 0
e_bfmi         smallest E-BFMI over the chains             below 0.3
=============  ==========================================  ========================

A check whose sampler statistic the sampler did not record is left out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import Error
from ..spec.plan import parameter_name, row_names

R_HAT_MAX = 1.01
ESS_PER_CHAIN = 100
E_BFMI_MIN = 0.3
MODE_GAP = 2.0  # chains whose means lie this many within-chain SDs apart sample different modes
MAX_TREE_DEPTH = 10  # the default of nutpie, PyMC, numpyro and blackjax
STRONGER_PRIOR = "gamma(2, 2)[sd]"  # zero density at SD 0: keeps a variance off the boundary
_SHOWN = 3  # parameters named in a remedy
_COLUMNS = ["value", "threshold", "verdict", "remedy"]


class SamplingWarning(UserWarning):
    """A failed convergence check of a fit; the message names the parameters and the remedy."""


@dataclass(frozen=True)
class _Parameters:
    """What the remedies name: the draws (chain, draw, parameter) of θ and the defined parameters
    in lavaan form, the names of θ's, the syntax of a stronger prior for each variance in θ, and
    the reparameterisation to suggest."""

    draws: xr.DataArray
    free: list[str]
    variances: dict[str, str]
    reparameterise: str


def report(idata: xr.DataTree, table: pd.DataFrame) -> pd.DataFrame:
    """One row per check (index ``check``): its value, threshold, verdict (``ok`` or ``warning``)
    and, for a warning, a remedy naming the parameters involved (empty when ok)."""
    parameters = _parameter_draws(idata, table)
    stats = idata["sample_stats"].to_dataset() if "sample_stats" in idata.children else xr.Dataset()
    rows = {"r_hat": _r_hat(parameters), "chain_modes": _chain_modes(parameters), "ess_bulk": _ess(parameters, "bulk"), "ess_tail": _ess(parameters, "tail")}
    if "diverging" in stats:
        rows["divergences"] = _divergences(stats["diverging"], parameters)
    saturated = _saturated(stats)
    if saturated is not None:
        rows["tree_depth"] = _tree_depth(saturated, parameters)
    if "energy" in stats:
        rows["e_bfmi"] = _e_bfmi(stats["energy"], parameters)
    return pd.DataFrame.from_dict(rows, orient="index", columns=_COLUMNS).rename_axis("check")


class SamplingError(Error, RuntimeError):
    """Every chain failed: no chain could leave its starting values."""


_START_FAILURES = ("All initialization points failed", "Initial evaluation of model at starting point failed",
                   "Bad initial energy")


def is_start_failure(error: BaseException) -> bool:
    """Whether a sampler's error says that the log density could not be evaluated at the start
    (nutpie's "All initialization points failed", PyMC's "Initial evaluation … failed" and "Bad
    initial energy")."""
    return any(text in str(error) for text in _START_FAILURES)


def failed_chains(idata: xr.DataTree) -> list[int]:
    """The chains that never moved: every transition divergent, or every draw of θ the same."""
    theta = idata.posterior["theta"].transpose("chain", "draw", ...).values
    still = (theta == theta[:, :1]).all(axis=(1, 2)) & (theta.shape[2] > 0)
    stats = idata.get("sample_stats")
    diverging = (stats["diverging"].transpose("chain", ...).values.astype(bool).all(axis=1)
                 if stats is not None and "diverging" in stats else np.zeros(len(still), dtype=bool))
    return [chain for chain in range(theta.shape[0]) if diverging[chain] or still[chain]]


def start_failure(what: str, log_densities: dict[str, float]) -> SamplingError:
    """The error for a fit whose every chain failed (``what``), naming the terms of the log density
    at the starting values (PyMC's ``point_logps``) that make it impossible or too steep."""
    terms = {name: float(value) for name, value in log_densities.items()}
    impossible = [name for name, value in terms.items() if not np.isfinite(value)]
    if impossible:
        where = f"the log density is {terms[impossible[0]]} at the starting values (term {', '.join(impossible)})"
    else:
        worst = min(terms, key=terms.get)
        where = (f"at the starting values the log density is {sum(terms.values()):.3g}, its term {worst!r} "
                 f"{terms[worst]:.3g}: too steep for any step")
    return SamplingError(
        f"every chain failed: {what}; {where}. Starting values are the start() values written in the syntax, "
        "else come from the data: check written start() values (a count's intercept is on the log scale, a binary "
        "item's on the logit scale), the priors, and variables on very different scales (rescale=True).")


def warn(checks: pd.DataFrame) -> None:
    """One :class:`SamplingWarning` per failed check of a :func:`report`, with its remedy."""
    for remedy in checks.loc[checks["verdict"] == "warning", "remedy"]:
        warnings.warn(remedy, SamplingWarning, stacklevel=3)


def _lavaan_name(level: str, lhs: str, op: str, rhs: str) -> str:
    """A parameter as written in lavaan syntax, with its level: ``f =~ y2 (within)``."""
    name = f"{lhs} {op} {rhs}".strip()
    return f"{name} ({level})" if level else name


def _parameter_draws(idata: xr.DataTree, table: pd.DataFrame) -> _Parameters:
    """The draws of θ and the defined parameters, named in lavaan form (``ind (defined)`` for
    ``ind := …``); each variance's stronger prior; std_lv=True as the reparameterisation of
    models with factors."""
    theta_names = pd.Series(row_names(table), index=table.index)
    first = table[table["free"] > 0].drop_duplicates("free")
    names, variances = {}, {}
    for index, level, lhs, op, rhs in first[["level", "lhs", "op", "rhs"]].itertuples():
        own = theta_names[index] != parameter_name(level, lhs, op, rhs)  # a group's own parameter
        group = f" [{table.at[index, 'group']}]" if own else ""
        name = names[theta_names[index]] = _lavaan_name(level, lhs, op, rhs) + group
        if op == "~~" and lhs == rhs:
            block = f" in the {level} block" if level else ""
            variances[name] = f'{lhs} ~~ prior("{STRONGER_PRIOR}")*{lhs}{block}'
    posterior = idata.posterior
    theta = posterior["theta"].transpose("chain", "draw", "parameter")
    parts = [theta.assign_coords(parameter=[names[str(p)] for p in theta["parameter"].values])]
    if "defined" in posterior:
        defined = posterior["defined"].rename(definition="parameter").transpose("chain", "draw", "parameter")
        parts.append(defined.assign_coords(parameter=[f"{p} (defined)" for p in defined["parameter"].values]))
    factors = " (std_lv=True identifies factors by their variances)" if (table["op"] == "=~").any() else ""
    free = [str(p) for p in parts[0]["parameter"].values]
    return _Parameters(xr.concat(parts, dim="parameter"), free, variances, f"reparameterise{factors}")


def _row(value: float, threshold: float, failed: bool, remedy: str) -> list:
    """A report row: the remedy only for a failed check."""
    return [value, threshold, "warning" if failed else "ok", remedy if failed else ""]


def _r_hat(parameters: _Parameters) -> list:
    """The largest R-hat; a remedy naming the parameters above the threshold (non-finite values:
    a chain that did not move) and, among them, variances whose posterior reaches zero."""
    draws = parameters.draws
    if draws.sizes["chain"] < 2:
        return _row(np.nan, R_HAT_MAX, True, "R-hat needs two or more chains to compare: rerun with chains=4.")
    r_hat = azs.rhat(draws).to_series().fillna(np.inf)
    worst = r_hat[r_hat > R_HAT_MAX].sort_values(ascending=False)
    longer = max(2000, 2 * draws.sizes["draw"])
    remedy = (f"R-hat above {R_HAT_MAX} for {_listed(worst, '{:.3f}')}: the chains disagree; run more tuning "
              f"and draws (tune={longer}, draws={longer})."
              + _prior_advice(parameters, worst.index))
    return _row(float(r_hat.max()), R_HAT_MAX, len(worst) > 0, remedy)


def _chain_modes(parameters: _Parameters) -> list:
    """The largest gap between two chains' means, (max_c m_c − min_c m_c) / s̄ with s̄ the mean
    within-chain SD, over the parameters. Chains of one posterior differ by about s̄/√ESS; a gap
    of several SDs means chains stuck in separate modes (e.g. a factor whose loadings flip sign),
    which more draws do not fix."""
    draws = parameters.draws
    if draws.sizes["chain"] < 2:
        return _row(np.nan, MODE_GAP, False, "")
    means, sds = draws.mean("draw"), draws.std("draw").mean("chain")
    gap = ((means.max("chain") - means.min("chain")) / sds.where(sds > 0)).to_series().fillna(0.0)
    apart = gap[gap > MODE_GAP].sort_values(ascending=False)
    if len(apart):
        worst = means.sel(parameter=apart.index[0])
        chains = f"chains {int(np.argmin(worst.values))} and {int(np.argmax(worst.values))}"
    remedy = (f"the chains sample different modes ({chains if len(apart) else ''}): their means of "
              f"{_listed(apart, '{:.1f}')} lie that many within-chain SDs apart, so the posterior has several "
              "modes or a chain is stuck. If loadings differ in sign, fix each factor's sign: keep a marker "
              "loading (std_lv=False) or give one loading a positive prior, e.g. f =~ prior(\"half_normal(1)\")*y1; "
              "otherwise give starting values near a sensible solution with start(...) and run more chains.")
    return _row(float(gap.max()), MODE_GAP, len(apart) > 0, remedy)


def _ess(parameters: _Parameters, method: str) -> list:
    """The smallest bulk or tail ESS; the remedy names the parameters below 100 per chain and the
    number of draws that would reach it at the current efficiency."""
    draws = parameters.draws
    threshold = ESS_PER_CHAIN * draws.sizes["chain"]
    ess = azs.ess(draws, method=method).to_series().fillna(0.0)
    low = ess[ess < threshold].sort_values()
    needed = draws.sizes["draw"] * threshold / max(float(ess.min()), 1.0)
    remedy = (f"{method} ESS below {threshold} for {_listed(low, '{:.0f}')}: draw more "
              f"(draws={math.ceil(needed / 100) * 100} at this efficiency), or {parameters.reparameterise}."
              + _prior_advice(parameters, low.index))
    return _row(float(ess.min()), threshold, len(low) > 0, remedy)


def _divergences(diverging: xr.DataArray, parameters: _Parameters) -> list:
    """The number of divergent transitions; the remedy names the variance at whose small values
    they concentrate, if one does (see :func:`_concentrated_variance`)."""
    divergent = diverging.transpose("chain", "draw").values.astype(bool).ravel()
    count = int(divergent.sum())
    remedy = (f"{count} divergent transitions: the sampler cannot follow the posterior's curvature; "
              "rerun with target_accept=0.95.")
    variance = _concentrated_variance(_flat(parameters.draws, parameters.variances), divergent) if count else None
    if variance is not None:
        remedy += (f" They concentrate where {variance} is small (a funnel): give it a stronger prior, "
                   f"e.g. {parameters.variances[variance]}.")
    return _row(count, 0, count > 0, remedy)


def _saturated(stats: xr.Dataset) -> xr.DataArray | None:
    """Whether each transition hit the maximum tree depth: nutpie's ``maxdepth_reached``, PyMC's
    ``reached_max_treedepth``, or the JAX samplers' ``tree_depth`` at :data:`MAX_TREE_DEPTH`."""
    for name in ("maxdepth_reached", "reached_max_treedepth"):
        if name in stats:
            return stats[name].astype(bool)
    return stats["tree_depth"] >= MAX_TREE_DEPTH if "tree_depth" in stats else None


def _tree_depth(saturated: xr.DataArray, parameters: _Parameters) -> list:
    """The fraction of transitions at the maximum tree depth; the remedy names the most strongly
    correlated pair of parameters."""
    fraction = float(saturated.mean())
    flat = _flat(parameters.draws, parameters.free)
    correlation = flat.corr().abs().where(~np.eye(flat.shape[1], dtype=bool)).stack().dropna()
    pair = f" (the strongest: {' and '.join(correlation.idxmax())}, |r| = {correlation.max():.2f})" if len(correlation) else ""
    remedy = (f"{fraction:.1%} of the transitions hit the maximum tree depth {MAX_TREE_DEPTH}: strong posterior "
              f"correlations{pair} make the trajectories long; {parameters.reparameterise} or give weakly "
              "identified parameters stronger priors.")
    return _row(fraction, 0.0, fraction > 0, remedy)


def _e_bfmi(energy: xr.DataArray, parameters: _Parameters) -> list:
    """The smallest E-BFMI over the chains; the remedy names the chains below 0.3 and the variance
    whose draws follow the energy most closely (|Spearman r| ≥ 0.5), if any."""
    e_bfmi = azs.bfmi(energy.transpose("chain", "draw")).values
    low = [chain for chain, value in enumerate(e_bfmi) if value < E_BFMI_MIN]
    flat = _flat(parameters.draws, parameters.variances)
    r = flat.corrwith(pd.Series(energy.transpose("chain", "draw").values.ravel()), method="spearman").abs()
    related = (f"the energy follows {r.idxmax()}: give it a stronger prior, e.g. {parameters.variances[r.idxmax()]}"
               if len(r) and r.max() >= 0.5 else f"give the variances stronger priors, e.g. priors={{'variance': "
               f"'{STRONGER_PRIOR}'}}")
    remedy = (f"E-BFMI below {E_BFMI_MIN} in chain(s) {', '.join(map(str, low))}: the posterior is heavy-tailed "
              f"and momentum resampling explores the energy slowly; {related}; or {parameters.reparameterise}.")
    return _row(float(e_bfmi.min()), E_BFMI_MIN, len(low) > 0, remedy)


def _concentrated_variance(variances: pd.DataFrame, divergent: np.ndarray) -> str | None:
    """The variance (a column of draws) whose divergent draws sit lowest among its draws, if they
    sit significantly low: with u the mean percentile rank of the n divergent draws (1/2 with
    sd 1/√(12 n) when divergences are unrelated to the variance), u < min(1/4, 1/2 − 3/√(12 n))."""
    n = int(divergent.sum())
    if variances.empty or n == 0:
        return None
    u = variances.rank(pct=True)[divergent].mean()
    return str(u.idxmin()) if u.min() < min(0.25, 0.5 - 3 / math.sqrt(12 * n)) else None


def _prior_advice(parameters: _Parameters, names: pd.Index) -> str:
    """Advice for the first listed variances whose posterior reaches zero (mean < 2 SD)."""
    flat = _flat(parameters.draws, [n for n in names[:_SHOWN] if n in parameters.variances])
    near_zero = [n for n in flat.columns if flat[n].mean() < 2 * flat[n].std()]
    return "".join(f" {n} piles up near zero: a stronger prior helps, e.g. {parameters.variances[n]}." for n in near_zero)


def _flat(draws: xr.DataArray, names: Iterable[str]) -> pd.DataFrame:
    """Draws of ``names`` as columns, one row per (chain, draw) in chain order."""
    selected = draws.sel(parameter=list(names)).transpose("chain", "draw", "parameter")
    return pd.DataFrame(selected.values.reshape(selected.sizes["chain"] * selected.sizes["draw"], -1), columns=list(names))


def _listed(values: pd.Series, fmt: str) -> str:
    """The first few names with their values, and how many more."""
    shown = ", ".join(f"{name} ({fmt.format(v)})" for name, v in values.iloc[:_SHOWN].items())
    return shown + (f" and {len(values) - _SHOWN} more" if len(values) > _SHOWN else "")
