"""Refits: fitting the same model structure to new data in the same process (a simulation study, a
sensitivity refit) reuses the compiled sampler and starts sampling within seconds.

    .venv/bin/python bench/refit.py      # every case of bench/suite.py; writes bench/REFIT.md

Per case of the suite (package side), in a fresh process: a first fit of the case's data, then
three refits, each to a data set simulated from the first fit's posterior means with
``Model.simulate`` on the same design (clusters, covariates). Each fit is timed from
``bm.Model(...)`` to the sampler's start and to its first draw (:func:`suite.sampling_marks`),
and the compilations are counted (``bayes_msem.sampling.samplers.compile_nutpie`` wrapped): a refit must
not compile.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from suite import CASES, machine, sampling_marks  # noqa: E402

SETTINGS = dict(draws=200, tune=200, chains=2)
REFITS = 3
BAR_SECONDS = 2.0


def measure(name: str) -> dict:
    """The first fit and :data:`REFITS` refits of one case, with the compilations each caused."""
    from bayes_msem import sample

    compiled = []
    original = sample.compile_nutpie

    def counting(model):
        compiled.append(model)
        return original(model)

    sample.compile_nutpie = counting
    case = CASES[name]
    data, fits = case.data(), []
    for step in range(1 + REFITS):
        before = len(compiled)
        with sampling_marks() as marks:
            started = time.perf_counter()
            model = case.package(data)
            fit = model.fit(random_seed=step + 1, **SETTINGS)
        fits.append({"start": marks["sample"] - started, "first_draw": marks["first_draw"] - started,
                     "compiled": len(compiled) - before, "rows": len(data)})
        if step == 0:
            estimates = fit.parameters()
        data = model.simulate(estimates, seed=100 + step)
    return {"first": fits[0], "refits": fits[1:]}


def render(results: dict) -> str:
    lines = ["| case | rows | first fit: to sampling s (compiles) | refits: to sampling s | refits: to first draw s "
             f"| refit compiles | under {BAR_SECONDS:.0f} s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, result in results.items():
        first, refits = result["first"], result["refits"]
        starts = [r["start"] for r in refits]
        draws = [r["first_draw"] for r in refits]
        lines.append(f"| {CASES[name].title} | {first['rows']:,} | {first['start']:.2f} ({first['compiled']}) "
                     f"| {', '.join(f'{s:.2f}' for s in starts)} | {', '.join(f'{d:.2f}' for d in draws)} "
                     f"| {sum(r['compiled'] for r in refits)} | {'yes' if max(starts) < BAR_SECONDS else 'no'} |")
    return "\n".join(lines)


def main(names: list[str]) -> None:
    results = {}
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--measure", name], check=True, capture_output=True,
                             text=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    table = render(results)
    print(table)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    (HERE / "REFIT.md").write_text(
        "# Refits: the same model structure on new data\n\n"
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; commit {commit}\n"
        f"- Machine: {machine()}\n"
        f"- Settings: nutpie, {SETTINGS['chains']} chains x {SETTINGS['tune']} warm-up + {SETTINGS['draws']} draws; "
        f"per case one process: a first fit, then {REFITS} refits to data simulated from its posterior means "
        "on the same design\n\n"
        + table + "\n\n"
        "*To sampling* runs from `bm.Model(...)` on the new data to the start of `nutpie.sample` (building\n"
        "the model, its statistics and the PyMC graph, and swapping the data into the compiled sampler);\n"
        "*to first draw* adds the sampler's start-up to its first warm-up draw. *Compiles* counts calls of\n"
        "`bayes_msem.sampling.samplers.compile_nutpie`: the first fit compiles (from PyTensor's on-disk caches when\n"
        "they are warm), a refit of the same structure does not. The hybrid and conditional strategies\n"
        "sample latent variables per row or cluster, so their structure includes the numbers of rows and\n"
        "clusters; the simulated data keep the design and thus both.\n\n"
        "Reproduce: `.venv/bin/python bench/refit.py`\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure(sys.argv[2])))
    else:
        main(sys.argv[1:] or list(CASES))
