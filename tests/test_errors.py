"""Every row of docs/errors.md: its example raises the error named there, a ``bm.Error``, with a
message that contains the row's text (the examples are evaluated as written in the tables, one
table per kind of bad input); and every error bayes_msem raises on purpose is a ``bm.Error``."""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "errors.md"
ROW = re.compile(r"^\| (?P<what>[^|`]+) \| (?P<example>`(?:[^`]|\\\|)+`)[^|]* \| `(?P<error>\w+)` \| (?P<says>.+) \|$")
KINDS = ["Syntax", "Variables and levels", "Data", "Clusters", "Groups", "Priors", "Fixed values and identification",
         "Settings and arguments", "Files", "Sampling"]


def _rows() -> list[dict[str, str]]:
    """The table rows, each with the ``## kind`` heading it stands under."""
    rows, kind = [], ""
    for line in PAGE.read_text().splitlines():
        if line.startswith("## "):
            kind = line[3:].strip()
        elif m := ROW.match(line.replace("\\|", "¦")):
            rows.append({"kind": kind, **{k: v.replace("¦", "|").strip() for k, v in m.groupdict().items()}})
    return rows


def _namespace() -> dict:
    """What the examples refer to (the page's introduction describes them)."""
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"g": np.repeat(np.arange(12), 5), **{v: rng.normal(size=60) for v in ("y1", "y2", "y3", "x")}})
    d["w"] = rng.normal(size=12)[d["g"]]
    return {"bm": bm, "np": np, "pd": pd, "d": d,
            "TWO": "level: within\n f =~ y1 + y2 + y3\nlevel: between\n fb =~ y1 + y2 + y3",
            "THREE": "level: within\n y1 ~ x\nlevel: a\n y1 ~~ y1\nlevel: b\n y1 ~~ y1",
            "fit": object.__new__(bm.Fit)}  # save() checks its folder before it reads the fit


ROWS = _rows()


def test_the_page_lists_at_least_seventy_bad_inputs_grouped_by_kind():
    assert len(ROWS) >= 70 and len({row["what"] for row in ROWS}) == len(ROWS)
    assert [kind for kind in KINDS if any(row["kind"] == kind for row in ROWS)] == KINDS
    assert {row["kind"] for row in ROWS} == set(KINDS)


@pytest.mark.parametrize("row", ROWS, ids=[f"{row['kind']}: {row['what']}" for row in ROWS])
def test_each_bad_input_gets_its_error(row, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "damaged.nc").write_bytes(b"not a netCDF file")
    error = getattr(bm, row["error"], None) or getattr(builtins, row["error"])
    with pytest.raises(error) as raised:
        eval(row["example"].strip("`"), _namespace())
    assert isinstance(raised.value, bm.Error), type(raised.value).__mro__
    assert row["says"] in str(raised.value), str(raised.value)


@pytest.mark.parametrize(("error", "builtin"), [
    (bm.ModelSyntaxError, ValueError), (bm.SpecificationError, ValueError), (bm.DataError, ValueError),
    (bm.PriorError, ValueError), (bm.SamplingError, RuntimeError), (bm.SettingsError, ValueError),
    (bm.ArgumentTypeError, TypeError), (bm.MissingDependencyError, ImportError),
    (bm.MissingFileError, FileNotFoundError), (bm.SavedFitError, ValueError), (bm.UnavailableError, NotImplementedError),
])
def test_each_error_is_an_error_and_the_builtin_it_was(error, builtin):
    """``except bm.Error`` catches them all; ``except ValueError`` (etc.) code keeps working."""
    assert issubclass(error, bm.Error) and issubclass(error, builtin) and error.__name__ in bm.__all__


# Checks of the package's own invariants (a programming error, never the user's input).
INTERNAL = {("sampling/callbacks.py", "TypeError"), ("likelihood/families.py", "TypeError"),
            ("likelihood/families.py", "ValueError"), ("likelihood/logit.py", "ValueError")}


def test_every_deliberate_raise_is_a_bm_error():
    """Each ``raise Name(...)`` in bayes_msem/ names a bm.Error subclass (the package's own classes),
    except the internal invariant checks listed in INTERNAL."""
    package = ROOT / "bayes_msem"
    builtin_raises = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                name = node.exc.func.id
                if isinstance(getattr(builtins, name, None), type):
                    builtin_raises.add((path.relative_to(package).as_posix(), name))
    assert builtin_raises == INTERNAL


@pytest.mark.parametrize(("values", "says"), [
    ([".", "1.5", "2", ".", "3.25", "4", "5"], "pd.read_csv(..., na_values=['.'])"),
    (["1", "NA ", "2", "-", "3", "4", "5"], "pd.read_csv(..., na_values=['NA ', '-'])"),
    (["1", "2.5", "3", "4", "5", "6", "7"], "convert with pd.to_numeric(data['z'])"),
])
def test_text_columns_get_advice_that_works(values, says):
    """The advice in the message, run as written, turns the column into numbers."""
    data = pd.DataFrame({"z": values, "y": np.arange(7.0)})
    with pytest.raises(bm.DataError) as raised:
        bm.Model("y ~ z", data)
    assert says in str(raised.value), str(raised.value)
    codes = re.search(r"na_values=(\[.*?\])", str(raised.value))
    fixed = pd.to_numeric(data["z"].replace(ast.literal_eval(codes[1]), np.nan)) if codes else pd.to_numeric(data["z"])
    assert fixed.notna().sum() == sum(v.strip(".-").replace(".", "").isdigit() for v in values)
