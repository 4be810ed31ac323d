"""Every row of docs/errors.md: its example raises the error named there, with a message that
contains the row's text (the examples are evaluated as written in the table)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_msem as bm

PAGE = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
ROW = re.compile(r"^\| (?P<what>[^|`]+) \| (?P<example>`(?:[^`]|\\\|)+`)[^|]* \| `(?P<error>\w+)` \| (?P<says>.+) \|$")


def _rows() -> list[dict[str, str]]:
    rows = [m.groupdict() for line in PAGE.read_text().splitlines() if (m := ROW.match(line.replace("\\|", "¦")))]
    return [{k: v.replace("¦", "|").strip() for k, v in row.items()} for row in rows]


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


def test_the_page_lists_at_least_thirty_bad_inputs():
    assert len(ROWS) >= 30 and len({row["what"] for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row["what"] for row in ROWS])
def test_each_bad_input_gets_its_error(row, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "damaged.nc").write_bytes(b"not a netCDF file")
    errors = {"ModelSyntaxError": bm.ModelSyntaxError, "SpecificationError": bm.SpecificationError,
              "DataError": bm.DataError, "PriorError": bm.PriorError, "ValueError": ValueError,
              "TypeError": TypeError, "FileNotFoundError": FileNotFoundError, "SamplingError": bm.SamplingError}
    with pytest.raises(errors[row["error"]]) as raised:
        eval(row["example"].strip("`"), _namespace())
    assert row["says"] in str(raised.value), str(raised.value)
