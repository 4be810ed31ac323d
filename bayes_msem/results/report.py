"""The estimates of :meth:`Fit.summary` laid out as lavaan's ``summary()`` lays them out.

Per level, sections Latent Variables, Regressions, Covariances, Intercepts, Thresholds and
Variances (then Defined Parameters), each row under its left-hand side (``fw =~`` then ``y1``,
``y2``, ...). lavaan's Estimate and Std.Err become the posterior mean and SD, followed by the 95%
equal-tailed interval, R-hat and the bulk ESS (an integer). Numbers are fixed-point with three
decimals; a row whose mean would read 0.000 gets the decimals that show two significant digits.
A fixed parameter shows its value only; a path that varies over clusters (``s | y ~ x``) names
its random parameter instead of an estimate; the residual variance of a non-Gaussian item, which
its family supplies, names the family; a negative binomial or gamma item's is its dispersion. As in
lavaan, a dot marks the residual of a dependent variable (``.y1``).
"""

from __future__ import annotations

import math

import pandas as pd

from ..spec.table import SECTIONS, has_dispersion, section_kind

LOWER, UPPER = "eti_2.5%", "eti_97.5%"
_HEADERS = ["Mean", "SD", "2.5%", "97.5%", "R-hat", "ESS"]
_CELL = 9  # characters per number column
_GROUPED = {"=~": "=~", "~": "~", "covariance": "~~"}  # sections whose rows sit under their left-hand side
LEGEND = ("Mean, SD: posterior mean and standard deviation; 2.5%, 97.5%: equal-tailed 95% interval; "
          "ESS: bulk effective sample size.")


def estimates_text(parameters: pd.DataFrame, families: dict[str, str]) -> list[str]:
    """The lines of the estimates: the rows of :meth:`Fit.parameters` by level and section;
    ``families`` names the response family of each non-Gaussian variable (of the lowest level)."""
    rows = parameters.to_dict("records")
    width = max([18] + [6 + len(f"{r['lhs']}{r['rhs']}{_label(r)}") for r in rows])
    lowest = rows[0]["level"] if rows else ""
    lines: list[str] = []
    for level in dict.fromkeys(r["level"] for r in rows if r["op"] != ":="):
        if level:
            lines += [f"Level: {level}", ""]
        chosen = [r for r in rows if r["level"] == level and r["op"] != ":="]
        lines += _level_lines(chosen, families if level == lowest else {}, width)
    defined = [r for r in rows if r["op"] == ":="]
    if defined:
        lines += _section("Defined Parameters", [_line(f"    {r['lhs']}", r, width) for r in defined], width)
    return lines


def _level_lines(rows: list[dict], families: dict[str, str], width: int) -> list[str]:
    """The sections of one level."""
    dependent = {r["rhs"] for r in rows if r["op"] == "=~"} | {r["lhs"] for r in rows if r["op"] == "~"}
    lines: list[str] = []
    for kind, title in SECTIONS.items():
        chosen = [r for r in rows if section_kind(r) == kind]
        if not chosen:
            continue
        body: list[str] = []
        if kind in _GROUPED:
            residual = dependent if kind == "covariance" else set()  # covariances of dependent variables: residual ones
            for lhs in dict.fromkeys(r["lhs"] for r in chosen):
                body.append(f"  {_dot(lhs, residual)}{lhs} {_GROUPED[kind]}")
                for r in (r for r in chosen if r["lhs"] == lhs):
                    body.append(_line(f"    {_dot(r['rhs'], residual)}{r['rhs']}{_label(r)}", r, width))
        elif kind == "|":
            body = [_line(f"    {r['lhs']}|{r['rhs']}{_label(r)}", r, width) for r in chosen]
        else:
            body = [_line(f"   {_dot(r['lhs'], dependent) or ' '}{r['lhs']}{_label(r)}", r, width,
                          families.get(r["lhs"], "") if kind == "variance" else "") for r in chosen]
        lines += _section(title, body, width)
    return lines


def _dot(name: str, dependent: set[str]) -> str:
    """lavaan's mark of a dependent variable's residual: "." for those in ``dependent``."""
    return "." if name in dependent else ""


def _label(row: dict) -> str:
    return f" ({row['label']})" if isinstance(row["label"], str) and row["label"] else ""


def _section(title: str, body: list[str], width: int) -> list[str]:
    return [f"{title}:", " " * width + "".join(h.rjust(_CELL) for h in _HEADERS), *body, ""]


def _line(name: str, row: dict, width: int, family: str = "") -> str:
    """One row: ``name`` in the name column, then the statistics or what stands for them (see the
    module docstring); ``family`` is the response family of a variance's variable, if not Gaussian."""
    if isinstance(row["random"], str) and not row["free"]:
        return f"{name:<{width}}   varies over clusters: {row['random']}"
    if family and has_dispersion(family):
        name += " (dispersion)"
    elif family and not row["free"]:
        return f"{name:<{width}}   from the family: {family}"
    decimals = _decimals(row["mean"])
    cells = [_fixed(row[c], decimals) for c in ("mean", "sd", LOWER, UPPER)]
    cells += [_fixed(row["r_hat"], 3), _fixed(row["ess_bulk"], 0)]
    return (f"{name:<{width}}" + "".join(c.rjust(_CELL) for c in cells)).rstrip()


def _decimals(value: float) -> int:
    """Three, or enough to show two significant digits of a nonzero ``value`` below 0.0005."""
    if math.isnan(value) or value == 0 or abs(value) >= 0.0005:
        return 3
    return 1 - math.floor(math.log10(abs(value)))


def _fixed(value: float, decimals: int) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{decimals}f}"
