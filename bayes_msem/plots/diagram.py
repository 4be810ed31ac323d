"""Path diagrams: the parameter table, and optionally posterior estimates, as a Graphviz digraph.

Drawn as Mplus draws multilevel models: one frame per level, the highest level on top.
Observed variables and covariates are boxes, factors ellipses; at the levels above the lowest,
the parts of lower-level variables (random intercepts, named after their variable) and the
random parameters are circles. Loadings (factor → indicator) and regressions (predictor →
outcome) are arrows; covariances of distinct variables dashed two-headed arrows. A random
parameter is a filled dot on the path it lets vary (``s | y ~ x``: x → • → y, the dot labelled
s); its own model (``s ~ w``, ``s ~~ y``) is drawn at the level above, where s is a circle. A
random (log) variance ``v | y ~~ y`` is a dot with an arrow into y, a covariance block
``Phi | f1 + f2 ~~ f1 + f2`` a dot per component (``Phi.f1``, ``Phi.f2`` into f1 and f2,
``Phi.f1.f2`` on the dashed arrow between them). Other variances and the intercepts are not drawn.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import graphviz
import pandas as pd

from ..errors import MissingDependencyError, SettingsError
from ..spec.table import MODEL_OPS, LevelRoles, assign_roles, random_parameters

KEYS = ["lhs", "op", "rhs", "level"]
MISSING_DOT = ("rendering a diagram needs the 'dot' program of Graphviz, which was not found; install "
               "Graphviz (apt install graphviz, brew install graphviz or conda install graphviz) and try again.")
# remincross: a second pass against crossings over the whole graph would undo the rows' written order in frames
_GRAPH = {"rankdir": "TB", "fontname": "Helvetica", "nodesep": "0.4", "ranksep": "0.45", "forcelabels": "true",
          "remincross": "false"}
_NODE = {"fontname": "Helvetica", "fontsize": "12", "margin": "0.06,0.04", "height": "0.4"}
_EDGE = {"fontname": "Helvetica", "fontsize": "10", "arrowsize": "0.7"}
_LEVEL = {"style": "dashed,rounded", "color": "gray50", "fontcolor": "gray30", "labeljust": "l", "fontsize": "12"}
_CIRCLE = {"margin": "0.02"}
_DOT = {"shape": "point", "width": "0.09", "fontsize": "10"}
_COVARIANCE = {"style": "dashed", "dir": "both", "constraint": "false"}
_RASTER, _RASTER_DPI = {"png", "jpg", "jpeg", "gif", "bmp", "webp"}, "150"  # Graphviz's 72 dpi reads small on screen


def draw(table: pd.DataFrame, path: str | Path | None = None, format: str = "png",
         estimates: pd.DataFrame | None = None, column: str = "mean", caption: str | None = None) -> graphviz.Digraph:
    """The path diagram of ``table``, rendered to ``path`` when given (see :func:`render`).

    Each path is labelled with ``estimates[column]`` of its row (``estimates`` has the table's
    lhs, op, rhs, level columns) where that is known, else with its label or fixed value; ``caption``
    (what those numbers are) is written under the diagram.
    """
    values = _row_values(table, estimates, column) if estimates is not None else pd.Series(math.nan, table.index)
    graph = path_diagram(table, values)
    if caption:
        graph.attr(label=caption, labelloc="b", labeljust="l", fontsize="11", fontcolor="gray20")
    return render(graph, path, format)


def path_diagram(table: pd.DataFrame, values: pd.Series) -> graphviz.Digraph:
    """The digraph of the model rows of ``table``; ``values`` (NaN where unknown) labels the paths."""
    rows = table[table["op"].isin(MODEL_OPS)]
    roles = assign_roles(rows)
    declared = random_parameters(rows)
    components = {_relation(p.written, p.lhs, p.op, p.rhs): p.name for p in declared}
    # the correlation of a block of two sits between its variables; in larger blocks such rows would cross
    pairs = [p.written for p in declared if p.kind == "correlation"]
    in_line = {p.name for p in declared if p.kind == "correlation" and pairs.count(p.written) == 1}
    graph = graphviz.Digraph("model", graph_attr=_GRAPH, node_attr=_NODE, edge_attr=_EDGE)
    levels = list(roles)  # lowest first
    upper_bottom: list[str] = []
    for rank in reversed(range(len(levels))):
        level = levels[rank]
        lower = {v for r in levels[:rank] for v in (*roles[r].observed, *roles[r].covariates, *roles[r].latent)}
        body = graphviz.Digraph(f"cluster_{level}", graph_attr={"label": level, **_LEVEL}) if level else graph
        top, bottom = _draw_level(body, roles[level], lower, rows[rows["level"] == level], values, components, in_line)
        if body is not graph:
            graph.subgraph(body)
        if upper_bottom:
            _stack(graph, level, upper_bottom, top)
        upper_bottom = bottom
    return graph


def render(graph: graphviz.Digraph, path: str | Path | None, format: str = "png") -> graphviz.Digraph:
    """Write ``graph`` to ``path`` (when given) in the format of its suffix (``.png``, ``.svg``,
    ``.pdf``, …), or in ``format`` when it has none, raster images at 150 dpi; return ``graph``."""
    if path is None:
        return graph
    original, path = graph, Path(path)
    kind = path.suffix.removeprefix(".").lower() or format
    if kind not in graphviz.FORMATS:
        raise SettingsError(f"cannot write a diagram as {kind!r}; use a file name ending in .png, .svg or .pdf.")
    if kind in _RASTER:
        graph = graph.copy()
        graph.attr(dpi=_RASTER_DPI)
    try:
        image = graph.pipe(format=kind)
    except graphviz.ExecutableNotFound as error:
        raise MissingDependencyError(MISSING_DOT) from error
    path.write_bytes(image)
    return original


def _row_values(table: pd.DataFrame, estimates: pd.DataFrame, column: str) -> pd.Series:
    """``estimates[column]`` for each row of ``table``, matched on lhs, op, rhs and level."""
    matched = table[KEYS].merge(estimates[[*KEYS, column]], on=KEYS, how="left", validate="many_to_one")
    return pd.Series(matched[column].to_numpy(dtype=float), index=table.index)


def _relation(written: str, lhs: str, op: str, rhs: str) -> tuple[str, ...]:
    """A random parameter's relation, with the two sides of a covariance in sorted order."""
    return (written, op, *sorted((lhs, rhs))) if op == "~~" else (written, op, lhs, rhs)


def _node(level: str, name: str) -> str:
    """The node of variable ``name`` at ``level`` (one variable has a node per level it is used at)."""
    return f"{level}/{name}" if level else name


def _draw_level(body: graphviz.Digraph, roles: LevelRoles, lower: set[str], rows: pd.DataFrame, values: pd.Series,
                components: dict[tuple[str, ...], str], in_line: set[str]) -> tuple[list[str], list[str]]:
    """Draw the variables of one level and its loadings, regressions, covariances and random paths
    (``components`` names the random parameter of each relation; the dots of ``in_line`` go between
    their two variables); return the level's top and bottom nodes (those no ranked arrow enters,
    those none leaves)."""
    level = roles.level
    variables = (*roles.covariates, *roles.latent, *roles.observed, *roles.random)
    for name in variables:
        shape = "ellipse" if name in roles.latent else "circle" if name in roles.random or name in lower else "box"
        body.node(_node(level, name), name, shape=shape, **_CIRCLE if shape == "circle" else {})
    directed = rows[rows["op"].isin(["=~", "~"])]
    paths = [_ends(level, *row) for row in directed[["lhs", "op", "rhs"]].itertuples(index=False)]
    leaving = {tail for tail, _ in paths}
    # a path through a random parameter's dot spans two ranks: fixed paths are stretched to match
    stretch = {"minlen": "2"} if directed["random"].map(lambda r: isinstance(r, str)).any() else {}
    edges: list[tuple[str, str, dict[str, str]]] = []
    for index, row in rows.iterrows():
        tail, head = _ends(level, row["lhs"], row["op"], row["rhs"])
        if isinstance(row["random"], str):
            name = components[_relation(row["random"], row["lhs"], row["op"], row["rhs"])]
            dot = f"{_node(level, name)}@"
            edges += _random_path(body, dot, name, tail, head, row["op"], head not in leaving, name in in_line)
        elif row["op"] == "~~" and tail != head:
            edges.append((tail, head, {**_text(row, values[index]), **_COVARIANCE}))
        elif row["op"] in ("=~", "~"):
            edges.append((tail, head, {**_text(row, values[index]), **stretch}))
    for tail, head, attributes in edges:
        body.edge(tail, head, **attributes)
    joined = {frozenset((tail, head)) for tail, head, _ in edges}  # a second arrow between two would curve
    for members in _side_by_side(paths):
        _same_rank(body, members)
        for left, right in itertools.pairwise(members):
            if frozenset((left, right)) not in joined:
                body.edge(left, right, style="invis")
    ranked = [(tail, head) for tail, head, attributes in edges if attributes.get("constraint") != "false"]
    nodes = dict.fromkeys([*(_node(level, name) for name in variables), *(end for edge in ranked for end in edge)])
    return ([node for node in nodes if node not in {head for _, head in ranked}],
            [node for node in nodes if node not in {tail for tail, _ in ranked}])


def _ends(level: str, lhs: str, op: str, rhs: str) -> tuple[str, str]:
    """The nodes a row joins, as tail and head: predictor → outcome for ``~``, else lhs → rhs."""
    return (_node(level, rhs), _node(level, lhs)) if op == "~" else (_node(level, lhs), _node(level, rhs))


def _side_by_side(paths: list[tuple[str, str]]) -> list[list[str]]:
    """Rows of nodes to keep in written order from left to right (Graphviz does not keep the order
    of arrows inside a frame): the indicators and outcomes no arrow leaves, per variable they come
    from, and the covariates and other variables no arrow enters, per variable they point to."""
    tails, heads = {tail for tail, _ in paths}, {head for _, head in paths}
    children: dict[str, list[str]] = {}
    parents: dict[str, list[str]] = {}
    for tail, head in paths:
        if head not in tails:
            children.setdefault(tail, []).append(head)
        if tail not in heads:
            parents.setdefault(head, []).append(tail)
    return [members for members in (*children.values(), *parents.values()) if len(members) > 1]


def _same_rank(body: graphviz.Digraph, nodes: list[str]) -> None:
    """Place ``nodes`` on one rank (a row); arrows between them then run left to right."""
    with body.subgraph() as row:
        row.attr(rank="same")
        for node in nodes:
            row.node(node)


def _random_path(body: graphviz.Digraph, dot: str, name: str, tail: str, head: str, op: str, below: bool,
                 in_line: bool) -> list[tuple[str, str, dict[str, str]]]:
    """Add the dot of the random parameter ``name``; return the arrows through it: on the arrow
    tail → head of a loading or regression; into the variable of a variance (from ``below`` it
    when no arrow leaves the variable, else from above); into the two variables of a covariance
    (``in_line``: on one row between them, else from above)."""
    body.node(dot, xlabel=name, **_DOT)
    if op != "~~":
        return [(tail, dot, {"arrowhead": "none"}), (dot, head, {})]
    if tail == head:
        return [(head, dot, {"dir": "back"})] if below else [(dot, head, {})]
    if in_line:
        _same_rank(body, [tail, dot, head])
        return [(tail, dot, {"style": "dashed", "dir": "back"}), (dot, head, {"style": "dashed"})]
    return [(dot, tail, {"style": "dashed"}), (dot, head, {"style": "dashed"})]


def _text(row: pd.Series, value: float) -> dict[str, str]:
    """The label of a path: its posterior value to two decimals; else its label, its fixed value, or none."""
    if not math.isnan(value):
        return {"label": f"{value:.2f}"}
    if isinstance(row["label"], str):
        return {"label": row["label"]}
    return {} if math.isnan(row["fixed"]) else {"label": f"{row['fixed']:g}"}


def _stack(graph: graphviz.Digraph, level: str, bottom: list[str], top: list[str]) -> None:
    """Keep the frame of ``level`` under the one above: invisible arrows from the upper level's
    ``bottom`` nodes through a hidden node to the ``top`` nodes of ``level``."""
    hidden = f"above {level}"
    graph.node(hidden, "", style="invis", shape="point", width="0")
    for node in bottom:
        graph.edge(node, hidden, style="invis")
    for node in top:
        graph.edge(hidden, node, style="invis")
