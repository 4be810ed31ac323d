"""nutpie's two C callbacks, kept in PyTensor's on-disk numba cache so that a new process compiles
a model it has compiled before in about 2.5 s instead of 11-14 s.

nutpie calls, per leapfrog step and per stored draw,

    logp(n, x, grad, logp, user_data) → status    (log-density and gradient at the flat point x)
    expand(n, m, x, values, user_data) → status   (the m stored values at x)

each a numba ``cfunc`` around PyTensor's compiled graph function f(x, d_1, …, d_k), where d_i are
the model's data arrays, found through pointers in the ``user_data`` record. nutpie's own
wrappers capture that record's layout and the data as compile-time constants, which numba
cannot cache, so every process re-types and re-optimises the whole graph (most of the compile
time). The wrappers here are generated as source that reads the pointers and shapes at fixed
word offsets of the record, and are registered under a key made of that source and PyTensor's
cache key of f: the same graph and data layout load the compiled callbacks from disk. Graphs
PyTensor cannot cache (no key for f), or a record of another layout, fall back to nutpie's
wrappers.

Same draws from an empty or a warm cache. A callback's machine code holds its own copy of f and
of every function f calls, but numba links those copies as weak ("linkonce_odr") symbols, and
the JIT binds a weak symbol to the first definition loaded into the process: the process that
compiles f (cache empty) runs the separately compiled functions it built first, a process that
loads the callback from disk runs the callback's copies. Optimised apart, with PyTensor's
fast-math flags, the two can round differently, and NUTS amplifies that (the ansari_jedidi
template, seed 5, 2 × (200 + 200): one chain's draws differed by up to 3e-8 between the two
processes). The functions linked into a callback are therefore made internal before its machine
code is emitted: every process runs the callback's own code, the code on disk. This uses numba's
private code-library interface (checked with numba 0.68).

nutpie's user-data record is read by field offsets, a private layout: checked with nutpie
0.16.9-0.16.11 (0.16.9 is the first whose record is keyed by ``shared_var_keys``, which
:mod:`.samplers` uses; its ``compile_pymc`` is identical up to 0.16.11).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading

import numba
import numpy as np

_SWAP_LOCK = threading.Lock()
# part of the callbacks' cache key: raise it whenever their machine code changes (2: self-contained)
CALLBACK_VERSION = 2
_CALLBACK_NAMES = ("logp_callback", "expand_callback", "logp_numba", "expand_numba")  # ours, then nutpie's

_LOGP = """
def logp_callback(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        words = numba.carray(user_data_, ({words},), np.uint64)
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_dim},))
        logp = numba.carray(logp_, ())
{data}
        logp_value, grad = graph({arguments})
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

_EXPAND = """
def expand_callback(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim} or expanded != {n_expanded}:
        return -1
    try:
        words = numba.carray(user_data_, ({words},), np.uint64)
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_expanded},))
{data}
        (values,) = graph({arguments})
        out[...] = values
    except Exception:
        return -2
    return 0
"""


def _word(record: np.dtype, block: str, key: str) -> int:
    """The offset, in 8-byte words, of field ``shared.block.key`` of nutpie's user-data record;
    a TypeError where the field is not made of 8-byte words."""
    shared, base = record.fields["shared"][:2]
    sub, offset = shared.fields[block][:2]
    field, position = sub.fields[key][:2]
    if field.base.itemsize != 8 or (base + offset + position) % 8:
        raise TypeError(f"field {block}.{key} of the user-data record is not 8-byte words")
    return (base + offset + position) // 8


def _data_lines(record: np.dtype, keys: list[str], data: dict[str, np.ndarray]) -> tuple[str, str]:
    """Source that views each data array d_i from its pointer and shape words, and the argument list
    x, d_1, …, d_k of the graph function."""
    lines = []
    for i, key in enumerate(keys):
        pointer, shape = _word(record, "data", key), _word(record, "shape", key)
        dims = [f"int(words[{shape + axis}])" for axis in range(data[key].ndim)]
        flat = f"({' * '.join(dims)},)" if dims else "()"
        view = f"numba.carray(as_pointer(words[{pointer}]), {flat}, np.{data[key].dtype.name})"
        lines.append(f"        d{i} = {view}.reshape(({', '.join(dims)},))" if dims else f"        d{i} = {view}")
    return "\n".join(lines), ", ".join(["x", *(f"d{i}" for i in range(len(keys)))])


def _cached_callback(template: str, name: str, graph, record: np.dtype, keys: list[str],
                     data: dict[str, np.ndarray], **sizes: int):
    """The callback's Python function registered for caching, or None where it cannot be cached."""
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    py_func = getattr(graph, "py_func", None)  # a numba dispatcher's Python function
    graph_key = CACHED_SRC_FUNCTIONS.get(py_func) if py_func is not None else None
    if graph_key is None or record.itemsize % 8:
        return None
    try:
        block, arguments = _data_lines(record, keys, data)
    except (KeyError, TypeError):  # a record without nutpie's shared.data/size/shape layout
        return None
    source = template.format(data=block, arguments=arguments, words=record.itemsize // 8, **sizes)
    # numba's cached environment records this module's name, so the name is part of the key
    key = hashlib.sha256(f"{source}\n{graph_key}\n{CALLBACK_VERSION}\n{__name__}".encode()).hexdigest()
    env = {"__name__": __name__, "numba": numba, "np": np, "graph": graph, "as_pointer": address_as_void_pointer}
    return compile_numba_function_src(source, name, env, cache_key=f"bayes_msem_{name}_{key}")


_DOUBLES = numba.types.CPointer(numba.types.double)
_LOGP_SIGNATURE = numba.types.int64(numba.types.uint64, _DOUBLES, _DOUBLES, _DOUBLES, numba.types.voidptr)
_EXPAND_SIGNATURE = numba.types.int64(numba.types.uint64, numba.types.uint64, _DOUBLES, _DOUBLES, numba.types.voidptr)


def _internalize_linked(library) -> None:
    """Give every function that ``library`` (a numba code library, optimised, not yet emitted)
    linked in from other libraries internal linkage, so its calls bind to its own copies."""
    linked = {function.name for other in library._linking_libraries
              for function in other._get_module_for_linking().functions if not function.is_declaration}
    for function in library._final_module.functions:
        if function.name in linked and not function.is_declaration:
            function.linkage = "internal"


@contextlib.contextmanager
def _self_contained_callbacks():
    """Within this context the C callbacks compiled (:data:`_CALLBACK_NAMES`) run only their own
    code (:func:`_internalize_linked`)."""
    from numba.core.codegen import CPUCodeLibrary

    own_optimize = CPUCodeLibrary._optimize_final_module

    def optimize(library) -> None:
        own_optimize(library)
        if library.name.rpartition(".")[2] in _CALLBACK_NAMES:
            _internalize_linked(library)

    CPUCodeLibrary._optimize_final_module = optimize
    try:
        yield
    finally:
        CPUCodeLibrary._optimize_final_module = own_optimize


@contextlib.contextmanager
def cached_callbacks():
    """Within this context ``nutpie.compile_pymc_model(model, cache=True)`` builds cacheable
    callbacks (nutpie's own wherever they cannot be cached)."""
    import nutpie.compile_pymc as nutpie_compile

    own_logp, own_expand = nutpie_compile._make_c_logp_func, nutpie_compile._make_c_expand_func

    def logp(n_dim, graph, user_data, keys, data):
        function = _cached_callback(_LOGP, "logp_callback", graph, user_data.dtype, keys, data, n_dim=n_dim)
        return (function, _LOGP_SIGNATURE) if function else own_logp(n_dim, graph, user_data, keys, data)

    def expand(n_dim, n_expanded, graph, user_data, keys, data):
        function = _cached_callback(_EXPAND, "expand_callback", graph, user_data.dtype, keys, data,
                                    n_dim=n_dim, n_expanded=n_expanded)
        return ((function, _EXPAND_SIGNATURE) if function
                else own_expand(n_dim, n_expanded, graph, user_data, keys, data))

    with _SWAP_LOCK, _self_contained_callbacks():
        nutpie_compile._make_c_logp_func, nutpie_compile._make_c_expand_func = logp, expand
        try:
            yield
        finally:
            nutpie_compile._make_c_logp_func, nutpie_compile._make_c_expand_func = own_logp, own_expand
