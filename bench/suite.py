"""Benchmark suite: each likelihood strategy against a hand-written PyMC model of the same model,
same data, same priors (the package's defaults), same sampler (nutpie, 2 chains x 1000 warm-up +
1000 draws), each run in a fresh process of the same invocation, for seeds 1-5.

    .venv/bin/python bench/suite.py                  # every case; writes bench/SUITE.md and bench/suite.json
    .venv/bin/python bench/suite.py logit three_level  # some cases (the others keep their last figures)

Per run: compile time (from building the model to the sampler's start), time to the first draw,
wall time, min bulk ESS over the population parameters (``theta``), min-ESS per second of the wall
time and of sampling alone, and gradient evaluations (leapfrog steps) per second and per chain.

The cases:

* ``demo``: lavaan's Demo.twolevel (marginal). Hand-written: the marginal likelihood by hand
  (``bench/demo_twolevel.py``'s ``hand_model``).
* ``demo_factors``: the same model with the package's conditional strategy, which samples every
  factor (2,500 within and 200 between scores): what the marginal strategy saves.
* ``random_slope``: lme4's random-slope reference data (marginal; slopes integrated out).
  Hand-written: the usual row-level model with non-centred random intercepts and slopes.
* ``random_loading``: a two-level factor model with a random loading (hybrid). Hand-written: every
  factor score, random loading and random intercept sampled, non-centred.
* ``logit``: a two-level factor model for four binary items (conditional). Hand-written: the same
  latent variables sampled, non-centred, written directly.
* ``three_level``: lme4's three-level reference data (nested marginal). Hand-written: row-level,
  class and school intercepts non-centred.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from demo_twolevel import SYNTAX as DEMO  # noqa: E402
from demo_twolevel import hand_model as hand_demo

# the files of bm.datasets, read without importing the package (the hand-written runs must not)
DATASETS = HERE.parent / "bayes_msem" / "datasets"
SETTINGS = dict(draws=1000, tune=1000, chains=2)
WARM_UP = dict(draws=10, tune=10, chains=1)  # a first run per case fills the compile caches
SEEDS = (1, 2, 3, 4, 5)  # one seed's min ESS varies by about +-30 %: each case runs several
# prior scales of the package's defaults (bayes_msem.spec.priors.DEFAULT_PRIORS)
COEF_SD, INTERCEPT_SD, SD_ALPHA, SD_BETA = 10.0, 32.0, 1.0, 0.5
CATEGORICAL_COEF_SD, CATEGORICAL_SD = 2.5, (2.0, 1.0)  # loadings of binary items, SDs of the factors they measure


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def demo_data() -> pd.DataFrame:
    return pd.read_csv(DATASETS / "demo_twolevel.csv")


def random_slope_data() -> pd.DataFrame:
    return pd.read_csv(DATASETS / "random_slope.csv")


def three_level_data() -> pd.DataFrame:
    return pd.read_csv(DATASETS / "three_level.csv")


def random_loading_data(seed: int = 1, clusters: int = 100, size: int = 30) -> pd.DataFrame:
    """y = ν_j + λ_j η + ε: loadings (1, l2_j, 0.9, 0.7), l2_j ~ N(0.8, 0.25²), η ~ N(0, 1),
    ν_j ~ N(0, 0.5² I), ε ~ N(0, 0.5 I); 100 clusters of 30."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(clusters), size)
    loadings = np.column_stack([np.ones(clusters), rng.normal(0.8, 0.25, clusters), np.full(clusters, 0.9),
                                np.full(clusters, 0.7)])[cluster]
    y = rng.normal(0, 0.5, (clusters, 4))[cluster] + rng.normal(0, 1, len(cluster))[:, None] * loadings
    y += rng.normal(0, np.sqrt(0.5), y.shape)
    return pd.DataFrame(y, columns=["y1", "y2", "y3", "y4"]).assign(cluster=cluster)


def logit_data(seed: int = 2, clusters: int = 100) -> pd.DataFrame:
    """logit P(u_k = 1) = ν_k + λ_k^W fw + λ_k^B fb: ν = (0.5, 0, −0.5, 0.3), λ^W = (1, 1.2, 0.8, 1),
    λ^B = (1, 0.9, 1.1, 0.8), Var(fw) = 1.5, Var(fb) = 0.6; clusters of 10-20."""
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(clusters), rng.integers(10, 21, clusters))
    fw = rng.normal(0, np.sqrt(1.5), len(cluster))
    fb = rng.normal(0, np.sqrt(0.6), clusters)[cluster]
    eta = (np.array([0.5, 0.0, -0.5, 0.3]) + np.outer(fw, [1.0, 1.2, 0.8, 1.0]) + np.outer(fb, [1.0, 0.9, 1.1, 0.8]))
    u = (rng.random(eta.shape) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame(u, columns=["u1", "u2", "u3", "u4"]).assign(cluster=cluster)


# ---------------------------------------------------------------------------------------------
# The package's models
# ---------------------------------------------------------------------------------------------

RANDOM_SLOPE = "level: within\n  s | y ~ x\nlevel: between\n  y ~~ s\n"
RANDOM_LOADING = ("level: within\n  f =~ y1 + y3 + y4\n  l2 | f =~ y2\nlevel: between\n"
                  "  y1 ~~ y1\n  y2 ~~ y2\n  y3 ~~ y3\n  y4 ~~ y4\n")
LOGIT = "level: within\n  fw =~ u1 + u2 + u3 + u4\nlevel: between\n  fb =~ u1 + u2 + u3 + u4\n  {fixed}\n"
LOGIT_FIXED = "  ".join(f"u{k} ~~ 0*u{k}\n" for k in range(1, 5))  # no between residuals: the data have none
THREE_LEVEL = "level: within\n  y ~ x\nlevel: class\n  y ~~ y\nlevel: school\n  y ~~ y\n"


def package_model(syntax: str, cluster: str | list[str], strategy: str | None = None, **options):
    """A ``bm.Model`` builder; ``strategy`` (a name in the registry) overrides the registry's
    choice (a benchmark device: the conditional strategy is exact for any model, only slower)."""
    def build(data: pd.DataFrame):
        import bayes_msem as bm
        from bayes_msem.likelihood.registry import STRATEGIES

        model = bm.Model(syntax, data, cluster=cluster, **options)
        if strategy is not None:
            model._strategy = next(s for s in STRATEGIES if s.name == strategy)
        return model
    return build


# ---------------------------------------------------------------------------------------------
# Hand-written PyMC models (each with a Deterministic ``theta`` named like the package's)
# ---------------------------------------------------------------------------------------------

def _theta(values: dict):
    """pm.Deterministic("theta") of named scalars, dims ``parameter``."""
    import pymc as pm
    import pytensor.tensor as pt

    model = pm.modelcontext(None)
    model.add_coord("parameter", list(values))
    return pm.Deterministic("theta", pt.stack([pt.as_tensor(v) for v in values.values()]), dims="parameter")


def _sds(name: str, shape: int | None = None, initval=None):
    """SDs with the package's default prior gamma(1, 0.5) on the SD."""
    import pymc as pm

    return pm.Gamma(name, SD_ALPHA, SD_BETA, shape=shape, initval=initval)


def _index(values: pd.Series) -> tuple[np.ndarray, int]:
    codes = pd.factorize(values, sort=True)[0]
    return codes, int(codes.max()) + 1


def hand_random_slope(data: pd.DataFrame):
    """y_ij ~ N(b0_j + b1_j x_ij, σ), (b0, b1)_j = μ + L z_j, L from an LKJ(1) covariance."""
    import pymc as pm

    school, n = _index(data["school"])
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, INTERCEPT_SD, shape=2)
        chol, _, _ = pm.LKJCholeskyCov("chol", n=2, eta=1.0, sd_dist=pm.Gamma.dist(SD_ALPHA, SD_BETA), compute_corr=True)
        b = mu + pm.Normal("z", 0, 1, shape=(n, 2)) @ chol.T
        sigma = _sds("sigma")
        pm.Normal("y", b[school, 0] + b[school, 1] * data["x"].to_numpy(), sigma, observed=data["y"].to_numpy())
        cov = chol @ chol.T
        _theta({"within:y~~y": sigma**2, "between:y~~s": cov[0, 1], "between:y~~y": cov[0, 0],
                "between:y~1": mu[0], "between:s~~s": cov[1, 1], "between:s~1": mu[1]})
    return model


def hand_random_loading(data: pd.DataFrame):
    """y_ij = ν_j + λ_j η_ij + ε_ij with η_ij, ν_j and the loading l2_j of y2 sampled, non-centred."""
    import pymc as pm
    import pytensor.tensor as pt

    cluster, n = _index(data["cluster"])
    y = data[["y1", "y2", "y3", "y4"]].to_numpy()
    with pm.Model() as model:
        loading = pm.Normal("loading", 0, COEF_SD, shape=2, initval=np.ones(2))          # y3, y4
        l2_mean = pm.Normal("l2_mean", 0, INTERCEPT_SD, initval=1.0)
        l2_sd = _sds("l2_sd", initval=0.2)
        l2 = l2_mean + l2_sd * pm.Normal("l2_z", 0, 1, shape=n)
        psi_sd = _sds("psi_sd", initval=1.0)
        eta = psi_sd * pm.Normal("eta_z", 0, 1, shape=len(y))
        nu = pm.Normal("nu", 0, INTERCEPT_SD, shape=4)
        tau = _sds("tau", shape=4, initval=np.full(4, 0.5))
        u = nu + tau * pm.Normal("u_z", 0, 1, shape=(n, 4))
        theta_sd = _sds("theta_sd", shape=4, initval=np.ones(4))
        lam = pt.stack([pt.ones_like(l2), l2, pt.zeros_like(l2) + loading[0], pt.zeros_like(l2) + loading[1]], axis=1)
        pm.Normal("y", u[cluster] + lam[cluster] * eta[:, None], theta_sd, observed=y)
        _theta({"within:f=~y3": loading[0], "within:f=~y4": loading[1],
                **{f"within:y{k}~~y{k}": theta_sd[k - 1] ** 2 for k in (1, 3, 4, 2)}, "within:f~~f": psi_sd**2,
                **{f"between:y{k}~~y{k}": tau[k - 1] ** 2 for k in range(1, 5)},
                **{f"between:y{k}~1": nu[k - 1] for k in range(1, 5)},
                "between:l2~~l2": l2_sd**2, "between:l2~1": l2_mean})
    return model


def hand_logit(data: pd.DataFrame):
    """logit P(u_kij = 1) = ν_k + λ^W_k fw_ij + λ^B_k fb_j, fw and fb sampled, non-centred; the
    package's priors for binary items (loadings normal(0, 2.5), the factors' SDs gamma(2, 1))."""
    import pymc as pm
    import pytensor.tensor as pt

    cluster, n = _index(data["cluster"])
    u = data[["u1", "u2", "u3", "u4"]].to_numpy()
    with pm.Model() as model:
        loadings = pm.Normal("loadings", 0, CATEGORICAL_COEF_SD, shape=(2, 3), initval=np.ones((2, 3)))
        sds = pm.Gamma("sds", *CATEGORICAL_SD, shape=2, initval=np.ones(2))
        nu = pm.Normal("nu", 0, INTERCEPT_SD, shape=4)
        fw = sds[0] * pm.Normal("fw_z", 0, 1, shape=len(u))
        fb = sds[1] * pm.Normal("fb_z", 0, 1, shape=n)
        one = pt.ones(1)
        lam_w, lam_b = pt.concatenate([one, loadings[0]]), pt.concatenate([one, loadings[1]])
        pm.Bernoulli("u", logit_p=nu + pt.outer(fw, lam_w) + pt.outer(fb[cluster], lam_b), observed=u)
        _theta({**{f"within:fw=~u{k}": loadings[0, k - 2] for k in (2, 3, 4)}, "within:fw~~fw": sds[0] ** 2,
                **{f"between:fb=~u{k}": loadings[1, k - 2] for k in (2, 3, 4)}, "between:fb~~fb": sds[1] ** 2,
                **{f"between:u{k}~1": nu[k - 1] for k in range(1, 5)}})
    return model


def hand_three_level(data: pd.DataFrame):
    """y_ijk ~ N(μ + β x + v_jk + u_k, σ), v and u sampled, non-centred."""
    import pymc as pm

    klass, n_class = _index(data["class"])
    school, n_school = _index(data["school"])
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, INTERCEPT_SD)
        beta = pm.Normal("beta", 0, COEF_SD)
        sds = _sds("sds", shape=3, initval=np.ones(3))                                 # pupil, class, school
        v = sds[1] * pm.Normal("v_z", 0, 1, shape=n_class)
        u = sds[2] * pm.Normal("u_z", 0, 1, shape=n_school)
        pm.Normal("y", mu + beta * data["x"].to_numpy() + v[klass] + u[school], sds[0], observed=data["y"].to_numpy())
        _theta({"within:y~x": beta, "within:y~~y": sds[0] ** 2, "class:y~~y": sds[1] ** 2,
                "school:y~~y": sds[2] ** 2, "school:y~1": mu})
    return model


@dataclass(frozen=True)
class Case:
    title: str
    data: Callable[[], pd.DataFrame]
    package: Callable[[pd.DataFrame], object]
    hand: Callable[[pd.DataFrame], object] | None


CASES = {
    "demo": Case("Demo.twolevel (marginal)", demo_data, package_model(DEMO, "cluster"), hand_demo),
    "demo_factors": Case("Demo.twolevel, factors sampled (conditional)", demo_data,
                         package_model(DEMO, "cluster", strategy="conditional"), None),
    "random_slope": Case("random slope, lme4 data (marginal)", random_slope_data,
                         package_model(RANDOM_SLOPE, "school"), hand_random_slope),
    "random_loading": Case("random loading, 100 x 30 (hybrid)", random_loading_data,
                           package_model(RANDOM_LOADING, "cluster"), hand_random_loading),
    "logit": Case("logit two-level factor model (conditional)", logit_data,
                  package_model(LOGIT.format(fixed=LOGIT_FIXED), "cluster",
                                family={f"u{k}": "bernoulli" for k in range(1, 5)}), hand_logit),
    "three_level": Case("three levels, lme4 data (marginal)", three_level_data,
                        package_model(THREE_LEVEL, ["class", "school"]), hand_three_level),
}


# ---------------------------------------------------------------------------------------------
# Measurement (one case and implementation per process)
# ---------------------------------------------------------------------------------------------

@contextmanager
def sampling_marks():
    """nutpie.sample wrapped to record, in the yielded dict, when sampling starts (``sample``,
    ``sample_cpu``), the first draw (``first_draw``), when it returns (``sampled``) and each chain's
    leapfrog steps and run time (``chains``)."""
    import nutpie

    marks: dict = {}
    original = nutpie.sample

    def callback(progress) -> None:
        now = time.perf_counter()
        if "first_draw" not in marks and any(p.finished_draws > 0 for p in progress):
            marks["first_draw"] = now
        marks["chains"] = [(p.total_num_steps, p.runtime_ms) for p in progress]

    def sample(*args, **kwargs):
        marks["sample"], marks["sample_cpu"] = time.perf_counter(), time.process_time()
        idata = original(*args, progress_callback=callback, progress_rate=5, **kwargs)
        marks["sampled"] = time.perf_counter()
        return idata

    nutpie.sample = sample
    try:
        yield marks
    finally:
        nutpie.sample = original


def measure(case: Case, implementation: str, settings: dict, seed: int) -> dict:
    """Time one run: when sampling starts, the first draw and each chain's leapfrog steps and run
    time (:func:`sampling_marks`)."""
    import arviz as az
    import nutpie

    data = case.data()
    with sampling_marks() as marks:
        started, started_cpu = time.perf_counter(), time.process_time()
        if implementation == "package":
            idata = case.package(data).fit(random_seed=seed, **settings).idata
        else:
            compiled = nutpie.compile_pymc_model(case.hand(data))
            idata = nutpie.sample(compiled, seed=seed, progress_bar=False, save_warmup=False, **settings)
        finished = time.perf_counter()
    theta = idata.posterior["theta"]
    ess = az.ess(idata, var_names=["theta"])["theta"]
    stats = idata["sample_stats"]
    steps = np.array([s for s, _ in marks["chains"]], dtype=float)
    runtime = np.array([float(getattr(r, "total_seconds", lambda: r / 1000)()) for _, r in marks["chains"]])
    return {
        "compile": marks["sample"] - started, "compile_cpu": marks["sample_cpu"] - started_cpu,
        "first_draw": marks["first_draw"] - started,
        "sampling": marks["sampled"] - marks["sample"], "wall": finished - started,
        "min_ess": float(ess.min()), "min_ess_parameter": str(ess["parameter"].values[int(ess.argmin())]),
        "gradients_per_s": float(np.mean(steps / runtime)), "gradients": float(steps.sum()),
        "max_rhat": float(az.rhat(idata, var_names=["theta"])["theta"].max()),
        "divergences": int(stats["diverging"].sum()),
        "mean": theta.mean(("chain", "draw")).to_series().to_dict(),
        "sd": theta.std(("chain", "draw")).to_series().to_dict(),
    }


def run(name: str, implementation: str, seed: int, settings: dict = SETTINGS) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", name, implementation, json.dumps(settings), str(seed)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def _rates(r: dict) -> tuple[float, float]:
    return r["min_ess"] / r["wall"], r["min_ess"] / r["sampling"]


def _mean(runs: list[dict], value: Callable[[dict], float]) -> float:
    return float(np.mean([value(r) for r in runs]))


def _spread(runs: list[dict], value: Callable[[dict], float], form: str = ".1f") -> str:
    """The mean over the seeds' runs, and the lowest and highest run."""
    values = [value(r) for r in runs]
    return f"{np.mean(values):{form}} ({min(values):{form}}-{max(values):{form}})"


def _agreement(ours: list[dict], hand: list[dict]) -> float:
    """Largest |package mean − hand-written mean| / package SD over the parameters both report,
    each the average over the seeds' runs."""
    common = set(ours[0]["mean"]) & set(hand[0]["mean"])
    return max(abs(_mean(ours, lambda r: r["mean"][k]) - _mean(hand, lambda r: r["mean"][k]))
               / _mean(ours, lambda r: r["sd"][k]) for k in common)


def _lowest(runs: list[dict]) -> str:
    """The parameters with the lowest ESS and how many runs each was the lowest in."""
    counts = pd.Series([r["min_ess_parameter"] for r in runs]).value_counts()
    return ", ".join(f"{name} x{count}" for name, count in counts.items())


def render(results: dict) -> str:
    lines = ["| case | implementation | compile s (CPU s) | first draw s | sampling s | wall s | min bulk ESS "
             "| min-ESS/s wall | min-ESS/s sampling | gradients/s per chain | ESS per 1000 gradients | max R-hat "
             "| divergences | lowest-ESS parameter |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    ratios = ["| case | min-ESS/s wall, package / hand | paired by seed: lowest-highest "
              "| min-ESS/s sampling, package / hand | gradients/s, package / hand "
              "| largest mean difference / posterior SD |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    wall = lambda r: _rates(r)[0]  # noqa: E731
    sampling = lambda r: _rates(r)[1]  # noqa: E731
    for name, case in CASES.items():
        if name not in results:
            continue
        for implementation, runs in results[name].items():
            lines.append(f"| {case.title} | {implementation} | {_mean(runs, lambda r: r['compile']):.1f} "
                         f"({_mean(runs, lambda r: r['compile_cpu']):.1f}) | {_mean(runs, lambda r: r['first_draw']):.1f} "
                         f"| {_mean(runs, lambda r: r['sampling']):.1f} | {_mean(runs, lambda r: r['wall']):.1f} "
                         f"| {_spread(runs, lambda r: r['min_ess'], '.0f')} | {_spread(runs, wall)} "
                         f"| {_mean(runs, sampling):.1f} | {_mean(runs, lambda r: r['gradients_per_s']):,.0f} "
                         f"| {_mean(runs, lambda r: 1000 * r['min_ess'] / r['gradients']):.1f} "
                         f"| {max(r['max_rhat'] for r in runs):.3f} | {sum(r['divergences'] for r in runs)} "
                         f"| {_lowest(runs)} |")
        if "hand" in results[name]:
            ours, hand = results[name]["package"], results[name]["hand"]
            paired = [wall(o) / wall(h) for o, h in zip(ours, hand)]
            ratios.append(f"| {case.title} | **{_mean(ours, wall) / _mean(hand, wall):.2f}** "
                          f"| {min(paired):.2f}-{max(paired):.2f} | {_mean(ours, sampling) / _mean(hand, sampling):.2f} "
                          f"| {_mean(ours, lambda r: r['gradients_per_s']) / _mean(hand, lambda r: r['gradients_per_s']):.2f} "
                          f"| {_agreement(ours, hand):.2f} |")
    if {"demo", "demo_factors"} <= set(results):
        marginal, factors = results["demo"]["package"], results["demo_factors"]["package"]
        paired = [wall(m) / wall(f) for m, f in zip(marginal, factors)]
        ratios.append(f"| Demo.twolevel: marginal / factors sampled | **{_mean(marginal, wall) / _mean(factors, wall):.1f}** "
                      f"| {min(paired):.1f}-{max(paired):.1f} | {_mean(marginal, sampling) / _mean(factors, sampling):.1f} | | |")
    return "\n".join(lines) + "\n\n" + "\n".join(ratios)


def machine() -> str:
    import arviz
    import nutpie
    import pymc
    import pytensor

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"{len(os.sched_getaffinity(0))} cores ({cpu}), Python {platform.python_version()}, PyMC {pymc.__version__}, "
            f"PyTensor {pytensor.__version__}, nutpie {nutpie.__version__}, ArviZ {arviz.__version__}")


def main(names: list[str]) -> None:
    store = HERE / "suite.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    for name in names:
        implementations = ["package", "hand"] if CASES[name].hand else ["package"]
        for implementation in implementations:
            run(name, implementation, SEEDS[0], WARM_UP)
        runs: dict[str, list[dict]] = {implementation: [] for implementation in implementations}
        for seed in SEEDS:  # alternating, so that a slower spell of the machine hits both sides
            for implementation in implementations:
                runs[implementation].append(run(name, implementation, seed))
        results[name] = runs
        store.write_text(json.dumps(results, indent=1))
        print(name, {impl: f"{_mean(r, lambda x: _rates(x)[0]):.1f} min-ESS/s" for impl, r in runs.items()}, flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    (HERE / "SUITE.md").write_text(
        "# Benchmark suite: each strategy against hand-written PyMC\n\n"
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; commit {commit}\n"
        f"- Machine: {machine()}\n"
        f"- Settings: nutpie, {SETTINGS['chains']} chains x {SETTINGS['tune']} warm-up + {SETTINGS['draws']} draws, "
        f"seeds {', '.join(map(str, SEEDS))}; each run in a fresh process, after a short run that fills the compile "
        "caches; figures are means over the seeds' runs, with the lowest and highest run in brackets\n\n"
        + render(results) + "\n\n" + NOTES + "\nReproduce: `.venv/bin/python bench/suite.py`\n")


NOTES = """*Compile s* runs from building the model to the sampler's start (the package: `bm.Model`
to `nutpie.sample`; hand-written: `pm.Model` to `nutpie.sample`; in brackets the CPU time it
took, which other processes on the machine do not inflate), *first draw s* to the first
draw, *wall s* to the returned draws (the package: a `Fit`). *Gradients/s per chain* counts
leapfrog steps (one gradient each, warm-up included) over each chain's run time. The min-ESS/s
ratio of wall time is the bar: the ratio of the two sides' mean min-ESS/s over the seeds. One
seed's min ESS varies by about +-30 % around its mean (for the logit model, seeds 1-10 gave
110-197 for the package and 50-235 by hand, means 154 and 157), so a single seed's ratio says
little; the runs of each seed are paired (same seed, run one after the other) and their lowest
and highest ratio are shown. With 2 cores and 2 chains any other process on the machine slows
either side (see README.md).

The package's compile is shorter than the hand-written model's although its graph is larger:
nutpie wraps PyTensor's compiled log-density in two numba callbacks that it cannot cache, so
each new process re-types and re-optimises the whole graph; the package generates cacheable
callbacks (`bayes_msem/callbacks.py`), so a process that compiles a graph compiled before
loads them from disk (the hand-written models pay nutpie's full compile every time).

The hand-written random-slope, random-loading, logit and three-level models sample every random
effect and factor score, non-centred, as one writes them directly in PyMC; the package integrates
out whatever is Gaussian and linear given the rest (random slopes, random intercepts, factor
scores given the random loadings), so it samples far fewer variables per gradient. In the logit
model nothing integrates in closed form: both sides sample the same variables, and the package
is faster per gradient: it evaluates the Bernoulli-logit log-likelihood and its derivative in
one pass per element, with an exponential and a logarithm written as polynomials that the
compiler vectorises (libm's exp and log1p are scalar calls: on this model's 6,000 responses
154 µs with them, 25 µs without; `bayes_msem/likelihood/logit.py`), and it builds each level's
values as products with the level's matrices instead of setting columns of row-sized arrays,
whose gradients cost a pass each (`bayes_msem/likelihood/conditional.py`): about 100 µs per
log-density and gradient against the hand-written model's 270-480 µs (this machine's speed
varies by half between runs, hence the paired seeds).
"""


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure(CASES[sys.argv[2]], sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5]))))
    else:
        main(sys.argv[1:] or list(CASES))
