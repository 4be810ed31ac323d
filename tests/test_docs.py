"""Checks of the user guide (docs/*.md) and README.md against the package; fast, nothing is sampled.

In the guide, model syntax is fenced as ```msem and must parse; complete examples are fenced as
```python model and are run with ``bm`` standing for the package and ``data`` for data simulated
from each model: every ``bm.Model(...)`` call builds its PyMC graph, and the methods the example
calls on the model and the fit must exist with the arguments given.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.model import response_families
from bayes_msem.spec import syntax as syntax_module
from bayes_msem.spec.plan import data_variables
from bayes_msem.spec.priors import CATEGORICAL_FACTOR_SD, CATEGORICAL_LOADING, DEFAULT_PRIORS
from bayes_msem.spec.table import MODEL_OPS, assign_roles, build_table

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<code>.*?)^```$", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def fenced(info: str) -> list:
    """The code of every block fenced with ``info`` in docs/*.md, as pytest params named file:line."""
    params = []
    for path in DOCS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            if match["info"].strip() == info:
                line = text.count("\n", 0, match.start()) + 1
                params.append(pytest.param(match["code"], id=f"{path.name}:{line}"))
    return params


def simulate(syntax: str, cluster: str | list[str] | None = None, *, family=None, ordered=(), crossed=False,
             **_) -> pd.DataFrame:
    """Data with the columns the model uses: clusters of 4 units, 3 clusters in each cluster of the level
    above and 20 at the top (``crossed``: the k-th classification after the first has 7 + k clusters,
    taken in turn by the rows); normal values with a cluster effect, constant within the clusters of the
    level where a variable first appears; ordinal categories 1..K (K − 1 thresholds written, else K = 3),
    bernoulli 0/1, counts Poisson(2)."""
    families = response_families(family, ordered)
    user = syntax_module.parse(syntax)
    written = user.loc[user["op"] == "|", "lhs"].value_counts()
    categories = {v: written.get(v, 2) + 1 for v, f in families.items() if f.has_thresholds}
    table = build_table(user, cluster, families={v: f.name for v, f in families.items()}, categories=categories)
    used, between, upper = data_variables(assign_roles(table[table["op"].isin(MODEL_OPS)]), crossed)
    columns = [] if cluster is None else [cluster] if isinstance(cluster, str) else list(cluster)
    n = 4 * 3 ** max(len(columns) - 1, 0) * 20
    ids = [np.arange(n) // (4 * 3 ** k) for k in range(len(columns))]
    if crossed:
        ids = [ids[0], *(np.arange(n) % (7 + k) for k in range(1, len(columns)))]
    rank = {v: 1 for v in between} | {v: k for k, names in enumerate(upper, start=2) for v in names}
    rng = np.random.default_rng(1)
    data = {}
    for v in used:
        f = families.get(v)
        if v in rank:
            data[v] = rng.normal(size=n)[ids[rank[v] - 1]]
        elif f is None:
            data[v] = rng.normal(size=n) + (rng.normal(size=n)[ids[0]] if columns else 0.0)
        elif f.has_thresholds:
            data[v] = rng.integers(1, categories[v] + 1, size=n)
        else:
            data[v] = rng.integers(0, 2, size=n) if f.name == "bernoulli" else rng.poisson(2.0, size=n)
    return pd.DataFrame(data | dict(zip(columns, ids)))


class StandIn:
    """``bm`` in the examples: the package, except that ``Model`` builds the model's PyMC graph on
    data simulated for it and returns a mock of the model whose ``fit`` returns a mock fit."""

    def __init__(self) -> None:
        self.built: list[bm.Model] = []

    def Model(self, syntax, data, cluster=None, **options):  # noqa: N802 (stands for the class)
        model = bm.Model(syntax, simulate(syntax, cluster, **options), cluster, **options)
        assert model.pymc_model is not None
        self.built.append(model)
        stand_in = mock.create_autospec(bm.Model, instance=True)
        stand_in.fit.return_value = mock.create_autospec(bm.Fit, instance=True)
        return stand_in

    def __getattr__(self, name: str):
        return getattr(bm, name)


@pytest.mark.parametrize("code", fenced("msem"))
def test_syntax_blocks_parse(code: str) -> None:
    syntax_module.parse(code)


@pytest.mark.parametrize("code", fenced("python model"))
def test_model_examples_build(code: str) -> None:
    stand_in = StandIn()
    exec(code, {"bm": stand_in, "data": None})
    assert stand_in.built, "the example builds no model"


def operator_table() -> list[tuple[str, str]]:
    """(operator, example) of each row of the table under 'Operators at a glance' in syntax.md."""
    section = (ROOT / "docs" / "syntax.md").read_text().split("## Operators at a glance")[1].split("\n## ")[0]
    rows = [re.split(r"(?<!\\)\|", line)[1:3] for line in section.splitlines() if line.startswith("| `")]
    return [tuple(re.search(r"`([^`]+)`", cell)[1].replace("\\|", "|") for cell in row) for row in rows]


@pytest.mark.parametrize("operator, example", operator_table())
def test_documented_operators_parse(operator: str, example: str) -> None:
    assert operator in example
    syntax_module.parse(example)


def test_every_operator_of_the_parser_is_documented() -> None:
    documented = {operator for operator, _ in operator_table()}
    assert syntax_module._STATEMENT_OPS <= documented


def test_priors_page_gives_every_default() -> None:
    text = (ROOT / "docs" / "priors.md").read_text()
    for kind, default in DEFAULT_PRIORS.items():
        assert f"| `{kind}` | `{default}` |" in text, kind
    assert f"| `loading` of a binary or ordinal item | `{CATEGORICAL_LOADING}` |" in text
    assert f"| `variance` of a factor of categorical items | `{CATEGORICAL_FACTOR_SD}` |" in text


def test_api_reference_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("api_reference", ROOT / "scripts" / "api_reference.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.OUTPUT.read_text(encoding="utf-8") == script.render(), "run python scripts/api_reference.py"


@pytest.mark.parametrize("path", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_relative_links_exist(path: Path) -> None:
    text = FENCE.sub("", path.read_text())
    targets = [t.split("#")[0] for t in LINK.findall(text) if not re.match(r"[a-z]+:|#", t)]
    missing = [t for t in targets if not (path.parent / t).exists()]
    assert not missing


def test_architecture_page_names_only_modules_that_exist():
    """docs/architecture.md matches the code: every file of the package it names exists, every
    stage folder of the package is named, and its table of strategies is the registry's, in order."""
    from bayes_msem.likelihood.registry import STRATEGIES

    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"bayes_msem/[\w/]+(?:\.py)?", text))
    assert named and not [path for path in named if not (ROOT / path).exists()]
    folders = {p.parent.name for p in (ROOT / "bayes_msem").glob("*/__init__.py")}
    assert not [folder for folder in folders if f"bayes_msem/{folder}/" not in text]
    rows = re.findall(r"^\| (\w+) \| `bayes_msem/likelihood/(\w+)\.py` \|", text, re.M)
    assert [name for name, _ in rows] == [s.name for s in STRATEGIES]
