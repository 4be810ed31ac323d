"""Cold and warm compile of every template and benchmark model, and where the seconds go.

    .venv/bin/python bench/compile.py --label before               # every model; adds to bench/compile.json
    .venv/bin/python bench/compile.py --label after demo logit      # some models
    .venv/bin/python bench/compile.py --table before                # print a label's table (Markdown)

Per model, two fresh processes share one new, empty cache directory (PyTensor's compiledir,
its numba cache inside it, and ``NUMBA_CACHE_DIR``): the first compiles cold, the second warm.
Each runs ``Model.fit`` for a short run (2 chains x (300 + 300), seed 1) and reports the compile
(``fit`` until nutpie starts sampling: wall and CPU seconds), the sampling seconds, gradients per
second per chain, the posterior means of ``theta`` (cold and warm must agree to the bit), and
where the compile went: numba under its compiler lock (typing, lowering, cache loads) and the part
of it in LLVM (optimisation and machine code), PyTensor building the functions (nutpie's
``_make_functions``: rewrites and linking, numba time excluded), the number of functions numba
compiled from scratch, and the rest (building the PyMC model, nutpie). The parent records each
child's CPU seconds (``getrusage``) and the 1-minute load when it started: the machine has 2
cores that others share.

The models: the templates (``bayes_msem/templates``), fitted to the data their tests simulate
(``tests/test_templates.py``), and the package side of the five ``bench/suite.py`` cases.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STORE = HERE / "compile.json"
SUITE_CASES = ("demo", "random_slope", "random_loading", "logit", "three_level")
SHORT_RUN = dict(draws=300, tune=300, chains=2, random_seed=1)


def model_names() -> list[str]:
    from bayes_msem.templates import available_templates

    return [f"template:{name}" for name in available_templates()] + [f"suite:{name}" for name in SUITE_CASES]


def build(name: str):
    """The ``bm.Model`` called ``name`` ("template:NAME" or "suite:CASE") with its data."""
    kind, key = name.split(":")
    if kind == "suite":
        sys.path.insert(0, str(HERE))
        from suite import CASES

        case = CASES[key]
        return case.package(case.data())
    sys.path.insert(0, str(ROOT / "tests"))
    from test_templates import SIMULATORS

    import bayes_msem as bm

    simulated = SIMULATORS[key]()
    return bm.Model(bm.template(key), simulated.data, **simulated.options)


class _Clock:
    """Outermost-event timers for numba's compiler lock and LLVM, and a count of from-scratch compiles."""

    def __init__(self) -> None:
        from numba.core import event

        self.compiled = 0
        clock = self

        class Count(event.Listener):
            def on_start(self, _event) -> None:
                clock.compiled += 1

            def on_end(self, _event) -> None:
                pass

        self._timers = {kind: event.TimingListener() for kind in ("numba:compiler_lock", "numba:llvm_lock")}
        for kind, timer in self._timers.items():
            event.register(kind, timer)
        event.register("numba:compile", Count())

    def __getitem__(self, kind: str) -> float:
        timer = self._timers[kind]
        return timer.duration if timer.done else 0.0


def child(name: str) -> dict:
    """Build and fit one model in this process; the figures of :func:`main`'s table."""
    import numpy as np
    import nutpie.compile_pymc as nutpie_compile

    import bayes_msem.model
    from bayes_msem.sampling.samplers import run_sampler

    sys.path.insert(0, str(HERE))
    from suite import sampling_marks

    clock = _Clock()
    pytensor_seconds = {"total": 0.0, "numba": 0.0}
    make_functions = nutpie_compile._make_functions

    def timed(*args, **kwargs):
        started, numba_before = time.perf_counter(), clock["numba:compiler_lock"]
        try:
            return make_functions(*args, **kwargs)
        finally:
            pytensor_seconds["total"] += time.perf_counter() - started
            pytensor_seconds["numba"] += clock["numba:compiler_lock"] - numba_before

    def snapshot(*args, **kwargs):  # numba compiles LAPACK lookups lazily at the first draw: not compile time
        at_start.update(numba=clock["numba:compiler_lock"], llvm=clock["numba:llvm_lock"], compiled=clock.compiled)
        return run_sampler(*args, **kwargs)

    at_start: dict = {}
    nutpie_compile._make_functions, bayes_msem.model.run_sampler = timed, snapshot
    model = build(name)
    with sampling_marks() as marks:
        started, started_cpu = time.perf_counter(), time.process_time()
        fit = model.fit(quiet=True, progressbar=False, **SHORT_RUN)
    steps = np.array([s for s, _ in marks["chains"]], dtype=float)
    runtime = np.array([float(getattr(r, "total_seconds", lambda: r / 1000)()) for _, r in marks["chains"]])
    numba, llvm = at_start["numba"], at_start["llvm"]
    compile_seconds = marks["sample"] - started
    return {
        "strategy": model.strategy.kind, "compile": compile_seconds, "compile_cpu": marks["sample_cpu"] - started_cpu,
        "sampling": marks["sampled"] - marks["sample"], "gradients_per_s": float(np.mean(steps / runtime)),
        "numba": numba, "llvm": llvm, "numba_compiled": at_start["compiled"],
        "pytensor": pytensor_seconds["total"] - pytensor_seconds["numba"],
        "other": compile_seconds - numba - (pytensor_seconds["total"] - pytensor_seconds["numba"]),
        "mean": {k: float(v) for k, v in fit.idata.posterior["theta"].mean(("chain", "draw")).to_series().items()},
    }


def spawn(name: str, cache: Path, script: str = __file__) -> dict:
    """Run ``script --child name`` (by default this file's :func:`child`) in a fresh process whose
    compile caches live in ``cache``; its figures, the process's CPU seconds and the 1-minute load
    when it started."""
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={cache}", "NUMBA_CACHE_DIR": str(cache / "numba_own")}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run([sys.executable, script, "--child", name], env=env, check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**result, "process_wall": time.perf_counter() - started, "process_cpu": cpu, "load": load}


def measure(name: str, shared: Path | None = None) -> dict:
    """Cold then warm, each in a fresh process, sharing one new cache directory (or ``shared``: the
    caches that the models measured before filled, so "cold" is a new structure on a used machine)."""
    with tempfile.TemporaryDirectory(prefix="bayes_msem_compile_") as cache:
        cold = spawn(name, shared or Path(cache))
        warm = spawn(name, shared or Path(cache))
    same = cold.pop("mean") == warm.pop("mean")
    return {"cold": cold, "warm": warm, "same_draws": same}


def table(rows: dict) -> str:
    """The Markdown table of one label's results."""
    lines = ["| model | strategy | cold compile s (CPU s) | numba s (LLVM s) | functions numba compiled | PyTensor s "
             "| other s | load | warm compile s | sampling s cold / warm | gradients/s cold / warm | same draws |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, r in rows.items():
        c, w = r["cold"], r["warm"]
        lines.append(
            f"| {name} | {c['strategy']} | {c['compile']:.1f} ({c['compile_cpu']:.1f}) | {c['numba']:.1f} ({c['llvm']:.1f}) "
            f"| {c['numba_compiled']} | {c['pytensor']:.1f} | {c['other']:.1f} | {c['load']:.2f} | {w['compile']:.1f} "
            f"| {c['sampling']:.2f} / {w['sampling']:.2f} | {c['gradients_per_s']:,.0f} / {w['gradients_per_s']:,.0f} "
            f"| {'yes' if r['same_draws'] else 'NO'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models (template:NAME, suite:CASE, or a bare NAME); all if none")
    parser.add_argument("--label", default="latest", help="the key under which compile.json keeps the results")
    parser.add_argument("--table", help="print the table of this label and stop")
    parser.add_argument("--store", type=Path, default=STORE, help="the JSON file of results (default bench/compile.json)")
    parser.add_argument("--shared-cache", type=Path, help="one cache directory for all models, kept between them")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    store = json.loads(args.store.read_text()) if args.store.exists() else {}
    if args.table:
        print(table(store[args.table]["models"]))
        return
    every = model_names()
    names = [next(n for n in every if n == name or n.split(":")[1] == name) for name in args.names] or every
    entry = store.setdefault(args.label, {"models": {}})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    entry.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit=commit.strip(), cores=os.cpu_count())
    for name in names:
        entry["models"][name] = measure(name, args.shared_cache)
        args.store.write_text(json.dumps(store, indent=1))
        print(name, json.dumps(entry["models"][name]), flush=True)
    print(table(entry["models"]))


if __name__ == "__main__":
    main()
