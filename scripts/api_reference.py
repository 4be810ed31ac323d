"""Write docs/api.md, the API reference, from the signatures and docstrings of ``bayes_msem.__all__``.

    python scripts/api_reference.py

Classes come with their public methods and properties (in the order they are defined),
then the functions, then the exceptions and warnings. ``tests/test_docs.py`` checks that
docs/api.md is what this script writes.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import bayes_msem as bm

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "api.md"
HEADER = """# API reference

Generated from the docstrings by `scripts/api_reference.py`; do not edit by hand.
Everything here is imported with `import bayes_msem as bm`.
"""


class _Annotation(str):
    """An annotation written as a string (``from __future__ import annotations``), shown unquoted."""

    def __repr__(self) -> str:
        return str(self)


def _unquoted(annotation):
    return _Annotation(annotation) if isinstance(annotation, str) else annotation


def signature(name: str, obj) -> str:
    """``name(parameters) -> return``, with the annotations as written in the source, without ``self``."""
    sig = inspect.signature(obj)
    parameters = [p.replace(annotation=_unquoted(p.annotation)) for p in sig.parameters.values() if p.name != "self"]
    return name + str(sig.replace(parameters=parameters, return_annotation=_unquoted(sig.return_annotation)))


def entry(level: str, title: str, code: str | None, doc: str | None) -> list[str]:
    """A heading, the signature (if any) as Python code and the docstring as preformatted text."""
    lines = [f"{level} {title}", ""]
    if code is not None:
        lines += ["```python", code, "```", ""]
    return lines + ["```text", doc or "(no docstring)", "```", ""]


def members(cls: type) -> list[str]:
    """The public methods and properties defined in ``cls``."""
    out = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            out += entry("####", f"`{cls.__name__}.{name}` (property)", None, inspect.getdoc(member))
        elif inspect.isfunction(getattr(member, "__func__", member)):  # methods, class and static methods
            method = getattr(cls, name)
            out += entry("####", f"`{cls.__name__}.{name}`", signature(f"{cls.__name__}.{name}", method), inspect.getdoc(method))
    return out


def render() -> str:
    """The text of docs/api.md."""
    objects = [(name, getattr(bm, name)) for name in bm.__all__]
    classes = [(n, o) for n, o in objects if inspect.isclass(o) and not issubclass(o, Exception | Warning)]
    functions = [(n, o) for n, o in objects if inspect.isfunction(o)]
    errors = [(n, o) for n, o in objects if inspect.isclass(o) and issubclass(o, Exception | Warning)]
    lines = [HEADER, "## Classes", ""]
    for name, cls in classes:
        lines += entry("###", f"`{name}`", signature(f"bm.{name}", cls), inspect.getdoc(cls)) + members(cls)
    lines += ["## Functions", ""]
    for name, function in functions:
        lines += entry("###", f"`{name}`", signature(f"bm.{name}", function), inspect.getdoc(function))
    lines += ["## Exceptions and warnings", ""]
    for name, error in errors:
        lines += entry("###", f"`{name}`", f"class {name}({', '.join(b.__name__ for b in error.__bases__)})", inspect.getdoc(error))
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"Wrote {OUTPUT}.")
