"""Path diagrams (bayes_msem.plots.diagram, Model.diagram, Fit.diagram): the DOT source has the right
nodes, shapes, edges and labels; rendering writes PNG and SVG files. One tiny fit; no other sampling."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import graphviz
import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm
from bayes_msem.plots.diagram import draw

CFA = """
visual =~ x1 + x2 + x3
textual =~ x4 + b*x5 + 0.8*x6
visual ~~ textual
"""

DEMO = bm.template("twolevel_sem_demo")

THREE_LEVEL = """
level: within
    f =~ y1 + y2 + y3
    s | y4 ~ x
level: class
    fc =~ y1 + y2 + y3
    y4 ~~ s
level: school
    y1 ~~ y1
    s ~ w
"""


def _frame(within: Sequence[str], cluster: Sequence[str] = (), school: Sequence[str] = (),
           seed: int = 3) -> pd.DataFrame:
    """Standard normal columns: ``within`` per row, ``cluster`` constant in each of 20 clusters of
    5 rows, ``school`` constant in each of 5 schools of 4 clusters."""
    rng = np.random.default_rng(seed)
    klass = np.repeat(np.arange(20), 5)
    columns = {name: rng.normal(size=100) for name in within}
    columns |= {name: rng.normal(size=20)[klass] for name in cluster}
    columns |= {name: rng.normal(size=5)[klass // 4] for name in school}
    return pd.DataFrame({**columns, "cluster": klass, "school": klass // 4})


def _attributes(text: str | None) -> dict[str, str]:
    """``key=value`` pairs of a DOT attribute list."""
    return {key: value.strip('"') for key, value in re.findall(r'(\w+)=("[^"]*"|[^\s\]]+)', text or "")}


def _nodes(graph: graphviz.Digraph) -> dict[str, dict[str, str]]:
    """Node name → attributes, from the DOT source."""
    found = re.findall(r'^\s*("[^"]+"|\w+) \[(.*)\]$', graph.source, flags=re.MULTILINE)
    return {name.strip('"'): _attributes(text) for name, text in found if name not in ("graph", "node", "edge")}


def _edges(graph: graphviz.Digraph) -> dict[tuple[str, str], dict[str, str]]:
    """(tail, head) → attributes, from the DOT source."""
    found = re.findall(r'^\s*("[^"]+"|\w+) -> ("[^"]+"|\w+)(?: \[(.*)\])?$', graph.source, flags=re.MULTILINE)
    return {(tail.strip('"'), head.strip('"')): _attributes(text) for tail, head, text in found}


def _same_rank(graph: graphviz.Digraph) -> list[list[str]]:
    """The members of each ``rank=same`` subgraph, in written order."""
    blocks = re.findall(r"\{\s*rank=same\s+((?:\"[^\"]+\"\s+)+)\}", graph.source)
    return [re.findall(r'"([^"]+)"', block) for block in blocks]


def _visible(graph: graphviz.Digraph) -> set[tuple[str, str]]:
    return {edge for edge, attributes in _edges(graph).items() if attributes.get("style") != "invis"}


def test_single_level_cfa() -> None:
    graph = bm.Model(CFA, _frame([f"x{k}" for k in range(1, 7)])).diagram()
    assert "subgraph" not in graph.source
    nodes, edges = _nodes(graph), _edges(graph)
    assert {name: a["shape"] for name, a in nodes.items()} == {
        "visual": "ellipse", "textual": "ellipse", **{f"x{k}": "box" for k in range(1, 7)}}
    loadings = {("visual", "x1"), ("visual", "x2"), ("visual", "x3"), ("textual", "x4"), ("textual", "x5"),
                ("textual", "x6")}
    assert _visible(graph) == loadings | {("visual", "textual")}
    assert edges[("visual", "textual")] == {"style": "dashed", "dir": "both", "constraint": "false"}
    # labels of an unfitted model: the label, the fixed value, or nothing
    assert edges[("visual", "x1")]["label"] == "1" and edges[("textual", "x5")]["label"] == "b"
    assert edges[("textual", "x6")]["label"] == "0.8" and "label" not in edges[("visual", "x2")]


def test_two_level_sem() -> None:
    data = _frame(["y1", "y2", "y3", "x1", "x2", "x3"], ["w1", "w2"])
    graph = bm.Model(DEMO, data, cluster="cluster").diagram()
    source, nodes = graph.source, _nodes(graph)
    assert source.index("subgraph cluster_between") < source.index("subgraph cluster_within")  # between on top
    assert {name: a["shape"] for name, a in nodes.items() if not name.startswith("above")} == {
        "between/fb": "ellipse", "between/w1": "box", "between/w2": "box",
        **{f"between/y{k}": "circle" for k in (1, 2, 3)},  # random intercepts, named after their variable
        "within/fw": "ellipse", **{f"within/{v}{k}": "box" for v in ("x", "y") for k in (1, 2, 3)}}
    assert all(nodes[f"between/y{k}"]["label"] == f"y{k}" for k in (1, 2, 3))
    assert _visible(graph) == ({(f"within/x{k}", "within/fw") for k in (1, 2, 3)}
                               | {("within/fw", f"within/y{k}") for k in (1, 2, 3)}
                               | {(f"between/w{k}", "between/fb") for k in (1, 2)}
                               | {("between/fb", f"between/y{k}") for k in (1, 2, 3)})
    hidden = {edge for edge, attributes in _edges(graph).items() if attributes.get("style") == "invis"}
    # the between frame is held above the within one: its bottom row → hidden node → the within top row
    assert {edge for edge in hidden if "above within" in edge} == (
        {(f"between/y{k}", "above within") for k in (1, 2, 3)} | {("above within", f"within/x{k}") for k in (1, 2, 3)})
    # rows of indicators and of covariates on one rank, in written order
    rows = [[f"within/y{k}" for k in (1, 2, 3)], [f"within/x{k}" for k in (1, 2, 3)],
            [f"between/y{k}" for k in (1, 2, 3)], ["between/w1", "between/w2"]]
    assert {edge for edge in hidden if "above within" not in edge} == {
        pair for row in rows for pair in zip(row, row[1:])}
    assert sorted(_same_rank(graph)) == sorted(rows)


def test_random_slope_is_a_dot_on_its_path_and_a_circle_above() -> None:
    graph = bm.Model(bm.template("random_slopes"), _frame(["y", "x"], ["w"]), cluster="cluster").diagram()
    nodes, edges = _nodes(graph), _edges(graph)
    assert nodes["within/s@"]["shape"] == "point" and nodes["within/s@"]["xlabel"] == "s"
    assert edges[("within/x", "within/s@")] == {"arrowhead": "none"} and ("within/s@", "within/y") in edges
    assert ("within/x", "within/y") not in edges
    assert nodes["between/s"]["shape"] == "circle" and nodes["between/y"]["shape"] == "circle"
    assert {("between/w", "between/s"), ("between/w", "between/y")} <= set(edges)
    assert edges[("between/s", "between/y")]["dir"] == "both"


def test_random_loadings_variances_and_covariance_block() -> None:
    syntax = bm.template("ansari_jedidi").replace("level: between", "    v | y1 ~~ y1\nlevel: between")
    graph = bm.Model(syntax, _frame([f"y{k}" for k in range(1, 7)], ["w"]), cluster="cluster").diagram()
    nodes, edges = _nodes(graph), _edges(graph)
    dots = {name: a["xlabel"] for name, a in nodes.items() if "xlabel" in a}
    assert dots == {f"within/{n}@": n for n in ("l2", "l5", "Phi.f1", "Phi.f2", "Phi.f1.f2", "v")}
    assert {("within/f1", "within/l2@"), ("within/l2@", "within/y2")} <= set(edges)
    assert {("within/Phi.f1@", "within/f1"), ("within/Phi.f2@", "within/f2")} <= set(edges)  # variances: dots above
    covariance = [edges[("within/f1", "within/Phi.f1.f2@")], edges[("within/Phi.f1.f2@", "within/f2")]]
    assert [a["style"] for a in covariance] == ["dashed", "dashed"] and covariance[0]["dir"] == "back"
    assert ["within/f1", "within/Phi.f1.f2@", "within/f2"] in _same_rank(graph)
    assert edges[("within/y1", "within/v@")] == {"dir": "back"}  # an indicator's variance: the dot below it
    assert edges[("within/f1", "within/y1")]["minlen"] == "2"  # fixed loadings as long as those through a dot
    assert {nodes[f"between/{n}"]["shape"] for n in ("l2", "l5", "Phi.f1", "Phi.f2", "Phi.f1.f2", "v")} == {"circle"}


def test_covariance_block_of_three_has_its_dots_above() -> None:
    syntax = ("level: within\n f1 =~ y1 + y2\n f2 =~ y3 + y4\n f3 =~ y5 + y6\n Phi | f1 + f2 + f3 ~~ f1 + f2 + f3\n"
              "level: between\n fb =~ y1 + y2 + y3 + y4 + y5 + y6\n")
    graph = bm.Model(syntax, _frame([f"y{k}" for k in range(1, 7)]), cluster="cluster").diagram()
    edges = _edges(graph)
    for a, b in [("f1", "f2"), ("f1", "f3"), ("f2", "f3")]:
        dot = f"within/Phi.{a}.{b}@"
        assert edges[(dot, f"within/{a}")] == edges[(dot, f"within/{b}")] == {"style": "dashed"}
    assert not any(node.endswith("@") for row in _same_rank(graph) for node in row)  # no dot on a row with factors


def test_three_levels_stack_top_down() -> None:
    data = _frame(["y1", "y2", "y3", "y4", "x"], school=["w"]).rename(columns={"cluster": "class"})
    graph = bm.Model(THREE_LEVEL, data, cluster=["class", "school"]).diagram()
    source, nodes, edges = graph.source, _nodes(graph), _edges(graph)
    assert source.index("cluster_school") < source.index("cluster_class") < source.index("cluster_within")
    assert nodes["class/fc"]["shape"] == "ellipse" and nodes["class/y1"]["shape"] == "circle"
    assert nodes["school/y1"]["shape"] == "circle" and nodes["school/s"]["shape"] == "circle"
    assert nodes["school/w"]["shape"] == "box" and nodes["within/s@"]["xlabel"] == "s"
    assert {("school/w", "school/s"), ("class/y4", "class/s"), ("within/s@", "within/y4")} <= set(edges)
    assert {"above class", "above within"} <= set(nodes)


def test_estimates_label_the_paths() -> None:
    model = bm.Model(CFA, _frame([f"x{k}" for k in range(1, 7)]))
    table = model.table
    estimates = table[["lhs", "op", "rhs", "level"]].assign(mean=np.linspace(0.1, 2.0, len(table)))
    estimates.loc[(table["op"] == "=~") & (table["rhs"] == "x2"), "mean"] = np.nan  # unknown: the label or nothing
    expected = estimates["mean"][(table["op"] == "=~") & (table["rhs"] == "x5")].iloc[0]
    edges = _edges(draw(table, estimates=estimates.sample(frac=1, random_state=0)))  # matched on lhs, op, rhs, level
    assert edges[("textual", "x5")]["label"] == f"{expected:.2f}"
    assert "label" not in edges[("visual", "x2")]


@pytest.fixture(scope="module")
def fit() -> bm.Fit:
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    f = 0.5 * x + rng.normal(size=200)
    data = pd.DataFrame({"x": x, **{f"y{k}": load * f + rng.normal(scale=0.6, size=200)
                                    for k, load in zip((1, 2, 3), (1.0, 0.8, 0.7))}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 100 draws of one chain: the convergence checks warn
        return bm.Model("f =~ y1 + a*y2 + y3\nf ~ x", data).fit(draws=100, tune=100, chains=1, random_seed=1)


def test_fit_diagram_shows_posterior_means(fit: bm.Fit) -> None:
    means = fit.parameters().set_index(["lhs", "op", "rhs"])["mean"]
    edges = _edges(fit.diagram())
    assert edges[("f", "y2")]["label"] == f"{means['f', '=~', 'y2']:.2f}"
    assert edges[("x", "f")]["label"] == f"{means['f', '~', 'x']:.2f}" and edges[("f", "y1")]["label"] == "1.00"
    assert 'label="Numbers on the paths: posterior means"' in fit.diagram().source  # a caption says what they are
    standardized = fit.standardized().set_index(["lhs", "op", "rhs"])["std.all"]
    graph = fit.diagram(standardized=True)
    assert 'label="Numbers on the paths: posterior means of the standardized estimates (std.all)"' in graph.source
    edges = _edges(graph)
    assert edges[("f", "y1")]["label"] == f"{standardized['f', '=~', 'y1']:.2f}" != "1.00"
    assert edges[("x", "f")]["label"] == f"{standardized['f', '~', 'x']:.2f}"


@pytest.mark.needs_dot
def test_rendering_writes_png_and_svg(fit: bm.Fit, tmp_path) -> None:
    png, svg, plain = tmp_path / "model.png", tmp_path / "model.svg", tmp_path / "model"
    graph = fit.diagram(png)
    assert isinstance(graph, graphviz.Digraph)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    bm.Model(DEMO, _frame(["y1", "y2", "y3", "x1", "x2", "x3"], ["w1", "w2"]), cluster="cluster").diagram(svg, "png")
    assert b"<svg" in svg.read_bytes()[:500]  # the suffix decides over format
    fit.diagram(plain, format="svg")
    assert b"<svg" in plain.read_bytes()[:500]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model.png", "model.svg"]  # no stray source files


def test_unknown_image_format_names_the_ones_to_use(fit: bm.Fit, tmp_path) -> None:
    with pytest.raises(bm.SettingsError, match=r"\.png, \.svg or \.pdf"):
        fit.diagram(tmp_path / "model.docx")


def test_missing_dot_program_names_the_fix(fit: bm.Fit, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    graph = fit.diagram()  # building the digraph needs no Graphviz program
    assert "digraph" in graph.source
    with pytest.raises(bm.MissingDependencyError, match="apt install graphviz, brew install graphviz or conda install graphviz"):
        fit.diagram(tmp_path / "model.png")
