"""Ready-made model templates: two-level designs in lavaan syntax with random parameters.

The templates are the ``*.msem`` files in the package folder ``bayes_msem/templates``
(listed, with their designs and references, in its ``README.md``). Each starts with a
comment header that says which variables it expects at which level; the parser ignores
the comments, so the text goes straight to :class:`..Model`::

    import bayes_msem as bm
    model = bm.Model(bm.template("random_slopes"), data, cluster="school")
"""

from __future__ import annotations

import difflib
from importlib.resources import files
from importlib.resources.abc import Traversable

from ..errors import ArgumentTypeError, SettingsError

__all__ = ["available_templates", "template"]

_SUFFIX = ".msem"


def _folder() -> Traversable:
    return files("bayes_msem").joinpath("templates")


def available_templates() -> list[str]:
    """The names of the templates (file names without ``.msem``), sorted."""
    return sorted(entry.name.removesuffix(_SUFFIX) for entry in _folder().iterdir()
                  if entry.is_file() and entry.name.endswith(_SUFFIX))


def template(name: str) -> str:
    """The syntax of the template ``name`` (with or without ``.msem``), comments included.

    Raises ``ValueError`` for an unknown name, listing the templates and suggesting the closest.
    """
    if not isinstance(name, str):
        raise ArgumentTypeError(f"a template name is a string, got {type(name).__name__}.")
    stem = name.strip().removesuffix(_SUFFIX)
    names = available_templates()
    if stem not in names:
        close = difflib.get_close_matches(stem, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SettingsError(f"unknown template {name!r}; {hint}available templates: {', '.join(names)}.")
    return _folder().joinpath(stem + _SUFFIX).read_text(encoding="utf-8")
