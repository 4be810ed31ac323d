"""Monte Carlo studies: data drawn from a model at known parameter values
(:mod:`..simulation.design`), fitted again, replication after replication.

* :func:`study`: simulate → fit → summarise per replication, in this process, in local processes
  or on a Dask cluster; each replication's result is a Parquet file written as it finishes, so an
  interrupted study resumes where it stopped. Replication r draws everything from the seed
  sequence (study seed, r), so the results depend on neither the order nor the place of work.
* :class:`StudyResult`: per parameter bias, RMSE, coverage, power, R-hat and ESS; with θ drawn
  from the prior, simulation-based calibration of the ranks (:mod:`.sbc`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from ..data.clustered import data_frame
from ..errors import MissingDependencyError, SettingsError
from ..model import Model
from ..results.diagnostics import SamplingWarning
from ..results.fit import Fit, align_signs, evaluate_definitions
from ..results.predictive import thinned
from ..sampling.build import prior_theta
from ..sampling.samplers import check_settings
from ..simulation.design import ParameterValues, design_data, listed, theta_values
from ..spec.arguments import check_count, check_seed
from ..spec.plan import parameter_name
from . import sbc

PRIOR = "prior"
DESIGN_KEYS = ("n_clusters", "cluster_size", "covariates", "missing")


# ---------------------------------------------------------------- one replication

@dataclass(frozen=True, eq=False)
class StudySpec:
    """Everything replication r needs: the model (syntax, settings, template data), the true θ
    (None: drawn from the prior per replication), the design, the fit settings and the seed."""

    syntax: str
    cluster: str | list[str] | None
    settings: dict
    frame: pd.DataFrame
    truth: dict[str, float] | None
    design: dict
    fit: dict
    seed: int
    rank_draws: int

    def describe(self) -> dict:
        """The spec as JSON-ready values (frames by content hash): what ``study.json`` records."""
        design = {k: _digest(v) if isinstance(v, pd.DataFrame) else v for k, v in self.design.items()}
        return {"syntax": self.syntax, "cluster": self.cluster, "settings": self.settings, "data": _digest(self.frame),
                "parameters": self.truth if self.truth is not None else PRIOR, "design": design, "fit": self.fit,
                "seed": self.seed, "rank_draws": self.rank_draws}

    @property
    def key(self) -> str:
        return _digest(self.describe())

    def model(self, frame: pd.DataFrame) -> Model:
        """The study's model on ``frame``."""
        return Model(self.syntax, frame, cluster=self.cluster, **self.settings)


def _digest(value: Any) -> str:
    """A content hash of a frame or of JSON-ready values."""
    if isinstance(value, pd.DataFrame):
        columns = json.dumps(list(map(str, value.columns))).encode()
        data = pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes() + columns
    else:
        data = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def replication_seeds(seed: int, replication: int) -> tuple[int, int, int]:
    """The seeds of replication r's true θ, data and sampler: three words of the seed sequence
    (seed, spawn key r), the r-th child of ``SeedSequence(seed).spawn``."""
    words = np.random.SeedSequence(seed, spawn_key=(replication,)).generate_state(3, np.uint32)
    return int(words[0]), int(words[1]), int(words[2])


_TEMPLATES: dict[str, Model] = {}  # per process: the study's model on its template data


def _template(spec: StudySpec) -> Model:
    if spec.key not in _TEMPLATES:
        _TEMPLATES.clear()
        _TEMPLATES[spec.key] = spec.model(spec.frame)
    return _TEMPLATES[spec.key]


def true_theta(spec: StudySpec, seed: int) -> np.ndarray:
    """Replication's true θ: the study's values, or a draw from the prior; factors without a fixed
    loading aligned as the posterior draws are (:func:`~..results.fit.align_signs`)."""
    template = _template(spec)
    if spec.truth is not None:
        theta = theta_values(template.plan, spec.truth)
    else:
        theta = prior_theta(template.pymc_model, template.plan, 1, seed)[0]
    aligned = align_signs(xr.DataArray(theta[None, None], dims=("chain", "draw", "parameter")), template.table)
    return aligned.values[0, 0]


def replicate(spec: StudySpec, replication: int) -> pd.DataFrame:
    """Replication r: θ (given, or from the prior), data simulated at θ, the fit, and per parameter
    (θ's and the defined ones) the truth, posterior mean, median, SD, 95% interval, R-hat, ESS and
    the rank of the truth among about ``rank_draws`` thinned draws. A replication that fails keeps
    its error message (rows without estimates)."""
    started = time.perf_counter()
    theta_seed, data_seed, fit_seed = replication_seeds(spec.seed, replication)
    template = _template(spec)
    names = [*template.plan.parameters["name"], *template.definitions["name"]]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            theta = true_theta(spec, theta_seed)
            frame = template.simulate(dict(zip(template.plan.parameters["name"], theta)), seed=data_seed, **spec.design)
            fit = spec.model(frame).fit(random_seed=fit_seed, **{"quiet": True, **spec.fit})
            rows = summarise(fit, theta, spec.rank_draws)
    except Exception as error:  # a replication's failure is a result of the study, recorded with its message
        rows = pd.DataFrame({"parameter": names, "error": f"{type(error).__name__}: {error}"})
    else:
        rows["error"] = None
    rows.insert(0, "replication", replication)
    rows["seconds"] = time.perf_counter() - started
    return rows.reindex(columns=COLUMNS)


COLUMNS = ["replication", "parameter", "level", "kind", "truth", "mean", "median", "sd", "lower", "upper", "r_hat",
           "ess_bulk", "ess_tail", "rank", "rank_draws", "divergences", "error", "seconds"]


def summarise(fit: Fit, theta: np.ndarray, rank_draws: int) -> pd.DataFrame:
    """One row per free and defined parameter of ``fit``: its truth (θ, and the definitions
    evaluated at θ), posterior summaries (:meth:`.Fit.parameters`, and the median) and the rank of
    the truth among about ``rank_draws`` thinned draws (:func:`~.sbc.ranks`)."""
    posterior, parameters = fit.idata.posterior, fit.source.plan.parameters
    truth = xr.DataArray(theta, dims="parameter", coords={"parameter": posterior["theta"]["parameter"].values})
    draws = posterior["theta"]
    rows = pd.DataFrame({"parameter": parameters["name"], "level": parameters["level"], "kind": parameters["kind"]})
    if "defined" in posterior:
        defined = evaluate_definitions(truth, fit.table, fit.definitions).rename(definition="parameter")
        truth = xr.concat([truth, defined], "parameter")
        draws = xr.concat([draws, posterior["defined"].rename(definition="parameter")], "parameter")
        rows = pd.concat([rows, pd.DataFrame({"parameter": defined["parameter"].values, "level": "", "kind": "defined"})],
                         ignore_index=True)
    draws = draws.transpose("chain", "draw", "parameter")
    table = fit.parameters()
    names = [lhs if op == ":=" else parameter_name(level, lhs, op, rhs)
             for level, lhs, op, rhs in table[["level", "lhs", "op", "rhs"]].fillna("").itertuples(index=False)]
    summaries = table.set_axis(names).rename(columns={"eti_2.5%": "lower", "eti_97.5%": "upper"})
    summaries = summaries[~summaries.index.duplicated()].loc[rows["parameter"]]  # shared labels: one row each
    rows["truth"] = truth.values
    for column in ("mean", "median", "sd", "lower", "upper", "r_hat", "ess_bulk", "ess_tail"):
        rows[column] = draws.median(("chain", "draw")).values if column == "median" else summaries[column].to_numpy(float)
    kept = thinned(draws, rank_draws)
    rows["rank"] = sbc.ranks(kept.reshape(-1, kept.shape[-1]), truth.values)
    rows["rank_draws"] = kept.shape[0] * kept.shape[1]
    diverging = fit.idata.sample_stats.get("diverging")
    rows["divergences"] = 0 if diverging is None else int(diverging.sum())
    return rows


# ---------------------------------------------------------------- running a study

def study(model: Model, parameters: ParameterValues | str, replications: int = 100,
          design: Mapping[str, Any] | None = None, *, out: str | Path | None = None, seed: int | None = None,
          draws: int = 500, tune: int = 500, chains: int = 2, rank_draws: int = 99, workers: int | None = None,
          scheduler: str | None = None, progressbar: bool = True,
          callback: Callable[[int, pd.DataFrame], None] | None = None, **fit_settings) -> StudyResult:
    """A Monte Carlo study of ``model``: per replication, data simulated at ``parameters`` (values
    as for :meth:`.Model.simulate`, or ``"prior"``: θ drawn from the prior, for simulation-based
    calibration) under ``design`` (keyword arguments of :meth:`.Model.simulate`: n_clusters,
    cluster_size, covariates, missing), fitted with ``draws``, ``tune``, ``chains`` (and
    ``fit_settings`` for :meth:`.Model.fit`) and summarised (:func:`replicate`).

    Replication r's seeds come from (``seed``, r) alone (:func:`replication_seeds`), so a study gives
    the same results wherever and in whatever order its replications run. Each one is written to
    ``out/replications/replication-r.parquet`` as it finishes (a temporary file, then renamed):
    running the study again with the same ``out`` skips the replications already there, and more
    ``replications`` extend it; ``out/study.json`` records the settings (and the seed, which a rerun
    without ``seed`` takes from it), and a different study in the same folder is refused. Without
    ``out`` a temporary folder is used.

    Replications run in local processes (``workers``, default one per ``chains`` cores: each process
    compiles the model once, then reuses it), in this process (``workers=0``, which shares this
    process's compiled models), or on the Dask cluster at ``scheduler`` (``dask.distributed``, e.g.
    ``"tcp://10.0.0.5:8786"``; ``pip install 'bayes_msem[dask]'``). Scripts that use local processes
    must guard their entry point with ``if __name__ == "__main__":`` (processes are spawned).
    A process compiles once for all replications whose data have the same shape where the model's
    compiled sampler depends on it: the number of clusters with random parameters, the number of
    rows with non-Gaussian responses (give such designs a fixed ``cluster_size``).
    ``callback(r, rows)`` runs after each replication is stored; what it raises stops the study.
    """
    check_count("replications", replications)
    check_count("rank_draws", rank_draws)
    check_count("workers", 0 if workers is None else workers, least=0)
    check_seed("seed", seed)
    spec = _spec(model, parameters, dict(design or {}), rank_draws,
                 {"draws": draws, "tune": tune, "chains": chains, "sampler": "nutpie", **fit_settings})
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="bayes_msem_study_"))
    (folder / "replications").mkdir(parents=True, exist_ok=True)
    spec = _claim(folder, spec, seed)
    done = set(_stored(folder))
    pending = [r for r in range(replications) if r not in done]
    started = time.perf_counter()

    with tqdm(total=replications, initial=replications - len(pending), desc="replications", unit="rep",
              disable=not progressbar) as bar:
        for rows in _run(spec, pending, workers, scheduler):
            replication = int(rows["replication"].iloc[0])
            _write(folder, replication, rows)
            bar.update()
            if callback is not None:
                callback(replication, rows)
    result = StudyResult.read(folder, replications)
    result.seconds = time.perf_counter() - started
    failed = result.failures()
    if len(failed):
        warnings.warn(f"{len(failed)} of {replications} replications failed (left out of the summaries), e.g. "
                      f"replication {failed.index[0]}: {failed.iloc[0]}", stacklevel=2)
    return result


def _spec(model: Model, parameters: ParameterValues | str, design: dict, rank_draws: int, fit: dict) -> StudySpec:
    """The study's spec (seed still to be chosen), its settings checked before anything runs."""
    check_settings(fit["draws"], fit["tune"], fit["chains"], fit["sampler"])
    if model.scales:
        raise SettingsError("a study cannot use rescale=True: each replication's data would be divided by its own SDs, "
                            "so the priors and the truth would differ in scale between replications. Give the variables "
                            "fixed units instead (e.g. divide by a power of ten) and fit without rescale.")
    unknown = [k for k in design if k not in DESIGN_KEYS]
    if unknown:
        raise SettingsError(f"unknown design setting(s) {listed(unknown)}; the design takes {', '.join(DESIGN_KEYS)}.")
    design_data(model.plan, model.data, model.cluster, np.random.default_rng(0), **design)
    truth = None
    if isinstance(parameters, str):
        if parameters != PRIOR:
            raise SettingsError(f"parameters must be values (a mapping or table) or {PRIOR!r}, got {parameters!r}.")
    else:
        truth = dict(zip(model.plan.parameters["name"], map(float, theta_values(model.plan, parameters))))
    settings = {"std_lv": model.std_lv, "priors": model.priors, "family": {v: str(f) for v, f in model.families.items()}}
    return StudySpec(model.syntax, model.cluster, settings, data_frame(model.data.to_dataset(), model.cluster), truth,
                     design, fit, 0, rank_draws)


def _claim(folder: Path, spec: StudySpec, seed: int | None) -> StudySpec:
    """The spec with its seed (given; else that of the study already in ``folder``; else fresh),
    recorded in ``folder/study.json``; raises if the folder holds a different study."""
    path = folder / "study.json"
    recorded = json.loads(path.read_text()) if path.exists() else None
    if seed is None:
        seed = recorded["seed"] if recorded else int(np.random.SeedSequence().entropy % 2**63)
    spec = dataclasses.replace(spec, seed=int(seed))
    described = json.loads(json.dumps(spec.describe(), default=str))
    if recorded is not None and recorded != described:
        changed = [k for k in described if recorded.get(k) != described[k]]
        raise SettingsError(f"the folder {folder} holds a study with other settings ({', '.join(changed)}); choose "
                            "another folder, or delete this one to start over.")
    _atomic(path, lambda temporary: temporary.write_text(json.dumps(described, indent=1)))
    return spec


def _stored(folder: Path) -> list[int]:
    """The replications whose file is in ``folder``."""
    files = (folder / "replications").glob("replication-*.parquet")
    return sorted(int(p.stem.removeprefix("replication-")) for p in files)


def _write(folder: Path, replication: int, rows: pd.DataFrame) -> None:
    _atomic(folder / "replications" / f"replication-{replication:06d}.parquet", lambda t: rows.to_parquet(t, index=False))


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Write ``path`` through a temporary file in its folder renamed into place, so that it is
    either complete or absent."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _run(spec: StudySpec, pending: list[int], workers: int | None, scheduler: str | None) -> Iterator[pd.DataFrame]:
    """Each pending replication's rows, as they finish: on the Dask cluster at ``scheduler``, in
    ``workers`` spawned local processes, or here (``workers=0``)."""
    if not pending:
        return
    if scheduler is not None:
        try:
            from distributed import Client, as_completed
        except ImportError as error:
            raise MissingDependencyError("a study on a Dask cluster needs dask.distributed: "
                                         "pip install 'bayes_msem[dask]'.") from error
        with Client(scheduler) as client:
            shared = client.scatter(spec, broadcast=True)
            futures = [client.submit(replicate, shared, r, key=f"replication-{r}-{spec.key}", pure=False)
                       for r in pending]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:
                client.cancel(futures)
        return
    workers = max(1, (os.cpu_count() or 1) // spec.fit["chains"]) if workers is None else workers
    if workers == 0:
        for r in pending:
            yield replicate(spec, r)
        return
    with multiprocessing.get_context("spawn").Pool(min(workers, len(pending))) as pool:
        yield from pool.imap_unordered(_Replicate(spec), pending)


@dataclass(frozen=True)
class _Replicate:
    """``replicate`` bound to a spec, for a process pool."""

    spec: StudySpec

    def __call__(self, replication: int) -> pd.DataFrame:
        return replicate(self.spec, replication)


# ---------------------------------------------------------------- results

@dataclass
class StudyResult:
    """The stored replications of a study: ``replications`` holds one row per replication and
    parameter (:func:`replicate`), ``settings`` the study's ``study.json``."""

    replications: pd.DataFrame
    settings: dict
    folder: Path
    seconds: float = float("nan")

    @classmethod
    def read(cls, folder: str | Path, replications: int | None = None) -> StudyResult:
        """The study stored in ``folder`` (the first ``replications`` of it, if given)."""
        folder = Path(folder)
        stored = [r for r in _stored(folder) if replications is None or r < replications]
        frames = [pd.read_parquet(folder / "replications" / f"replication-{r:06d}.parquet") for r in stored]
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
        return cls(rows, json.loads((folder / "study.json").read_text()), folder)

    def failures(self) -> pd.Series:
        """The error of each failed replication (index: replication)."""
        failed = self.replications.dropna(subset=["error"])
        return failed.groupby("replication")["error"].first()

    def summary(self, estimator: str = "mean") -> pd.DataFrame:
        """Per parameter over the successful replications r = 1..R, with the point estimate θ̂_r
        (posterior ``"mean"`` or ``"median"``) and truth θ_r:

            bias = mean(θ̂_r − θ_r) (with its Monte Carlo SE sd(θ̂_r − θ_r)/√R), relative bias =
            bias / θ (fixed truths ≠ 0), RMSE = √mean((θ̂_r − θ_r)²), sd of θ̂_r, mean posterior SD,
            coverage = share of 95% intervals holding θ_r (MC SE √(c(1 − c)/R)), power = share of
            intervals excluding 0, mean R-hat, mean bulk ESS, share of fits with divergences."""
        if estimator not in ("mean", "median"):
            raise SettingsError(f"estimator must be 'mean' or 'median', got {estimator!r}.")
        rows = self.replications[self.replications["error"].isna()]
        deviation = rows[estimator] - rows["truth"]
        rows = rows.assign(deviation=deviation, squared=deviation ** 2,
                           covered=(rows["lower"] <= rows["truth"]) & (rows["truth"] <= rows["upper"]),
                           excludes_zero=(rows["lower"] > 0) | (rows["upper"] < 0), diverged=rows["divergences"] > 0)
        groups = rows.groupby("parameter", sort=False)
        n = groups.size()
        out = pd.DataFrame({
            "level": groups["level"].first(), "kind": groups["kind"].first(), "replications": n,
            "truth": groups["truth"].mean(), "estimate": groups[estimator].mean(), "bias": groups["deviation"].mean(),
            "bias_mcse": groups["deviation"].std() / np.sqrt(n),
        })
        fixed = groups["truth"].nunique() == 1
        out["relative_bias"] = (out["bias"] / out["truth"]).where(fixed & (out["truth"] != 0))
        out["rmse"] = np.sqrt(groups["squared"].mean())
        out["sd_estimate"] = groups[estimator].std()
        out["mean_sd"] = groups["sd"].mean()
        out["coverage"] = groups["covered"].mean()
        out["coverage_mcse"] = np.sqrt(out["coverage"] * (1 - out["coverage"]) / n)
        out["power"] = groups["excludes_zero"].mean()
        out["r_hat"] = groups["r_hat"].mean()
        out["ess_bulk"] = groups["ess_bulk"].mean()
        out["divergent_fits"] = groups["diverged"].mean()
        return out

    def _ranks(self, parameters: Sequence[str] | None) -> tuple[dict[str, np.ndarray], int]:
        """The ranks of the chosen parameters (default all) over the successful replications, and L."""
        if self.settings["parameters"] != PRIOR:
            raise SettingsError("simulation-based calibration needs θ drawn from the prior in every replication: run "
                                "the study with parameters='prior'.")
        rows = self.replications[self.replications["error"].isna()]
        known = list(dict.fromkeys(rows["parameter"]))
        chosen = known if parameters is None else list(parameters)
        unknown = [p for p in chosen if p not in known]
        if unknown:
            raise SettingsError(f"no ranks of {listed(unknown)}; the study's parameters: {listed(known)}.")
        n_draws = rows["rank_draws"].unique()
        if len(n_draws) != 1:
            raise SettingsError(f"the replications ranked among different numbers of draws ({sorted(n_draws)}).")
        return {p: rows.loc[rows["parameter"] == p, "rank"].to_numpy() for p in chosen}, int(n_draws[0])

    def sbc(self, parameters: Sequence[str] | None = None, bins: int = 10) -> pd.DataFrame:
        """Simulation-based calibration (:mod:`.sbc`) of the chosen parameters (default all): per
        parameter the number of replications, the chi-square statistic of the binned ranks against
        uniformity, its degrees of freedom and p-value."""
        ranks, n_draws = self._ranks(parameters)
        rows = {p: (len(r), *sbc.uniformity(r, n_draws, bins)) for p, r in ranks.items()}
        return pd.DataFrame.from_dict(rows, orient="index", columns=["replications", "chi_square", "df", "p_value"])

    def plot_ranks(self, path: str | Path | None = None, parameters: Sequence[str] | None = None, bins: int = 10):
        """Rank histograms of the chosen parameters (default all; :func:`~.sbc.plot_rank_histograms`)."""
        ranks, n_draws = self._ranks(parameters)
        return sbc.plot_rank_histograms(ranks, n_draws, bins, path)
