"""Run NUTS on a ``pm.Model`` and return an ArviZ DataTree.

nutpie (the default) compiles a model once per structure: refits, and fits of
other data sets with the same model (simulation studies), reuse the compiled
functions and only swap the data. PyMC's own
NUTS and the JAX samplers (numpyro, blackjax; ``pip install bayes_msem[jax]``)
go through ``pm.sample``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import time
from collections import OrderedDict

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from pymc.initial_point import make_initial_point_fn

from ..errors import MissingDependencyError, SettingsError
from ..spec.arguments import check_count
from .callbacks import cached_callbacks

SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")
_CACHE_SIZE = 8
_COMPILED: OrderedDict = OrderedDict()


def check_settings(draws: int, tune: int, chains: int, sampler: str) -> None:
    """Reject impossible sampler settings before anything is compiled."""
    # nutpie needs at least one warm-up draw (tune=0 aborts inside the sampler)
    for name, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        check_count(name, value)
    if sampler not in SAMPLERS:
        raise SettingsError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}.")
    if sampler in ("numpyro", "blackjax") and importlib.util.find_spec(sampler) is None:
        raise MissingDependencyError(f"the {sampler} sampler needs JAX: pip install 'bayes_msem[jax]'.")


def show_progress(progressbar: bool | str) -> bool:
    """Whether to draw the sampler's progress bar: ``"auto"`` draws it when standard error is a
    terminal or the process is a Jupyter kernel."""
    if progressbar != "auto":
        return bool(progressbar)
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return sys.stderr.isatty() or type(shell).__name__ == "ZMQInteractiveShell"


def nutpie_model(model: pm.Model, structure: str, quiet: bool = False):
    """The nutpie-compiled model, compiled once per model ``structure`` (a key that changes when
    anything but the data changes); another model of the same structure reuses the compiled
    functions with its own data and coordinates. Unless ``quiet``, a compile says so on standard
    error."""
    cached = _COMPILED.get(structure)
    if cached is None:
        if not quiet:
            print("bayes_msem: compiling this model structure for nutpie (numba); the compiled functions are "
                  "cached on disk, so later fits of this structure start in seconds ...", end="", file=sys.stderr,
                  flush=True)
        started = time.perf_counter()
        cached = _COMPILED[structure] = compile_nutpie(model)
        if not quiet:
            print(f" done in {time.perf_counter() - started:.1f} s.", file=sys.stderr, flush=True)
        while len(_COMPILED) > _CACHE_SIZE:
            _COMPILED.popitem(last=False)
        return cached
    _COMPILED.move_to_end(structure)
    known = {var.name for var in cached.shared_var_keys}  # data the compiled graph uses (unused ones are pruned)
    data = {var.name: var.get_value() for var in model.data_vars if var.name in known}
    coords = {**cached.coords, **{name: pd.Index(values) for name, values in model.coords.items()}}
    return dataclasses.replace(cached.with_data(**data), _coords=coords, initial_point_func=_initial_points(model))


JITTER_SD = 0.1


def jittered(name: str) -> bool:
    """Whether a free variable is standardised random effects or latent disturbances
    (``random_effects_z``, ``within_z``, ``between_z``, ``upper_z``, …, ``latent_z``)."""
    return name.endswith("_z")


def _initial_points(model: pm.Model):
    """The model's starting values as nutpie's flat unconstrained vector, with the standardised
    random effects and latent disturbances z jittered by N(0, JITTER_SD²) (see :func:`compile_nutpie`)."""
    point = make_initial_point_fn(model=model, jitter_rvs=set(), return_transformed=True)(None)
    names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    start = np.concatenate([np.ravel(point[name]) for name in names]).astype(float)
    mask = np.concatenate([np.full(np.size(point[name]), jittered(name)) for name in names])

    def initial(seed) -> np.ndarray:
        return start + mask * np.random.default_rng(seed).normal(scale=JITTER_SD, size=start.shape)

    return initial


def compile_nutpie(model: pm.Model):
    """Compile a PyMC model for nutpie (numba backend): the slow step that refits reuse.

    Chains start at the model's starting values (see ``build.starting_values``), which keeps
    them out of reflected and marker-dropping modes; only the standardised random effects and
    latent disturbances z get a small jitter: at z = 0 the gradient of a loading, or of a
    correlation between a random parameter and a random intercept, is exactly zero, and
    nutpie's initial mass matrix needs it non-zero, while a large jitter can start a chain in
    a marker-dropping mode (a factor's variance near 0 with huge loadings).

    The compiled callbacks are kept on disk (:mod:`.callbacks`): a later process
    compiling the same graph loads them.
    """
    import nutpie

    with cached_callbacks():
        compiled = nutpie.compile_pymc_model(model, cache=True)
    return dataclasses.replace(compiled, initial_point_func=_initial_points(model))


def run_sampler(model: pm.Model, compiled, *, draws: int, tune: int, chains: int, random_seed: int | None,
                sampler: str, progressbar: bool | str, target_accept: float = 0.8) -> xr.DataTree:
    """Draw ``chains`` × ``draws`` posterior draws after ``tune`` warm-up iterations.

    ``compiled`` is the nutpie-compiled ``model`` (used only by the nutpie sampler).
    """
    progressbar = show_progress(progressbar)
    if sampler == "nutpie":
        import nutpie

        return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=random_seed,
                             progress_bar=progressbar, target_accept=target_accept, save_warmup=False)
    # PyMC's own NUTS runs its chains one after another: in parallel it forks the process, and the
    # fork of a process that has run nutpie (whose threads hold locks) can hang in the child.
    if sampler == "pymc":
        own = {"init": "adapt_diag", "cores": 1}
    else:
        chain_method = _chain_method(chains)
        own = {"nuts": {"chain_method": chain_method}, "cores": min(chains, 2)}
        # blackjax's progress bar is an IO callback inside a lax.cond, which JAX cannot vectorise
        progressbar = progressbar and not (sampler == "blackjax" and chain_method == "vectorized")
    return pm.sample(draws=draws, tune=tune, chains=chains, random_seed=random_seed, progressbar=progressbar,
                     nuts_sampler=sampler, model=model, target_accept=target_accept,
                     compute_convergence_checks=False, **own)


def _chain_method(chains: int) -> str:
    """How the JAX samplers run their chains: one device per chain ("parallel", PyMC's default) when
    JAX has that many, else vectorised on one device (a GPU; or the CPU when JAX started before
    PyMC's import could ask it for one host device per chain, where "parallel" fails)."""
    import jax
    import pymc.sampling.jax  # noqa: F401  (sets the host device count if JAX has not started yet)

    return "parallel" if jax.local_device_count() >= chains else "vectorized"

