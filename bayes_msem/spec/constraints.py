"""Constraints written with ``==``, ``<`` and ``>`` → a reparametrisation of θ.

``a == b`` between two labels is folded into the parameter table (the two share one free number,
:func:`.table._apply_equalities`). Every other constraint is solved here:

* linear equalities Σ_k c_k θ_k = d (``a == 2*b``, ``a + b + c == 3``) are brought to reduced row
  echelon form; each pivot parameter becomes *derived*, θ_p = offset_p + Σ_j C_pj θ_j over the
  parameters that stay sampled, so every draw satisfies the system exactly;
* inequalities give *bounds*: ``a > 0`` and ``a < 3`` bound a by numbers, ``a < b`` bounds b
  from below by a (``a > b``: a from below by b). A bounded parameter is sampled from its prior
  truncated to the bounds (an interval transform), never by rejection.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .table import SpecificationError, section_kind

__all__ = ["Bound", "Constraints", "constraint_rows", "solve_constraints"]

_TOLERANCE = 1e-10
_ORDERABLE = ("loading", "regression", "intercept", "variance")
_KINDS = {"=~": "loading", "~": "regression", "~1": "intercept", "|": "threshold", "variance": "variance",
          "covariance": "covariance"}
_LINEAR_FORM_HINT = ("== takes linear expressions of labels and numbers (a == 2*b, a + b == 1, a - b == 0); "
                     "define a nonlinear function of parameters with ':=' instead, or rewrite the constraint linearly")


@dataclass(frozen=True)
class Bound:
    """θ[index] lies in (lower, upper) and, where ``above`` ≥ 0, above θ[above]."""

    index: int
    lower: float = -np.inf
    upper: float = np.inf
    above: int = -1


@dataclass(frozen=True)
class Constraints:
    """θ[derived] = offset + coefficients @ θ (coefficients are 0 on derived columns) and the bounds of
    sampled parameters, in an order where each bound's ``above`` parameter comes first."""

    derived: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    coefficients: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bounds: tuple[Bound, ...] = ()

    def derive(self, theta: np.ndarray) -> np.ndarray:
        """θ (..., parameters) with its derived elements computed from the others."""
        theta = np.array(theta, dtype=float)
        if len(self.derived):
            theta[..., self.derived] = self.offset + theta @ self.coefficients.T
        return theta

    def move_inside(self, starts: np.ndarray, written: np.ndarray, names: list[str]) -> np.ndarray:
        """Starting values that satisfy the constraints: a default start outside its bounds moves
        inside (the middle of a finite interval, else 1 beyond the bound); a written one there is an
        error; derived elements are computed."""
        starts = np.array(starts, dtype=float)
        for bound in self.bounds:
            lower = max(bound.lower, starts[bound.above] if bound.above >= 0 else -np.inf)
            value = starts[bound.index]
            if lower < value < bound.upper:
                continue
            if written[bound.index]:
                raise SpecificationError(f"the start value {value:g} of {names[bound.index]} violates its inequality "
                                         "constraint; write a start() that satisfies it.")
            finite = np.isfinite([lower, bound.upper])
            starts[bound.index] = (0.5 * (lower + bound.upper) if finite.all() else lower + 1.0 if finite[0]
                                   else bound.upper - 1.0)
        return self.derive(starts)


def constraint_rows(user: pd.DataFrame) -> pd.DataFrame:
    """The constraints of a parsed user table that the parameter table does not hold: every ``<`` and
    ``>``, and every ``==`` other than one between two labels (columns lhs, op, rhs, line)."""
    labels = set(user["label"].dropna())
    rows = user[user["op"].isin(["==", "<", ">"])]
    folded = (rows["op"] == "==") & rows["lhs"].isin(labels) & rows["rhs"].isin(labels)
    return rows.loc[~folded, ["lhs", "op", "rhs", "line"]].reset_index(drop=True)


def solve_constraints(table: pd.DataFrame, rows: pd.DataFrame) -> Constraints:
    """The reparametrisation that satisfies the constraint ``rows`` (:func:`constraint_rows`) of a
    complete parameter ``table``; refuses nonlinear, inconsistent and redundant equalities, and bounds it
    cannot sample (on covariances or thresholds, in cycles, mixed with equalities)."""
    if rows.empty:
        return Constraints()
    n = int(table["free"].max())
    kinds, names = _kinds_and_names(table, n)
    values = _label_values(table)
    equalities = rows[rows["op"] == "=="]
    forms = [_linear_form(f"({r.lhs}) - ({r.rhs})", values, r) for r in equalities.itertuples(index=False)]
    for r, (coefficients, _) in zip(equalities.itertuples(index=False), forms):
        _check_one_kind(r, coefficients, kinds)
    written = table.loc[table["prior"].notna() | table["start"].notna(), "free"]
    derived, matrix, offset = _reduce(forms, list(equalities.itertuples(index=False)), n, set(written - 1))
    bounds = _bounds(rows[rows["op"] != "=="], values, kinds, names)
    constrained = {i for coefficients, _ in forms for i in coefficients}
    for bound in bounds:
        for index in (bound.index, bound.above):
            if index in constrained:
                raise SpecificationError(f"{names[index]} is in both an equality (==) and an inequality (< or >) "
                                         "constraint; constrain each parameter by one of them only.")
    _check_derived_rows(table, derived, names)
    return Constraints(np.array(derived, dtype=np.int64), matrix, offset, bounds)


def _kinds_and_names(table: pd.DataFrame, n: int) -> tuple[list[str], list[str]]:
    """The kind (loading, covariance, ...) and a readable name of each θ element."""
    kinds, names = [""] * n, [""] * n
    for r in table[table["free"] > 0].drop_duplicates("free").itertuples(index=False):
        kinds[r.free - 1] = _KINDS[section_kind(r._asdict())]
        where = f" (level {r.level})" if r.level else ""
        names[r.free - 1] = f"'{r.lhs} {r.op} {r.rhs}'".replace(" ~1 '", " ~ 1'") + where
    return kinds, names


def _label_values(table: pd.DataFrame) -> dict[str, int | float]:
    """Each label: its θ index (a free parameter) or its fixed value (a float)."""
    values: dict[str, int | float] = {}
    for label, free, fixed in table.loc[table["label"].notna(), ["label", "free", "fixed"]].itertuples(index=False):
        values.setdefault(label, int(free) - 1 if free > 0 else float(fixed))
    return values


def _linear_form(expression: str, values: dict[str, int | float], row) -> tuple[dict[int, float], float]:
    """``expression`` as Σ_k c_k θ_k + d: the coefficients {θ index: c_k} and the constant d."""
    written = f"{row.lhs} {row.op} {row.rhs}"

    def nonlinear(why: str) -> SpecificationError:
        return SpecificationError(f"line {row.line}: the constraint '{written}' is not linear ({why}); {_LINEAR_FORM_HINT}.")

    def form(node: ast.AST) -> tuple[dict[int, float], float]:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return {}, float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise SpecificationError(f"line {row.line}: '{node.id}' in the constraint '{written}' is not a parameter "
                                         "label; constraints name labels written in the model (e.g. y ~ a*x).")
            value = values[node.id]
            return ({value: 1.0}, 0.0) if isinstance(value, int) else ({}, value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            coefficients, constant = form(node.operand)
            return {k: sign * c for k, c in coefficients.items()}, sign * constant
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            (left, a), (right, b) = form(node.left), form(node.right)
            sign = 1.0 if isinstance(node.op, ast.Add) else -1.0
            merged = dict(left)
            for k, c in right.items():
                merged[k] = merged.get(k, 0.0) + sign * c
            return merged, a + sign * b
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
            (left, a), (right, b) = form(node.left), form(node.right)
            if right and (left or isinstance(node.op, ast.Div)):
                raise nonlinear("a product or quotient of parameters")
            if isinstance(node.op, ast.Div):
                if b == 0:
                    raise nonlinear("a division by 0")
                return {k: c / b for k, c in left.items()}, a / b
            scale, terms, constant = (b, left, a) if not right else (a, right, b)
            return {k: c * scale for k, c in terms.items()}, constant * scale
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            (left, a), (right, b) = form(node.left), form(node.right)
            if left or right:
                raise nonlinear("a power of a parameter")
            return {}, a**b
        raise nonlinear("a function or an operation other than + - * / ^")

    coefficients, constant = form(ast.parse(expression.replace("^", "**"), mode="eval").body)
    return {k: c for k, c in coefficients.items() if abs(c) > _TOLERANCE}, constant


def _check_one_kind(row, coefficients: dict[int, float], kinds: list[str]) -> None:
    """One constraint relates parameters of one kind (as shared labels do)."""
    found = sorted({kinds[k] for k in coefficients})
    if len(found) > 1:
        raise SpecificationError(f"line {row.line}: the constraint '{row.lhs} {row.op} {row.rhs}' joins parameters of "
                                 f"different kinds ({found}); constraints must relate parameters of one kind.")


def _reduce(forms: list[tuple[dict[int, float], float]], rows: list, n: int,
            keep: set[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Reduced row echelon form of the equalities Σ c_k θ_k + d = 0, columns in order of first
    appearance, those in ``keep`` (with a written prior or start) last: each row's pivot
    θ_p = −d − Σ_{j not pivot} c_j θ_j. Returns the pivots, the coefficients (pivots, n) and offsets."""
    order = list(dict.fromkeys(k for coefficients, _ in forms for k in coefficients))
    order.sort(key=lambda k: k in keep)
    system = np.zeros((len(forms), n + 1))
    for i, (coefficients, constant) in enumerate(forms):
        for k, c in coefficients.items():
            system[i, k] = c
        system[i, n] = constant
    pivots: list[tuple[int, int]] = []  # (row, column)
    for i, row in enumerate(rows):
        for r, p in pivots:
            system[i] -= system[i, p] * system[r]
        scale = max(1.0, np.abs(system[i, :n]).max(initial=0.0))
        column = next((k for k in order if abs(system[i, k]) > _TOLERANCE * scale), None)
        written = f"'{row.lhs} == {row.rhs}'"
        if column is None:
            if abs(system[i, n]) > _TOLERANCE * scale:
                raise SpecificationError(f"line {row.line}: the constraint {written} contradicts the equality "
                                         "constraints before it (no parameter values satisfy them all); remove or "
                                         "correct one of them.")
            raise SpecificationError(f"line {row.line}: the constraint {written} follows from the equality constraints "
                                     "before it (it is redundant); remove it.")
        system[i] /= system[i, column]
        for r, p in pivots:
            system[r] -= system[r, column] * system[i]
        pivots.append((i, column))
    derived = [p for _, p in pivots]
    matrix = -system[[r for r, _ in pivots], :n]
    matrix[:, derived] = 0.0
    return derived, matrix, -system[[r for r, _ in pivots], n]


def _bounds(rows: pd.DataFrame, values: dict[str, int | float], kinds: list[str], names: list[str]) -> tuple[Bound, ...]:
    """The bounds that ``<`` and ``>`` rows set, ordered so that each ``above`` parameter comes first."""
    lower: dict[int, float] = {}
    upper: dict[int, float] = {}
    above: dict[int, int] = {}
    for r in rows.itertuples(index=False):
        written = f"'{r.lhs} {r.op} {r.rhs}'"
        small, large = (r.lhs, r.rhs) if r.op == "<" else (r.rhs, r.lhs)
        sides = [_single(_linear_form(side, values, r), r) for side in (small, large)]
        for side in sides:
            if isinstance(side, int) and kinds[side] not in _ORDERABLE:
                raise SpecificationError(f"line {r.line}: the inequality {written} bounds {names[side]}, a {kinds[side]}; "
                                         f"inequalities apply to {', '.join(_ORDERABLE)} parameters ({kinds[side]}s "
                                         "are kept valid by their own construction).")
        (low, high) = sides
        if isinstance(low, float) and isinstance(high, float):
            raise SpecificationError(f"line {r.line}: the inequality {written} names no free parameter; remove it.")
        if isinstance(low, int) and isinstance(high, int):
            if kinds[low] != kinds[high]:
                raise SpecificationError(f"line {r.line}: the inequality {written} orders parameters of different kinds "
                                         f"({kinds[low]}, {kinds[high]}); order parameters of one kind.")
            _set_once(above, high, low, names, r, "lower bound")
        elif isinstance(high, int):
            _set_once(lower, high, low, names, r, "lower bound")
        else:
            _set_once(upper, low, high, names, r, "upper bound")
    bounded = sorted(set(lower) | set(upper) | set(above))
    for k in bounded:
        if k in above and k in lower:
            raise SpecificationError(f"{names[k]} has two lower bounds (a number and {names[above[k]]}); keep one.")
        if k in above and k in upper:
            raise SpecificationError(f"{names[k]} is bounded below by {names[above[k]]} and above by {upper[k]:g}, an "
                                     "interval that can be empty; bound it by numbers or by the other parameter only.")
        if lower.get(k, -np.inf) >= upper.get(k, np.inf):
            raise SpecificationError(f"the inequalities on {names[k]} contradict each other: it must lie above "
                                     f"{lower[k]:g} and below {upper[k]:g}.")
        if kinds[k] in ("variance", "dispersion") and upper.get(k, np.inf) <= 0:
            raise SpecificationError(f"{names[k]} is a variance, positive by construction; its upper bound "
                                     f"{upper[k]:g} leaves no value. Remove the inequality.")
    ordered: list[int] = []
    while len(ordered) < len(bounded):
        ready = [k for k in bounded if k not in ordered and (k not in above or above[k] in ordered or above[k] not in bounded)]
        if not ready:
            cycle = [names[k] for k in bounded if k not in ordered]
            raise SpecificationError(f"the inequalities among {', '.join(cycle)} form a cycle (a < b < ... < a); "
                                     "no values satisfy them. Remove one.")
        ordered += ready
    return tuple(Bound(k, lower.get(k, -np.inf), upper.get(k, np.inf), above.get(k, -1)) for k in ordered)


def _single(form: tuple[dict[int, float], float], row) -> int | float:
    """One side of an inequality: a label's θ index, or a number."""
    coefficients, constant = form
    if not coefficients:
        return constant
    if len(coefficients) != 1 or constant != 0.0 or next(iter(coefficients.values())) != 1.0:
        raise SpecificationError(f"line {row.line}: the inequality '{row.lhs} {row.op} {row.rhs}' compares "
                                 "expressions; write a label and a number (a > 0, a < 3) or two labels (a < b).")
    return next(iter(coefficients))


def _set_once(where: dict, key: int, value: int | float, names: list[str], row, what: str) -> None:
    """``where[key] = value``, refusing a second bound of one kind on a parameter."""
    if key in where:
        raise SpecificationError(f"line {row.line}: {names[key]} gets a second {what} from "
                                 f"'{row.lhs} {row.op} {row.rhs}'; give each parameter at most one lower and one upper bound.")
    where[key] = value


def _check_derived_rows(table: pd.DataFrame, derived: list[int], names: list[str]) -> None:
    """A derived parameter's prior and start value would have no effect: refuse them."""
    rows = table[table["free"].isin(np.asarray(derived) + 1)]
    for r in rows[rows["prior"].notna() | rows["start"].notna()].itertuples(index=False):
        what = "prior" if isinstance(r.prior, str) else "start value"
        raise SpecificationError(f"the {what} of {names[r.free - 1]} would have no effect: an equality constraint "
                                 "computes that parameter from others. Write it on a parameter the constraint "
                                 "leaves free, or drop it.")
