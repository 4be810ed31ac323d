"""A structure-independent compiled graph for the two-level marginal likelihood: one cold compile per machine.

    .venv/bin/python bench/generic_graph.py --check        # its log density against the package's, per model
    .venv/bin/python bench/generic_graph.py                # compiles and sampling in fresh processes (the table
                                                           # of bench/GENERIC_GRAPH.md); --store FILE keeps the figures

The package's marginal graph bakes the model's structure into the graph: which θ element goes
into which entry of B, Ψ, α, Γ, the fixed values, the dimensions and the prior groups, so every
structure is a new graph and a new numba compile (``bench/COMPILE.md``). Here the same
log-density (two levels, complete data, no random slopes, no covariance blocks; normal priors on
the real-valued parameters, gamma priors on the SDs of the variances) is one graph for every such
model: each model-specific array is ``pm.Data`` (:func:`generic_arrays`), the free parameters are
one vector u of unknown length (u_i = θ_i, or log √θ_i for a variance), and nutpie is driven
with a point x of unknown length (:func:`symbolic_make_functions`) and callbacks that take the
length from their argument (:data:`LOGP_SOURCE`, :data:`EXPAND_SOURCE`). Nothing under
``bayes_msem/`` changes: these pieces replace nutpie's and the package's inside
:func:`generic_compile` (:func:`symbolic_sizes`).

Per level, with T = (I − B)⁻¹ and the selection F of the observed variables,

    Σ = F T Ψ Tᵀ Fᵀ,   μ = F T α,   Π = F T Γ,

and the marginal log-likelihood of :mod:`bayes_msem.likelihood.marginal` (its sufficient statistics,
:class:`MarginalStatistics`, and its fused Gaussian kernel). T is a matrix inverse (any B, recursive
or not) where the package sums the finite series I + B + … + B^d for acyclic B.

Timing (:func:`run`), as ``bench/compile.py``: fresh processes whose compile caches (PyTensor's
compiledir with its numba cache, and ``NUMBA_CACHE_DIR``) live in a new, empty directory. The
generic graph: the models in order in one directory (the first cold, each later one a new
structure on the caches the earlier ones filled), then each again (warm). The package's own
graph: each model cold and warm in a directory of its own. Each process compiles, times nutpie's
logp-and-gradient callback at the starting point (:func:`gradient_cost`) and samples 2 chains x
(1000 + 1000), seed 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pymc as pm
    import pytensor.tensor as pt
    from nutpie.compile_pymc import CompiledPyMCModel

    import bayes_msem as bm

Tensors = dict[str, "pt.TensorVariable"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUN = dict(draws=1000, tune=1000, chains=2, seed=1)
GRADIENT_REPEATS = 20_000
MODELS = ("demo", "twolevel_cfa", "mediation_211")
DEMO = """level: within
  fw =~ y1 + y2 + y3
  fw ~ x1 + x2 + x3
level: between
  fb =~ y1 + y2 + y3
  fb ~ w1 + w2"""
LEVELS = ("within", "between")
MATRICES = ("beta", "psi", "alpha", "gamma")


def package_model(name: str) -> bm.Model:
    """The ``bm.Model`` called ``name``: ``demo`` (Demo.twolevel) or a template fitted to its test's simulated data."""
    import bayes_msem as bm

    if name == "demo":
        return bm.Model(DEMO, bm.datasets.load("demo_twolevel"), cluster="cluster")
    sys.path.insert(0, str(ROOT / "tests"))
    from test_templates import SIMULATORS

    simulated = SIMULATORS[name]()
    return bm.Model(bm.template(name), simulated.data, **simulated.options)


def generic_arrays(model: bm.Model) -> dict[str, np.ndarray]:
    """Everything model-specific, as arrays: the prior groups (θ indices and prior arguments),
    per level the bases and free-entry scatters (rows, cols, θ index) of B, Ψ, α, Γ, the
    selection F (p × m) of the observed variables and their embedding E (p_c × p) in the cluster
    vector d_j, and the marginal strategy's sufficient statistics (``stat_*``)."""
    from bayes_msem.likelihood.gaussian import Layout
    from bayes_msem.likelihood.marginal import MarginalStatistics

    plan = model.plan
    if model.strategy.name != "marginal" or not plan.two_level or plan.three_level or plan.random or plan.blocks \
            or model.data.has_missing:
        raise NotImplementedError("the generic graph covers two-level marginal models with complete data, "
                                  "no random slopes and no free covariances")
    priors = list(plan.parameters["prior"])
    normal = [i for i, p in enumerate(priors) if p.family == "normal" and p.scale is None]
    gamma_sd = [i for i, p in enumerate(priors) if p.family == "gamma" and p.scale == "sd"]
    if len(normal) + len(gamma_sd) != len(priors):
        raise NotImplementedError("the generic graph covers normal priors and gamma priors on SDs only")
    arrays = {
        "normal_index": np.array(normal, dtype=np.int64),
        "normal_mu": np.array([priors[i].args[0] for i in normal]),
        "normal_sigma": np.array([priors[i].args[1] for i in normal]),
        "gamma_sd_index": np.array(gamma_sd, dtype=np.int64),
        "gamma_alpha": np.array([priors[i].args[0] for i in gamma_sd]),
        "gamma_beta": np.array([priors[i].args[1] for i in gamma_sd]),
    }
    layout = Layout.from_plan(plan)
    for level in LEVELS:
        level_plan = plan.levels[level]
        for matrix in MATRICES:
            spec = getattr(level_plan, matrix)
            arrays.update({f"{level}_{matrix}_base": spec.base.astype(float), f"{level}_{matrix}_rows": spec.rows,
                           f"{level}_{matrix}_cols": spec.cols, f"{level}_{matrix}_index": spec.index})
        observed = level_plan.roles.observed
        arrays[f"{level}_select"] = np.eye(len(level_plan.variables))[: len(observed)]
        arrays[f"{level}_embed"] = layout.embedding(layout.within if level == "within" else layout.top)
    stats = MarginalStatistics.from_data(layout, model.data)
    arrays.update({f"stat_{f.name}": np.asarray(getattr(stats, f.name), dtype=float)
                   for f in dataclasses.fields(stats)})
    return arrays


def free_point(arrays: dict[str, np.ndarray], theta: np.ndarray) -> np.ndarray:
    """The generic model's free vector u at natural-scale θ: θ_i, or log √θ_i for a variance."""
    u = np.array(theta, dtype=float)
    u[arrays["gamma_sd_index"]] = np.log(np.sqrt(u[arrays["gamma_sd_index"]]))
    return u


def _fill(data: Tensors, name: str, theta: pt.TensorVariable) -> pt.TensorVariable:
    """The matrix ``<name>_base`` with ``[rows, cols] = θ[index]``."""
    import pytensor.tensor as pt

    base = data[f"{name}_base"]
    return pt.set_subtensor(base[data[f"{name}_rows"], data[f"{name}_cols"]], theta[data[f"{name}_index"]])


def _level_moments(data: Tensors, level: str, theta: pt.TensorVariable) -> tuple[pt.TensorVariable, ...]:
    """Σ = F T Ψ Tᵀ Fᵀ (symmetrised), μ = F T α and Π = F T Γ of one level, T = (I − B)⁻¹."""
    import pytensor.tensor as pt

    beta, psi, alpha, gamma = (_fill(data, f"{level}_{matrix}", theta) for matrix in MATRICES)
    effects = data[f"{level}_select"] @ pt.linalg.inv(pt.eye(beta.shape[0]) - beta)
    cov = effects @ psi @ effects.T
    return 0.5 * (cov + cov.T), (effects @ alpha)[:, 0], effects @ gamma


def _prior(data: Tensors, free: pt.TensorVariable) -> pt.TensorVariable:
    """Σ log N(u_i; μ_i, σ_i) over the normal group, Σ [log Gamma(e^{u_i}; a_i, b_i) + u_i] over the
    SDs (the log-Jacobian of SD = e^u); as PyMC's Normal and log-transformed Gamma."""
    import pytensor.tensor as pt

    z = (free[data["normal_index"]] - data["normal_mu"]) / data["normal_sigma"]
    normal = -0.5 * z**2 - pt.log(data["normal_sigma"]) - 0.5 * np.log(2 * np.pi)
    u, a, b = free[data["gamma_sd_index"]], data["gamma_alpha"], data["gamma_beta"]
    gamma = a * pt.log(b) - pt.gammaln(a) + (a - 1) * u - b * pt.exp(u) + u
    return normal.sum() + gamma.sum()


def _loglik(data: Tensors, theta: pt.TensorVariable) -> pt.TensorVariable:
    """The marginal log-likelihood (:func:`bayes_msem.likelihood.marginal.marginal_loglik`) of the
    complete two-level case, every size symbolic."""
    import pytensor.tensor as pt

    from bayes_msem.likelihood.kernel import gaussian_scatter

    within_cov, within_mean, within_coef = _level_moments(data, "within", theta)
    between_cov, between_mean, between_coef = _level_moments(data, "between", theta)
    e_w, e_b = data["within_embed"], data["between_embed"]
    sizes, groups = data["stat_sizes"], data["stat_crossprod"].shape[0]
    cov = (e_b @ between_cov @ e_b.T)[None] + (e_w @ within_cov @ e_w.T)[None] / sizes[:, None, None]
    mean = e_b @ between_mean + e_w @ within_mean
    coef = pt.concatenate([pt.eye(e_b.shape[0]), -mean[:, None], -(e_w @ within_coef), -(e_b @ between_coef)], axis=1)
    between = gaussian_scatter(cov, pt.broadcast_to(coef, (groups, *coef.shape)), data["stat_crossprod"],
                               data["stat_counts"])
    within_a = pt.concatenate([pt.eye(within_cov.shape[0]), -within_coef], axis=1)
    within = gaussian_scatter(within_cov[None], within_a[None], data["stat_within_scatter"], data["stat_within_count"])
    return data["stat_constant"].sum() + within.sum() + between.sum()


def generic_model(arrays: dict[str, np.ndarray]) -> pm.Model:
    """The PyMC model: every array ``pm.Data``, one flat free vector u of their implied length,
    deterministic θ (u_i, or e^{2u_i} for a variance), potentials for the prior and the likelihood."""
    import pymc as pm
    import pytensor.tensor as pt

    with pm.Model() as model:
        data = {name: pm.Data(name, value) for name, value in arrays.items()}
        length = data["normal_index"].shape[0] + data["gamma_sd_index"].shape[0]
        free = pm.Flat("free", shape=(length,))
        theta = pt.zeros(length)
        theta = pt.set_subtensor(theta[data["normal_index"]], free[data["normal_index"]])
        theta = pt.set_subtensor(theta[data["gamma_sd_index"]], pt.exp(free[data["gamma_sd_index"]]) ** 2)
        theta = pm.Deterministic("theta", theta)
        pm.Potential("prior", _prior(data, free))
        pm.Potential("loglik", _loglik(data, theta))
    return model


def symbolic_make_functions(model: pm.Model, *, mode: str, compute_grad: bool, join_expanded: bool,
                            pymc_initial_point_fn: Callable, var_names: list[str] | None = None) -> tuple:
    """nutpie's ``_make_functions`` for a model of one free vector, with the point x typed as a vector
    of unknown length (nutpie types it ``(n_dim,)`` and reshapes each free variable to its numeric
    shape, which puts the sizes into the graph). Always the gradient and one joined expand output,
    (x, the deterministics), as nutpie's numba path asks; ``var_names`` is not supported."""
    if var_names is not None:
        raise NotImplementedError("the generic graph stores every deterministic")
    import pytensor.tensor as pt
    from nutpie.compile_pymc import _compute_shapes, _rv_dict_to_flat_array_wrapper
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.graph import clone_replace, rewrite_graph

    (free,) = model.free_RVs
    value = model.rvs_to_values[free]
    shapes = _compute_shapes(model)
    point = pt.vector("_unconstrained_point", dtype="float64")
    logp = rewrite_graph(model.logp(), include=["canonicalize", "stabilize"])
    logp, grad = clone_replace([logp, pt.grad(logp, value)], {value: point})
    with model:
        logp_function = compile_pymc((point,), (logp, grad), mode=mode)
    remaining = [v for v in model.unobserved_value_vars if v.name != value.name]
    with model:
        expand_function = compile_pymc((point,), [pt.concatenate([point, *(v.ravel() for v in remaining)])],
                                       givens=[(value, point)], mode=mode)
    names = [value.name, *(v.name for v in remaining)]
    lengths = [int(np.prod(shapes[name])) for name in names]
    ends = np.cumsum(lengths)
    slices = [slice(int(end - n), int(end)) for n, end in zip(lengths, ends)]
    initial = _rv_dict_to_flat_array_wrapper(pymc_initial_point_fn, names[:1], [tuple(shapes[value.name])])
    return (lengths[0], int(ends[-1]), logp_function, expand_function, initial,
            (names, slices, [tuple(shapes[name]) for name in names]), [])


# nutpie's callbacks as in bayes_msem.sampling.callbacks, with the point's length taken from the argument
LOGP_SOURCE = """
def logp_callback(dim, x_, out_, logp_, user_data_):
    try:
        words = numba.carray(user_data_, ({words},), np.uint64)
        x = numba.carray(x_, (dim,))
        out = numba.carray(out_, (dim,))
        logp = numba.carray(logp_, ())
{data}
        logp_value, grad = graph({arguments})
        if grad.shape[0] != dim:
            return -1
        logp[()] = logp_value
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_value):
            return 4
    except Exception:
        return 1
    return 0
"""

EXPAND_SOURCE = """
def expand_callback(dim, expanded, x_, out_, user_data_):
    try:
        words = numba.carray(user_data_, ({words},), np.uint64)
        x = numba.carray(x_, (dim,))
        out = numba.carray(out_, (expanded,))
{data}
        (values,) = graph({arguments})
        if values.shape[0] != expanded:
            return -1
        out[...] = values
    except Exception:
        return -2
    return 0
"""


ARGUMENTS_PER_TUPLE = 16


def _chunked_arguments(data_lines: Callable) -> Callable:
    """``bayes_msem.sampling.callbacks._data_lines`` with the argument list x, d_1, …, d_k written as
    ``*((x, d_1, …) + (…) + …)``: Python 3.12 compiles a call or tuple of more than 30 items to a
    list converted to a tuple, an operation numba cannot type."""

    def lines(record, keys, data) -> tuple[str, str]:
        block, arguments = data_lines(record, keys, data)
        names = arguments.split(", ")
        chunks = [names[i:i + ARGUMENTS_PER_TUPLE] for i in range(0, len(names), ARGUMENTS_PER_TUPLE)]
        return block, "*(" + " + ".join(f"({', '.join(chunk)},)" for chunk in chunks) + ")"

    return lines


@contextlib.contextmanager
def symbolic_sizes() -> Iterator[None]:
    """Within this context nutpie compiles with :func:`symbolic_make_functions` and the package's
    cached callbacks use :data:`LOGP_SOURCE` and :data:`EXPAND_SOURCE` (:func:`_chunked_arguments`)."""
    import nutpie.compile_pymc as nutpie_compile

    import bayes_msem.sampling.callbacks as callbacks

    own = nutpie_compile._make_functions, callbacks._LOGP, callbacks._EXPAND, callbacks._data_lines
    (nutpie_compile._make_functions, callbacks._LOGP, callbacks._EXPAND,
     callbacks._data_lines) = symbolic_make_functions, LOGP_SOURCE, EXPAND_SOURCE, _chunked_arguments(own[3])
    try:
        yield
    finally:
        nutpie_compile._make_functions, callbacks._LOGP, callbacks._EXPAND, callbacks._data_lines = own


def generic_compile(model: pm.Model, start: np.ndarray) -> CompiledPyMCModel:
    """The nutpie-compiled generic model (numba, cached callbacks), every chain starting at u = ``start``."""
    import nutpie

    from bayes_msem.sampling.callbacks import cached_callbacks

    with symbolic_sizes(), cached_callbacks():
        compiled = nutpie.compile_pymc_model(model, cache=True)
    return dataclasses.replace(compiled, initial_point_func=lambda seed: start.copy())


def _value_function(model: pm.Model, name: str) -> Callable[[dict], np.ndarray]:
    """The model's variable ``name`` as a function of a point (its free variables' values)."""
    (variable,) = model.replace_rvs_by_values([model[name]])
    return model.compile_fn(variable, inputs=model.value_vars, on_unused_input="ignore")


def check(name: str) -> dict:
    """The generic and the package's log densities (``compile_logp``: prior and likelihood, on the
    samplers' unconstrained scale) and gradients (``compile_dlogp``) at the package's starting point
    and at points moved from it. The package's unconstrained vector is u permuted: its free
    variables (one per prior group) hold the θ elements named by their coordinates, on u's scale."""
    model = package_model(name)
    package = model.pymc_model
    logp, dlogp, theta_of = package.compile_logp(), package.compile_dlogp(), _value_function(package, "theta")
    arrays = generic_arrays(model)
    generic = generic_model(arrays)
    generic_logp, generic_dlogp = generic.compile_logp(), generic.compile_dlogp()
    position = {n: i for i, n in enumerate(model.plan.parameters["name"])}
    order = [position[n] for rv in package.free_RVs for n in package.coords[package.named_vars_to_dims[rv.name][0]]]
    rng = np.random.default_rng(0)
    rows = []
    start = package.initial_point()
    for shift in (0.0, 0.1, 0.3):
        point = {k: v + shift * rng.standard_normal(v.shape) for k, v in start.items()}
        u = {"free": free_point(arrays, theta_of(point))}
        ours, theirs = float(generic_logp(u)), float(logp(point))
        gradient, own_gradient = generic_dlogp(u)[order], dlogp(point)
        rows.append(dict(shift=shift, package=theirs, generic=ours, difference=ours - theirs,
                         gradient_difference=float(np.abs(gradient - own_gradient).max()),
                         gradient_scale=float(np.abs(own_gradient).max())))
    return {"model": name, "parameters": len(model.plan.parameters), "points": rows}


def _numba_clock() -> Callable[[], dict]:
    """A reader of numba's from-scratch compiles and its compiler-lock and LLVM seconds since now."""
    from numba.core import event

    compiled = [0]

    class Count(event.Listener):
        def on_start(self, _event) -> None:
            compiled[0] += 1

        def on_end(self, _event) -> None:
            pass

    timers = {kind: event.TimingListener() for kind in ("numba:compiler_lock", "numba:llvm_lock")}
    for kind, timer in timers.items():
        event.register(kind, timer)
    event.register("numba:compile", Count())
    return lambda: {"numba_compiled": compiled[0], "numba": timers["numba:compiler_lock"].duration
                    if timers["numba:compiler_lock"].done else 0.0,
                    "llvm": timers["numba:llvm_lock"].duration if timers["numba:llvm_lock"].done else 0.0}


def gradient_cost(compiled: CompiledPyMCModel, point: np.ndarray,
                  repeats: int = GRADIENT_REPEATS) -> tuple[float, float]:
    """CPU microseconds per call of nutpie's logp-and-gradient callback at ``point`` (called
    through ctypes ``repeats`` times, the median of three rounds), and the log density there."""
    import ctypes

    double_pointer = ctypes.POINTER(ctypes.c_double)
    callback = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, double_pointer, double_pointer, double_pointer,
                                ctypes.c_void_p)(compiled.compiled_logp_func.address)
    x, grad, logp = np.array(point, dtype=float), np.empty(len(point)), np.empty(1)
    arguments = (len(x), x.ctypes.data_as(double_pointer), grad.ctypes.data_as(double_pointer),
                 logp.ctypes.data_as(double_pointer), ctypes.c_void_p(compiled.user_data.ctypes.data))
    if callback(*arguments) != 0:
        raise RuntimeError("the logp callback failed at the starting point")
    rounds = []
    for _ in range(3):
        started = time.process_time()
        for _ in range(repeats):
            callback(*arguments)
        rounds.append((time.process_time() - started) / repeats * 1e6)
    return float(np.median(rounds)), float(logp[0])


def child(argument: str) -> dict:
    """Build, compile and sample model ``NAME`` in this process: ``generic:NAME`` through the generic
    graph, ``package:NAME`` through the package's own (``bayes_msem.sampling.samplers.compile_nutpie``)."""
    import nutpie

    from bayes_msem.sampling.build import starting_values
    from bayes_msem.sampling.samplers import compile_nutpie

    sys.path.insert(0, str(HERE))
    from suite import sampling_marks

    kind, name = argument.split(":")
    read = _numba_clock()
    started, started_cpu = time.perf_counter(), time.process_time()
    model = package_model(name)
    if kind == "generic":
        arrays = generic_arrays(model)
        compiled = generic_compile(generic_model(arrays), free_point(arrays, starting_values(model.plan, model.data)))
    else:
        compiled = compile_nutpie(model.pymc_model)
    compile_wall, compile_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    numba = read()
    microseconds, logp = gradient_cost(compiled, compiled.initial_point_func(0))
    with sampling_marks() as marks:
        idata = nutpie.sample(compiled, progress_bar=False, save_warmup=False, **RUN)
        sampling_cpu = time.process_time() - marks["sample_cpu"]
    steps = sum(s for s, _ in marks["chains"])
    mean = idata.posterior["theta"].mean(("chain", "draw")).to_numpy()
    return {"compile": compile_wall, "compile_cpu": compile_cpu, **numba, "gradient_us": microseconds,
            "logp_at_start": logp, "sampling": marks["sampled"] - marks["sample"], "sampling_cpu": sampling_cpu,
            "gradients_per_cpu_s": steps / sampling_cpu, "mean": [float(v) for v in mean]}


def spawn(argument: str, cache: Path) -> dict:
    """Run ``--child argument`` in a fresh process whose compile caches live in ``cache``
    (:func:`compile.spawn`, the cold/warm harness of ``bench/compile.py``)."""
    sys.path.insert(0, str(HERE))
    from compile import spawn as spawn_child

    return spawn_child(argument, cache, __file__)


def run(names: list[str]) -> dict:
    """The generic graph of the models in order, in one new cache directory (the first cold, each
    later one a new structure with the earlier ones' cache), then each again (warm); then the
    package's own graph of each, cold and warm, in a new cache directory per model."""
    runs = {}

    def record(label: str, argument: str, cache: str) -> None:
        runs[label] = {"argument": argument, **spawn(argument, Path(cache))}
        print(label, json.dumps({k: v for k, v in runs[label].items() if k != "mean"}), flush=True)

    with tempfile.TemporaryDirectory(prefix="bayes_msem_generic_") as cache:
        for k, name in enumerate(names):
            record(f"generic {name} {'cold' if k == 0 else 'new structure'}", f"generic:{name}", cache)
        for name in names:
            record(f"generic {name} warm", f"generic:{name}", cache)
    for name in names:
        with tempfile.TemporaryDirectory(prefix="bayes_msem_package_") as cache:
            record(f"package {name} cold", f"package:{name}", cache)
            record(f"package {name} warm", f"package:{name}", cache)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(MODELS), help=f"models in order (default {' '.join(MODELS)})")
    parser.add_argument("--check", action="store_true", help="compare the log densities and stop")
    parser.add_argument("--store", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    if args.check:
        for name in args.models:
            print(json.dumps(check(name)))
        return
    runs = run(args.models)
    if args.store:
        args.store.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
