"""Response families of a generalized linear (latent) model: log p(y | η) for a linear predictor η.

* :class:`Family` (from :func:`parse_family`): the name, link and the data columns it names
  (a binomial's trials), which extra parameters the family needs (:attr:`Family.has_scale`,
  :attr:`Family.has_thresholds`, :attr:`Family.has_dispersion`), the elementwise
  :meth:`Family.logp` and the check of the observed values, :meth:`Family.codes`.
* :func:`interval_logp`: log P(lower < y* < upper) of an interval-censored normal response.
* :func:`log_cdf`, :func:`log_sf`: log F(x) and log(1 − F(x)) of the logit, probit and
  complementary log-log links, finite and accurate in both tails.

Every log-probability is written in log space (softplus, erfcx, log1mexp) so that it and
its gradient stay finite and accurate for |η| far beyond the data, e.g. η = ±30.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt
import scipy.special
from pytensor.tensor import TensorLike

from ..data.clustered import DataError
from ..spec.plan import Plan
from ..spec.table import CENSORED_FAMILIES, DISPERSION_FAMILIES, NOMINAL_SEPARATOR, SpecificationError
from .logit import bernoulli_logit_logp

LINKS: dict[str, tuple[str, ...]] = {
    "gaussian": ("identity",),
    "bernoulli": ("logit", "probit", "cloglog"),
    "ordinal": ("logit", "probit", "cloglog"),
    "poisson": ("log",),
    "negbinomial": ("log",),
    "gamma": ("log",),
    "binomial": ("logit", "probit", "cloglog"),
    "tobit": ("identity",),
    "interval": ("identity",),
    "nominal": ("logit",),
}
"""The valid links of each family; the first is the default."""

OPTIONS: dict[str, tuple[str, ...]] = {"binomial": ("n",), "tobit": ("lower", "upper"), "interval": ("upper",),
                                       "nominal": ("k",)}
"""The ``key=value`` options a family takes: a binomial's trials column ``n`` (required); a tobit's
censoring limits ``lower`` and ``upper`` (one or both), each a number or a column; an interval
response's column of upper bounds ``upper`` (required; the response column holds the lower bounds);
the category ``k`` of one latent response of a nominal variable (set by the model, not written)."""
FORMS = {"binomial": "binomial(n=COLUMN), e.g. family={'y': 'binomial(n=trials)'} with the trials in column 'trials'",
         "tobit": "tobit(lower=LIMIT), tobit(upper=LIMIT) or tobit(lower=LIMIT, upper=LIMIT), each LIMIT a number "
                  "or a column, e.g. family={'y': 'tobit(lower=0)'}",
         "interval": "interval(upper=COLUMN), the response column holding each row's lower bound and COLUMN its "
                     "upper bound, e.g. family={'y': 'interval(upper=y_hi)'}"}
_NEEDS = {"binomial": "the column of its numbers of trials", "tobit": "a censoring limit",
          "interval": "the column of its upper bounds"}
_OPTION_NAMES = {"n": "trials column", "lower": "lower limit column", "upper": "upper limit column"}
_FAMILY_OPTION_NAMES = {("interval", "upper"): "upper bound column"}

ALIASES = {"binary": "bernoulli", "negative_binomial": "negbinomial"}

_LOG_2PI = float(np.log(2 * np.pi))
_MEDIAN = {"logit": 0.0, "probit": 0.0, "cloglog": float(np.log(np.log(2.0)))}  # F(m) = ½
_CLOGLOG_ONE = 40.0  # 1 − exp(−e^x) is 1 in float64 from here on
_SQRT_2 = float(np.sqrt(2))
_CDF = {"logit": scipy.special.expit, "probit": scipy.special.ndtr, "cloglog": lambda x: -np.expm1(-np.exp(x))}
_SHOW = 6  # distinct values shown in messages
_SYNTAX = re.compile(r"([A-Za-z_]+)\s*(?:\((.*)\))?", re.S)
_OPTION = re.compile(r"([A-Za-z_]+)\s*=\s*(\S(?:.*\S)?)", re.S)
_LINK = re.compile(r"[A-Za-z_]+")


def _choices() -> str:
    names = [f"{name} ({', '.join(links + tuple(f'{key}=…' for key in OPTIONS.get(name, ())))})"
             for name, links in LINKS.items()]
    return "; ".join(names) + f"; aliases: {', '.join(f'{a} = {n}' for a, n in ALIASES.items())}"


@dataclass(frozen=True)
class Family:
    """A response family, its link and its options, e.g. ``Family("ordinal", "probit")``,
    ``Family("binomial", "logit", (("n", "trials"),))``."""

    name: str
    link: str
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.name not in LINKS:
            raise SpecificationError(f"unknown family {self.name!r}; the families (links) are: {_choices()}")
        if self.link not in LINKS[self.name]:
            raise SpecificationError(f"{self.name} has no link {self.link!r}; "
                                     f"its links are: {', '.join(LINKS[self.name])}")
        allowed, keys = OPTIONS.get(self.name, ()), [key for key, _ in self.options]
        form = FORMS.get(self.name, self.name)
        for key in keys:
            if key not in allowed:
                raise SpecificationError(f"{self.name} takes no option {key}=; write {form}")
        if len(set(keys)) < len(keys):
            raise SpecificationError(f"an option of {self.name} is given twice; write {form}")
        if allowed and not keys and self.name in _NEEDS:
            raise SpecificationError(f"{self.name} needs {_NEEDS[self.name]}: write {form}")
        if self.name == "interval" and _is_number(dict(self.options)["upper"]):
            raise SpecificationError(f"interval's upper= names the column of each row's upper bound, not a number; "
                                     f"write {form}, or tobit(upper=LIMIT) for one censoring limit for all rows")

    def __str__(self) -> str:
        return f"{self.name}({', '.join([self.link, *(f'{key}={value}' for key, value in self.options)])})"

    @property
    def columns(self) -> dict[str, str]:
        """The data columns the family names, each with what it is (``{"trials": "the trials column"}``)."""
        return {value: f"the {_FAMILY_OPTION_NAMES.get((self.name, key), _OPTION_NAMES[key])}"
                for key, value in self.options if not _is_number(value)}

    @property
    def category(self) -> int:
        """The category k of a nominal variable's latent response y#k (0 for the variable itself)."""
        return int(dict(self.options).get("k", 0))

    @property
    def trials(self) -> str | None:
        """The column of a binomial's numbers of trials."""
        return dict(self.options).get("n")

    @property
    def has_scale(self) -> bool:
        """Whether the family has a residual standard deviation (gaussian, tobit, interval)."""
        return self.name in ("gaussian", *CENSORED_FAMILIES)

    @property
    def is_censored(self) -> bool:
        """Whether the response is a censored normal one with per-row limits (tobit, interval)."""
        return self.name in CENSORED_FAMILIES

    def limits(self, columns: Mapping[str, np.ndarray], n_rows: int, response: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """A censored response's lower and upper limits per row, −∞ and +∞ where there is none: a
        tobit's the number written or the column named (NaN there: no limit in that row); an interval
        response's lower bound the ``response`` itself and its upper bound the column ``upper=`` names
        (NaN in either: no bound on that side)."""
        if self.name == "interval":
            lower = np.array(_needed(response, "the response (its lower bounds)", self), dtype=np.float64)
            upper = np.array(columns[dict(self.options)["upper"]], dtype=np.float64)
            return np.where(np.isnan(lower), -np.inf, lower), np.where(np.isnan(upper), np.inf, upper)
        bounds = []
        for key, none in (("lower", -np.inf), ("upper", np.inf)):
            text = dict(self.options).get(key)
            limit = (np.full(n_rows, none) if text is None else np.full(n_rows, float(text)) if _is_number(text)
                     else np.array(columns[text], dtype=np.float64))
            bounds.append(np.where(np.isnan(limit), none, limit))
        return bounds[0], bounds[1]

    @property
    def has_thresholds(self) -> bool:
        """Whether the family has thresholds τ_1 < … < τ_{K−1} (ordinal)."""
        return self.name == "ordinal"

    @property
    def has_dispersion(self) -> bool:
        """Whether the family has a dispersion α = 1/φ > 0 (negbinomial, gamma), held as ``y ~~ y``."""
        return self.name in DISPERSION_FAMILIES

    def logp(self, y: TensorLike, eta: TensorLike, *, sd: TensorLike | None = None,
             thresholds: TensorLike | None = None, dispersion: TensorLike | None = None,
             trials: TensorLike | None = None, lower: TensorLike | None = None,
             upper: TensorLike | None = None, responses: TensorLike | None = None) -> pt.TensorVariable:
        """Elementwise log p(y | η), y and η broadcastable; ``sd`` (gaussian, tobit, interval),
        ``thresholds`` (ordinal, a vector of length K − 1), ``dispersion`` φ = 1/α (negbinomial,
        gamma), ``trials`` n (binomial) and the censoring limits ``lower`` and ``upper`` (tobit and
        interval, ±∞ for none; these three broadcastable with y; an interval response's y is not
        read, its bounds are), and the linear predictors (rows, K − 1) of all the latent responses
        of a nominal variable (``responses``, η of y#1 … y#(K−1); ``eta`` is this one's) as the
        family needs them."""
        if self.name == "gaussian":
            return gaussian_logp(y, eta, _needed(sd, "sd", self))
        if self.name == "bernoulli":
            return bernoulli_logp(y, eta, self.link)
        if self.name == "ordinal":
            return ordinal_logp(y, eta, _needed(thresholds, "thresholds", self), self.link)
        if self.name == "poisson":
            return poisson_logp(y, eta)
        if self.name == "gamma":
            return gamma_logp(y, eta, _needed(dispersion, "dispersion", self))
        if self.name == "binomial":
            return binomial_logp(y, _needed(trials, "trials", self), eta, self.link)
        if self.name == "nominal":
            return nominal_logp(y, eta, self.category, _needed(responses, "responses", self))
        if self.name == "tobit":
            return tobit_logp(y, eta, _needed(sd, "sd", self), _needed(lower, "lower", self),
                              _needed(upper, "upper", self))
        if self.name == "interval":
            return interval_logp(eta, _needed(sd, "sd", self), _needed(lower, "lower", self),
                                 _needed(upper, "upper", self))
        return negbinomial_logp(y, eta, _needed(dispersion, "dispersion", self))

    def linear_predictor(self, mean: float) -> float:
        """The η at which the response's mean is ``mean`` (of the codes of :meth:`codes`), for
        starting values: log μ (counts, μ ≥ 0.05; gamma), F⁻¹(p) (bernoulli, and binomial given the
        mean proportion, p within [0.02, 0.98]), 0 (ordinal: its thresholds hold the location), the
        mean itself (gaussian)."""
        if self.name in ("poisson", "negbinomial"):
            return float(np.log(max(mean, 0.05)))
        if self.name == "gamma":
            return float(np.log(mean))
        if self.name == "nominal":
            return 0.0
        if self.name in ("bernoulli", "binomial"):
            p = float(np.clip(mean, 0.02, 0.98))
            quantile = {"logit": np.log(p / (1 - p)), "probit": scipy.special.ndtri(p),
                        "cloglog": np.log(-np.log1p(-p))}
            return float(quantile[self.link])
        return 0.0 if self.has_thresholds else float(mean)

    def moment_dispersion(self, mean: float, variance: float) -> float:
        """The dispersion α that the observed mean m and variance v imply, for starting values:
        (v − m)/m² (negbinomial, var = μ + αμ²), v/m² (gamma, var = αμ²), within [0.05, 5]."""
        excess = variance - mean if self.name == "negbinomial" else variance
        return float(np.clip(excess / max(mean, 1e-3) ** 2, 0.05, 5.0))

    def draw(self, eta: np.ndarray, rng: np.random.Generator, *, thresholds: np.ndarray | None = None,
             dispersion: np.ndarray | float | None = None, trials: np.ndarray | None = None,
             sd: np.ndarray | float | None = None, lower: np.ndarray | None = None,
             upper: np.ndarray | None = None, responses: np.ndarray | None = None) -> np.ndarray:
        """Responses drawn given the linear predictor η (non-Gaussian families, in the codes of
        :meth:`codes`): bernoulli 1{η + ν > 0}, ν with cdf 1 − F(−x); ordinal the number of
        thresholds below η + ε, ε with the link's cdf F (cloglog: ν a maximum-Gumbel draw, ε = −ν);
        poisson with mean e^η; negbinomial as a gamma mixture of poissons, λ ~ Gamma(φ, e^η/φ);
        gamma Gamma(shape φ, scale e^η/φ); binomial Binomial(n, F(η)); tobit η + sd ε, ε ~ N(0, 1),
        clipped to [lower, upper] (censored at the limits); interval η + sd ε exactly (the bounds are
        not drawn: a replicate holds the latent response itself); nominal the category (code 0..K−1) of
        the largest of 0, η_1, …, η_{K−1} (the ``responses``) plus Gumbel noise, which has the
        softmax probabilities; count means are capped at
        1e9 (which only prior draws far in the tails reach) so that they can be drawn."""
        eta = np.asarray(eta, dtype=float)
        if self.name == "nominal":
            linear = np.asarray(_needed(responses, "responses", self), dtype=float)
            linear = np.concatenate([np.zeros((*linear.shape[:-1], 1)), linear], axis=-1)
            return np.argmax(linear + rng.gumbel(size=linear.shape), axis=-1).astype(float)
        if self.name == "tobit":
            latent = eta + np.asarray(_needed(sd, "sd", self)) * rng.standard_normal(eta.shape)
            return np.clip(latent, _needed(lower, "lower", self), _needed(upper, "upper", self))
        if self.name == "interval":
            return eta + np.asarray(_needed(sd, "sd", self)) * rng.standard_normal(eta.shape)
        if self.name == "binomial":
            n = np.asarray(_needed(trials, "trials", self), dtype=float)
            return rng.binomial(n.astype(np.int64), _CDF[self.link](eta)).astype(float)
        if self.name in ("bernoulli", "ordinal"):
            if self.link == "cloglog":
                noise = rng.gumbel(size=eta.shape) * (1.0 if self.name == "bernoulli" else -1.0)
            else:
                noise = rng.logistic(size=eta.shape) if self.link == "logit" else rng.standard_normal(eta.shape)
            cuts = np.zeros(1) if self.name == "bernoulli" else np.asarray(_needed(thresholds, "thresholds", self))
            return ((eta + noise)[..., None] > cuts).sum(-1).astype(float)
        mean = np.exp(np.minimum(eta, np.log(1e9)))
        if self.has_dispersion:
            phi = np.asarray(_needed(dispersion, "dispersion", self), dtype=float)
            mean = np.minimum(rng.gamma(phi, mean / phi), 1e9)
        if self.name == "gamma":
            return mean
        if self.name in ("poisson", "negbinomial"):
            return rng.poisson(mean).astype(float)
        raise TypeError(f"{self} responses are drawn with their residuals, not by draw()")

    def codes(self, values: np.ndarray, name: str, columns: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """The observed ``values`` of variable ``name`` as float64 codes for this family, NaN (missing)
        kept: 0/1 (bernoulli), 0..K−1 in the order of :func:`ordinal_levels` (ordinal), the values
        themselves otherwise; ``columns`` holds the columns the family names (a binomial's trials).
        Raises :class:`DataError` for values the family cannot take."""
        x = _numeric(values, name, self)
        if self.trials is not None:
            _check_trials(x, (columns or {})[self.trials], name, self)
        if self.name == "tobit":
            _check_limits(x, *self.limits(columns or {}, len(x)), name, self)
        if self.name == "interval":
            _check_bounds(x, np.array((columns or {})[dict(self.options)["upper"]], dtype=np.float64), name, self)
        observed = x[~np.isnan(x)]
        if np.isinf(observed).any():
            raise DataError(f"{name!r} has infinite values; recode them or set them to missing (NaN)")
        whole = observed == np.round(observed)
        if self.name == "bernoulli" and not np.isin(observed, (0.0, 1.0)).all():
            other = "ordinal" if whole.all() else "gaussian"
            raise DataError(f"{name!r} is declared bernoulli but takes values {_show(observed)}; "
                            f"recode it to 0/1 or declare it {other}")
        if self.name in ("ordinal", "poisson", "negbinomial", "binomial") and not whole.all():
            what = "categories as integers in their order (e.g. 1, 2, 3)" if self.has_thresholds else "counts as whole numbers"
            raise DataError(f"{name!r} is declared {self.name} but has non-integer values "
                            f"{_show(observed[~whole])}; code the {what} or declare it gaussian")
        if self.name in ("poisson", "negbinomial", "binomial") and (observed < 0).any():
            raise DataError(f"{name!r} is declared {self.name} but has negative values {_show(observed[observed < 0])}; "
                            f"counts must be non-negative: recode it or declare it gaussian")
        if self.name == "gamma" and (observed <= 0).any():
            raise DataError(f"{name!r} is declared gamma but has values {_show(observed[observed <= 0])} that are "
                            "not positive; gamma responses must be above 0: set exact zeros to missing, shift the "
                            "variable, or declare it gaussian")
        if self.name == "nominal":
            levels = ordinal_levels(x)
            if len(levels) < 2:
                raise DataError(f"{name!r} is declared nominal but has {len(levels)} category; a nominal variable "
                                "needs at least two: check its coding or drop it from the model")
            x[~np.isnan(x)] = np.searchsorted(levels, observed)
        if self.has_thresholds:
            levels = ordinal_levels(x)
            if len(levels) < 2:
                what = f"only the category {levels[0]:g}" if len(levels) else "no observed values"
                raise DataError(f"{name!r} is declared ordinal but has {what}; an ordinal variable needs at "
                                f"least two categories: check its coding or drop it from the model")
            unseen = np.setdiff1d(np.arange(levels[0], levels[-1] + 1), levels)
            if len(unseen):
                raise DataError(f"{name!r} is declared ordinal with the categories {_show(levels)}; {_show(unseen)} "
                                "never observed, and thresholds can only separate observed categories. If the scale "
                                "has no such category, recode the values to consecutive integers (e.g. 1, 2, 3); if "
                                "it has, merge the unobserved category with a neighbour")
            x[~np.isnan(x)] = np.searchsorted(levels, observed)
        return x


def parse_family(text: str) -> Family:
    """``name``, ``name(link)`` or ``name(link, key=value, …)``, the name and link case-insensitive,
    e.g. ``"bernoulli"``, ``"Ordinal( probit )"``, ``"binomial(n=trials)"``, ``"binomial(probit, n=trials)"``."""
    match = _SYNTAX.fullmatch(text.strip())
    parts = [part.strip() for part in match[2].split(",")] if match and match[2] is not None else []
    options = [_OPTION.fullmatch(part) for part in parts]
    links = [part.lower() for part, option in zip(parts, options) if option is None]
    if match is None or any(not _LINK.fullmatch(link) for link in links) or len(links) > 1 or "" in parts:
        raise SpecificationError(f"cannot read the family {text!r}; write name or name(link), "
                                 f"with the families (links, options): {_choices()}")
    name = ALIASES.get(match[1].lower(), match[1].lower())
    if name not in LINKS:
        raise SpecificationError(f"unknown family {match[1].lower()!r}; the families (links) are: {_choices()}")
    return Family(name, links[0] if links else LINKS[name][0],
                  tuple((option[1].lower(), option[2]) for option in options if option is not None))


def plan_families(plan: Plan) -> dict[str, Family]:
    """The plan's non-Gaussian variables and their families."""
    return {name: parse_family(text) for name, text in plan.families.items()}


def nominal_responses(families: Mapping[str, str], names: Sequence[str]) -> dict[str, list[int]]:
    """Per variable of ``names`` that is a latent response y#k of a nominal variable, the positions in
    ``names`` of all of that variable's latent responses, in the order k = 1, …, K − 1."""
    items = {name: name.rsplit(NOMINAL_SEPARATOR, 1)[0] for name in names
             if name in families and parse_family(families[name]).name == "nominal"}
    return {name: [names.index(other) for other in sorted((o for o in items if items[o] == item),
                                                          key=lambda o: parse_family(families[o]).category)]
            for name, item in items.items()}


def family_columns(families: Mapping[str, Family]) -> dict[str, str]:
    """The data columns the families read (a binomial's trials), each with what it is:
    ``{"n": "the trials column 'n' of 'y' (binomial(logit, n=n))"}``."""
    return {column: f"{what} {column!r} of {name!r} ({family})" for name, family in families.items()
            for column, what in family.columns.items()}


def ordinal_levels(values: np.ndarray) -> np.ndarray:
    """The sorted distinct observed (non-NaN) values; K = their number, code k is the k-th of them."""
    x = np.asarray(values, dtype=np.float64)
    return np.unique(x[~np.isnan(x)])


def log_cdf(x: TensorLike, link: str) -> pt.TensorVariable:
    """log F(x) with F the logistic (logit), standard normal (probit) or minimum-Gumbel
    (cloglog, F(x) = 1 − exp(−e^x)) cdf.

    logit: −log(1 + e^{−x}); probit: log(1 − erfc(x/√2)/2) for x ≥ −1 and
    log(erfcx(−x/√2)/2) − x²/2 below, which does not underflow.  Each branch is evaluated on
    its own side of −1 only, so the gradient stays finite everywhere.  cloglog:
    log(1 − exp(−e^x)) by log1mexp, x capped at 40 where it is 0 in float64.
    """
    x = _float(x)
    if link == "logit":
        return -pt.softplus(-x)
    if link == "cloglog":
        return pt.log1mexp(-pt.exp(pt.minimum(x, _CLOGLOG_ONE)))
    if link != "probit":
        raise ValueError(f"log_cdf has no link {link!r}; use logit, probit or cloglog")
    upper, lower = pt.maximum(x, -1.0), pt.minimum(x, -1.0)
    return pt.switch(x >= -1.0, pt.log1p(-0.5 * pt.erfc(upper / _SQRT_2)),
                     pt.log(0.5 * pt.erfcx(-lower / _SQRT_2)) - 0.5 * lower**2)


def log_sf(x: TensorLike, link: str) -> pt.TensorVariable:
    """log(1 − F(x)) of :func:`log_cdf`'s F: −e^x (cloglog), else log F(−x) (symmetric F)."""
    if link == "cloglog":
        return -pt.exp(_float(x))
    return log_cdf(-_float(x), link)


def gaussian_logp(y: TensorLike, eta: TensorLike, sd: TensorLike) -> pt.TensorVariable:
    """log N(y; η, sd²) = −½ log 2π − log sd − ½ ((y − η)/sd)²."""
    y, eta, sd = _float(y), _float(eta), _float(sd)
    return -0.5 * _LOG_2PI - pt.log(sd) - 0.5 * pt.square((y - eta) / sd)


def bernoulli_logp(y: TensorLike, eta: TensorLike, link: str) -> pt.TensorVariable:
    """log p(y | η) for y ∈ {0, 1}: log F(η) if y = 1, log(1 − F(η)) if y = 0; for the symmetric
    links log F((2y − 1) η) (= y η − log(1 + e^η) for the logit link, value and derivative fused
    in :func:`~.logit.bernoulli_logit_logp`); for the complementary log-log link
    P(y = 1) = 1 − exp(−e^η), log(1 − F(η)) = −e^η."""
    if link == "logit":
        return bernoulli_logit_logp(_float(y), _float(eta))
    if link == "cloglog":
        return pt.switch(_float(y) > 0.5, log_cdf(eta, link), log_sf(eta, link))
    return log_cdf((2 * _float(y) - 1) * _float(eta), link)


def ordinal_logp(y: TensorLike, eta: TensorLike, thresholds: TensorLike, link: str) -> pt.TensorVariable:
    """Cumulative model, y coded 0..K−1 and τ (K − 1,) increasing, τ_0 = −∞, τ_K = +∞:

    log P(y = k) = log[F(b) − F(a)],  a = τ_k − η,  b = τ_{k+1} − η,

    taken in the tail where it does not cancel: log F(b) + log(1 − exp(log F(a) − log F(b))) below
    F's median m, log S(a) + log(1 − exp(log S(b) − log S(a))) (S = 1 − F) when a + b > 2m; at
    the end categories F(a) = 0 or S(b) = 0 and the second term is dropped.
    """
    eta, infinity = _float(eta), pt.as_tensor([np.inf])
    bounds = pt.concatenate([-infinity, _float(thresholds), infinity])
    k = pt.cast(y, "int64")
    a, b = bounds[k] - eta, bounds[k + 1] - eta
    upper = a + b > 2 * _MEDIAN[link]  # false at k = 0, true at k = K − 1
    a, b = pt.switch(pt.isinf(a), b - 1.0, a), pt.switch(pt.isinf(b), a + 1.0, b)  # finite stand-ins, discarded
    end = pt.switch(upper, pt.eq(k, bounds.shape[0] - 2), pt.eq(k, 0))
    log_big = pt.switch(upper, log_sf(a, link), log_cdf(b, link))
    log_small = pt.switch(upper, log_sf(b, link), log_cdf(a, link))
    return log_big + pt.switch(end, 0.0, pt.log1mexp(log_small - log_big))


def nominal_logp(y: TensorLike, eta: TensorLike, category: int, responses: TensorLike) -> pt.TensorVariable:
    """The share of the latent response y#k (k = ``category``, linear predictor η_k = ``eta``) in the
    multinomial logit log P(y = c) = η_c − log(1 + Σ_j e^{η_j}) (η_0 = 0; y coded 0..K−1): 1{y = k} η_k,
    and for k = 1 also −log Σ_{j=0}^{K−1} e^{η_j}, so that the item's K − 1 terms add up to it."""
    y, eta, responses = _float(y), _float(eta), _float(responses)
    term = pt.eq(y, category) * eta
    if category != 1:
        return term
    zero = pt.zeros_like(responses[..., :1])
    return term - pt.logsumexp(pt.concatenate([zero, responses], axis=-1), axis=-1)


def tobit_logp(y: TensorLike, eta: TensorLike, sd: TensorLike, lower: TensorLike, upper: TensorLike
               ) -> pt.TensorVariable:
    """Censored normal: y ≤ lower (censored there) log Φ((lower − η)/sd); y ≥ upper log Φ((η − upper)/sd);
    between the limits log N(y; η, sd²). Each censored term is evaluated at a finite stand-in where its
    limit is infinite (that row never takes it), so that the gradient stays finite."""
    y, eta, sd, lower, upper = (_float(v) for v in (y, eta, sd, lower, upper))
    below, above = y <= lower, y >= upper
    low = pt.switch(pt.isinf(lower), y, lower)
    high = pt.switch(pt.isinf(upper), y, upper)
    return pt.switch(below, log_cdf((low - eta) / sd, "probit"),
                     pt.switch(above, log_cdf((eta - high) / sd, "probit"), gaussian_logp(y, eta, sd)))


def interval_logp(eta: TensorLike, sd: TensorLike, lower: TensorLike, upper: TensorLike) -> pt.TensorVariable:
    """Interval-censored normal y* ~ N(η, sd²) known to lie in [lower, upper]: log N(lower; η, sd²)
    where lower = upper, else log P(lower < y* < upper) = log[Φ(b) − Φ(a)], a = (lower − η)/sd,
    b = (upper − η)/sd (lower = −∞: log Φ(b); upper = +∞: log Φ(−a)), taken in the tail where it
    does not cancel: log Φ(b) + log(1 − exp(log Φ(a) − log Φ(b))) when a + b ≤ 0, else
    log Φ(−a) + log(1 − exp(log Φ(−b) − log Φ(−a))). Infinite bounds and the upper bound of an
    exact row are replaced by finite stand-ins before η and sd enter (the branch using them is
    discarded there), so that the gradient stays finite."""
    eta, sd, lower, upper = (_float(v) for v in (eta, sd, lower, upper))
    no_lower, no_upper, exact = pt.isinf(lower), pt.isinf(upper), pt.eq(lower, upper)
    low = pt.switch(no_lower, pt.switch(no_upper, 0.0, upper) - 1.0, lower)
    high = pt.switch(no_upper | exact, low + 1.0, upper)
    a, b = (low - eta) / sd, (high - eta) / sd
    upper_tail = ~no_lower & (no_upper | (a + b > 0))
    log_big = pt.switch(upper_tail, log_sf(a, "probit"), log_cdf(b, "probit"))
    log_small = pt.switch(upper_tail, log_sf(b, "probit"), log_cdf(a, "probit"))
    one_sided = pt.switch(upper_tail, no_upper, no_lower)
    censored = log_big + pt.switch(one_sided, 0.0, pt.log1mexp(log_small - log_big))
    return pt.switch(exact, gaussian_logp(pt.switch(exact, lower, eta), eta, sd), censored)


def binomial_logp(y: TensorLike, trials: TensorLike, eta: TensorLike, link: str) -> pt.TensorVariable:
    """log Binomial(y; n, F(η)) = log C(n, y) + y log F(η) + (n − y) log(1 − F(η)), with
    log C(n, y) = log Γ(n + 1) − log Γ(y + 1) − log Γ(n − y + 1) (each log F term in log space, so
    nothing cancels at large |η|)."""
    y, n, eta = _float(y), _float(trials), _float(eta)
    choose = pt.gammaln(n + 1.0) - pt.gammaln(y + 1.0) - pt.gammaln(n - y + 1.0)
    return choose + y * log_cdf(eta, link) + (n - y) * log_sf(eta, link)


def poisson_logp(y: TensorLike, eta: TensorLike) -> pt.TensorVariable:
    """log Poisson(y; μ = e^η) = y η − e^η − log y!."""
    y, eta = _float(y), _float(eta)
    return y * eta - pt.exp(eta) - pt.gammaln(y + 1.0)


def negbinomial_logp(y: TensorLike, eta: TensorLike, dispersion: TensorLike) -> pt.TensorVariable:
    """NB2 with mean μ = e^η and variance μ + μ²/φ:

    log Γ(y + φ) − log Γ(φ) − log y! + φ log(φ/(φ + μ)) + y log(μ/(φ + μ)), with
    log(φ/(φ + μ)) = −log(1 + e^{η − log φ}) and log(μ/(φ + μ)) = −log(1 + e^{log φ − η}).
    """
    y, phi = _float(y), _float(dispersion)
    shift = _float(eta) - pt.log(phi)
    return (pt.gammaln(y + phi) - pt.gammaln(phi) - pt.gammaln(y + 1.0)
            - phi * pt.softplus(shift) - y * pt.softplus(-shift))


def gamma_logp(y: TensorLike, eta: TensorLike, dispersion: TensorLike) -> pt.TensorVariable:
    """Gamma with mean μ = e^η and shape φ (variance μ²/φ = αμ²):

    φ log φ − φ η − log Γ(φ) + (φ − 1) log y − φ y e^{−η}.
    """
    y, eta, phi = _float(y), _float(eta), _float(dispersion)
    return phi * pt.log(phi) - phi * eta - pt.gammaln(phi) + (phi - 1.0) * pt.log(y) - phi * y * pt.exp(-eta)


def _check_trials(counts: np.ndarray, trials: np.ndarray, name: str, family: Family) -> None:
    """Where ``counts`` are observed, the trials are observed positive whole numbers, at least the counts."""
    n = np.array(trials, dtype=np.float64)
    observed = ~np.isnan(counts)
    column = family.trials
    if np.isnan(n[observed]).any():
        raise DataError(f"{name!r} is declared {family} but its trials column {column!r} is missing where {name!r} "
                        f"is observed; fill in the trials or set {name!r} to missing there")
    bad = n[observed][(n[observed] <= 0) | (n[observed] != np.round(n[observed])) | np.isinf(n[observed])]
    if len(bad):
        raise DataError(f"the trials column {column!r} of {name!r} has values {_show(bad)}; the numbers of trials "
                        "must be positive whole numbers: drop or fix those rows")
    over = observed & (counts > n)
    if over.any():
        raise DataError(f"{name!r} counts more successes than its trials {column!r} in {over.sum()} row(s) (e.g. "
                        f"{counts[over][0]:g} of {n[over][0]:g}); a binomial count lies between 0 and its trials: "
                        "check that n= names the trials column")


def _check_limits(values: np.ndarray, lower: np.ndarray, upper: np.ndarray, name: str, family: Family) -> None:
    """Observed values lie within their censoring limits (a censored one is recorded at its limit),
    and a row's lower limit is below its upper one."""
    observed = ~np.isnan(values)
    crossed = lower >= upper
    if crossed.any():
        raise DataError(f"{name!r} is declared {family} but {crossed.sum()} row(s) have a lower limit at or above "
                        f"the upper one (e.g. {lower[crossed][0]:g} and {upper[crossed][0]:g}); check the limits")
    outside = observed & ((values < lower) | (values > upper))
    if outside.any():
        i = np.flatnonzero(outside)[0]
        raise DataError(f"{name!r} is declared {family} but {outside.sum()} value(s) lie outside their censoring "
                        f"limits (e.g. {values[i]:g} with limits {lower[i]:g} and {upper[i]:g}); record a censored "
                        "value at its limit, or check the limits")


def _check_bounds(lower: np.ndarray, upper: np.ndarray, name: str, family: Family) -> None:
    """Each row of an interval response has a bound (the response, its lower one, or the upper
    column's), and the upper bound is not below the lower one (nor −∞)."""
    column = dict(family.options)["upper"]
    neither = np.isnan(lower) & np.isnan(upper)
    if neither.any():
        raise DataError(f"{name!r} is declared {family} but {neither.sum()} row(s) have neither bound ({name!r} and "
                        f"{column!r} both missing, e.g. the row at position {np.flatnonzero(neither)[0]}); such a row "
                        f"says nothing about {name!r}: give a bound there, or drop those rows, e.g. "
                        f"data.dropna(subset=[{name!r}, {column!r}], how='all')")
    crossed = (upper < np.where(np.isnan(lower), -np.inf, lower)) | (upper == -np.inf)
    if crossed.any():
        i = np.flatnonzero(crossed)[0]
        raise DataError(f"{name!r} is declared {family} but {crossed.sum()} row(s) have an upper bound below the lower "
                        f"one (e.g. {upper[i]:g} in {column!r} below {lower[i]:g} in {name!r}); {name!r} holds each "
                        f"row's lower bound and {column!r} its upper one: swap them where they are reversed")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _float(x: TensorLike) -> pt.TensorVariable:
    """``x`` as a float64 tensor (PyTensor makes float32 constants of Python floats such as 2.5)."""
    return pt.as_tensor_variable(x).astype("float64")


def _needed(value: TensorLike | None, what: str, family: Family) -> TensorLike:
    if value is None:
        raise TypeError(f"the logp of {family} needs {what}")
    return value


def _numeric(values: np.ndarray, name: str, family: Family) -> np.ndarray:
    """A float64 copy of ``values`` (booleans become 0/1)."""
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name!r} is declared {family.name} but is not numeric; "
                        f"recode it as numbers or drop it from the model") from None


def _show(values: np.ndarray) -> str:
    distinct = np.unique(values)
    shown = ", ".join(f"{v:g}" for v in distinct[:_SHOW])
    return shown + (", …" if len(distinct) > _SHOW else "")
