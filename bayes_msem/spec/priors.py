"""Priors: the default for each kind of parameter, parsing of ``prior("...")``, and PyMC construction.

A prior is written as in blavaan: ``family(arg, ...)`` with an optional
``[sd]`` or ``[var]`` suffix for variances (the default ``[sd]`` puts the
prior on the standard deviation). Defaults (weakly informative on the scale of
typical standardised or test-score data; see the README's prior table):

=============  ===================  ==========================================
kind           default              parameter
=============  ===================  ==========================================
loading        normal(0, 10)        λ in ``f =~ y``
regression     normal(0, 10)        β, γ in ``y ~ x``
intercept      normal(0, 32)        ν, α in ``y ~ 1``
variance       gamma(1, 0.5)[sd]    the SD √θ of ``y ~~ y`` (rate 0.5: mean SD 2)
covariance     lkj(1)               the correlation block of free covariances
threshold      normal(0, 10)        τ in ``y | t1`` (ordinal variables; kept ordered)
dispersion     half_normal(1)[sd]   √α of a negative binomial or gamma y's ``y ~~ y`` (var μ + α μ², α μ²)
=============  ===================  ==========================================

The dispersion prior follows the Stan prior recommendations: a half-normal on 1/√φ = √α
shrinks towards the Poisson model (α = 0) without ruling overdispersion out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..errors import Error

KINDS = ("loading", "regression", "intercept", "variance", "covariance", "threshold", "dispersion")
POSITIVE_KINDS = ("variance", "dispersion")  # a prior on positive numbers, by default on the square root ([sd])
DEFAULT_PRIORS = {
    "threshold": "normal(0, 10)",
    "loading": "normal(0, 10)",
    "regression": "normal(0, 10)",
    "intercept": "normal(0, 32)",
    "variance": "gamma(1, 0.5)[sd]",
    "covariance": "lkj(1)",
    "dispersion": "half_normal(1)[sd]",
}
#: the default prior of a loading whose indicator is binary or ordinal (on the latent response's
#: logit or probit scale), unless ``priors=`` sets the loadings' prior, and of the SD of a factor
#: measured by such items only, on its marker's latent response's scale: docs/priors.md says why
CATEGORICAL_LOADING = "normal(0, 2.5)"
CATEGORICAL_FACTOR_SD = "gamma(2, 1)[sd]"

# family → (PyMC distribution, argument names, support); the support of each argument is checked.
_FAMILIES: dict[str, tuple[type, tuple[str, ...], str]] = {
    "normal": (pm.Normal, ("mu", "sigma"), "real"),
    "student_t": (pm.StudentT, ("nu", "mu", "sigma"), "real"),
    "cauchy": (pm.Cauchy, ("alpha", "beta"), "real"),
    "uniform": (pm.Uniform, ("lower", "upper"), "interval"),
    "lognormal": (pm.LogNormal, ("mu", "sigma"), "positive"),
    "gamma": (pm.Gamma, ("alpha", "beta"), "positive"),
    "inverse_gamma": (pm.InverseGamma, ("alpha", "beta"), "positive"),
    "exponential": (pm.Exponential, ("lam",), "positive"),
    "half_normal": (pm.HalfNormal, ("sigma",), "positive"),
    "half_student_t": (pm.HalfStudentT, ("nu", "sigma"), "positive"),
    "half_cauchy": (pm.HalfCauchy, ("beta",), "positive"),
    "lkj": (pm.LKJCorr, ("eta",), "correlation"),
}
_ALIASES = {"invgamma": "inverse_gamma", "inv_gamma": "inverse_gamma", "halfnormal": "half_normal",
            "halfcauchy": "half_cauchy", "student-t": "student_t", "t": "student_t", "halft": "half_student_t"}
_POSITIVE_ARGS = {"sigma", "beta", "alpha", "nu", "lam", "eta"}
_PATTERN = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*\(([^()]*)\)\s*(?:\[\s*(sd|var)\s*\])?\s*$")


class PriorError(Error, ValueError):
    """An invalid prior specification; the message names the prior and the fix."""


@dataclass(frozen=True)
class Prior:
    """A parsed prior: ``family(args...)``, for variances on the ``scale`` 'sd' or 'var'."""

    family: str
    args: tuple[float, ...]
    scale: str | None = None

    @property
    def text(self) -> str:
        suffix = f"[{self.scale}]" if self.scale else ""
        return f"{self.family}({', '.join(f'{a:g}' for a in self.args)}){suffix}"

    @property
    def group(self) -> tuple[str, str | None]:
        """Priors with the same group are sampled together as one vector."""
        return self.family, self.scale

    def contains(self, value: float) -> bool:
        """Whether ``value`` (a parameter on its natural scale) lies inside the prior's support."""
        support = _FAMILIES[self.family][2]
        if support == "interval":
            return self.args[0] < value < self.args[1]
        return value > 0 if support == "positive" else True

    def inside(self, value: float) -> float:
        """``value`` if the prior allows it, else a point inside its support: the middle of a
        uniform's interval, 1 for a prior on positive numbers."""
        if self.contains(value):
            return value
        return 0.5 * (self.args[0] + self.args[1]) if _FAMILIES[self.family][2] == "interval" else 1.0


def parse_prior(text: str, kind: str) -> Prior:
    """Parse ``family(a, b)[scale]`` and check it suits a parameter of ``kind``."""
    match = _PATTERN.match(text)
    if match is None:
        suffix = re.search(r"\[\s*(\w*)\s*\]\s*$", text)
        if suffix and suffix[1] not in ("sd", "var"):
            raise PriorError(f"the prior {text!r} has the scale [{suffix[1]}]; a variance's prior is on its SD "
                             "([sd], the default) or on the variance itself ([var]), e.g. 'gamma(1, 0.5)[sd]'.")
        raise PriorError(f"cannot read the prior {text!r}; write it as family(arguments), e.g. 'normal(0, 1)'.")
    name, raw_args, scale = match.groups()
    family = _ALIASES.get(name.lower(), name.lower())
    if family not in _FAMILIES:
        raise PriorError(f"unknown prior family {name!r} in {text!r}; known families: {', '.join(_FAMILIES)}.")
    dist, arg_names, support = _FAMILIES[family]
    try:
        args = tuple(float(a) for a in raw_args.split(",")) if raw_args.strip() else ()
    except ValueError:
        raise PriorError(f"the arguments of the prior {text!r} must be numbers.") from None
    if len(args) != len(arg_names):
        raise PriorError(f"the prior {text!r} takes {len(arg_names)} argument(s) ({', '.join(arg_names)}), got {len(args)}.")
    for arg_name, value in zip(arg_names, args):
        positive = arg_name in _POSITIVE_ARGS and (family, arg_name) != ("cauchy", "alpha")  # Cauchy's alpha is its location
        if not np.isfinite(value) or (positive and value <= 0):
            raise PriorError(f"in the prior {text!r}, {arg_name} must be a {'positive ' if positive else ''}finite number.")
    if family == "uniform" and not args[0] < args[1]:
        raise PriorError(f"in the prior {text!r}, the lower bound must be below the upper bound.")
    if kind == "covariance":
        if family != "lkj":
            raise PriorError(f"free covariances take an LKJ prior on their correlation block, e.g. 'lkj(2)'; got {text!r}.")
    elif family == "lkj":
        raise PriorError(f"'lkj' is a prior for correlation blocks (covariances), not for a {kind}.")
    if kind == "threshold" and support != "real":
        raise PriorError(f"a threshold needs a prior on the real line (e.g. 'normal(0, 5)'); got {text!r}.")
    if kind in POSITIVE_KINDS:
        if support != "positive":
            raise PriorError(f"a {kind} needs a prior on positive numbers (e.g. 'gamma(1, 0.5)[sd]' or 'inverse_gamma(1, 1)[var]'); got {text!r}.")
        scale = scale or "sd"
    elif scale is not None:
        raise PriorError(f"the [{scale}] suffix of {text!r} applies only to variances and dispersions.")
    return Prior(family, args, scale)


def default_priors(overrides: Mapping[str, str] | None = None) -> dict[str, Prior]:
    """The prior of each kind of parameter: the defaults, replaced by ``overrides`` (kind → text)."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(KINDS)
    if unknown:
        raise PriorError(f"unknown parameter kind(s) {sorted(unknown)} in priors=; use {', '.join(KINDS)}.")
    return {kind: parse_prior(overrides.get(kind, DEFAULT_PRIORS[kind]), kind) for kind in KINDS}


def prior_vector(name: str, priors: Sequence[Prior], dims: str, initval: np.ndarray | None = None):
    """One vector random variable whose elements have the priors given (all of one family)."""
    dist, arg_names, _ = _FAMILIES[priors[0].family]
    args = {arg: np.array([p.args[i] for p in priors]) for i, arg in enumerate(arg_names)}
    return dist(name, **args, dims=dims, initval=initval)


def ordered_vector(name: str, priors: Sequence[Prior], initval: np.ndarray):
    """A vector with the priors given whose elements stay in increasing order (thresholds)."""
    dist, arg_names, _ = _FAMILIES[priors[0].family]
    args = {arg: np.array([p.args[i] for p in priors]) for i, arg in enumerate(arg_names)}
    return dist(name, **args, shape=len(priors), initval=initval, transform=pm.distributions.transforms.ordered)


def truncated_scalar(name: str, prior: Prior, lower, upper, initval: float):
    """A scalar with ``prior`` truncated to (lower, upper) ∩ its support; the bounds are numbers
    (±∞ for none) or tensors. NUTS samples it through an interval transform; draws are exact."""
    dist, arg_names, support = _FAMILIES[prior.family]
    low, high = {"positive": (0.0, np.inf), "interval": prior.args}.get(support, (-np.inf, np.inf))
    if isinstance(lower, pt.TensorVariable):
        lower = pt.maximum(lower, low)
    else:
        lower = None if np.isneginf(max(lower, low)) else max(lower, low)
    upper = None if np.isposinf(min(upper, high)) else min(upper, high)
    base = dist.dist(**dict(zip(arg_names, prior.args)))
    return pm.Truncated(name, base, lower=lower, upper=upper, initval=initval)


def lkj_cholesky(name: str, prior: Prior, n: int):
    """Cholesky factor L of a correlation matrix R = L Lᵀ with an LKJ(η) prior."""
    return pm.LKJCorr(name, n=n, eta=prior.args[0])
