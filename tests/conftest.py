"""Tests marked ``needs_dot`` render diagrams with Graphviz's ``dot`` program; where it is not
installed they are skipped with the package's message saying how to install it (CI installs it)."""

import shutil

import pytest

from bayes_msem.plots.diagram import MISSING_DOT


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("dot") is not None:
        return
    skip = pytest.mark.skip(reason=MISSING_DOT)
    for item in items:
        if item.get_closest_marker("needs_dot"):
            item.add_marker(skip)
