"""Parser fuzzing: any text parses to a table or raises the package's ModelSyntaxError (with a
line and column inside the text), never another exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_msem.spec.syntax import ModelSyntaxError, parse

# Pieces of the language, so that random text often gets deep into the grammar
TOKENS = ["=~", "~", "~~", "~ 1", ":=", "==", "<", ">", "|", "+", "*", "-", "/", "^", "(", ")", ",", "'", '"',
          "#", ";", "\n", " ", "1", "0.5", "-2", "NA", "1e-3", "y1", "y2", "f", "s", "x", "label", "start(1)",
          "prior(\"normal(0, 1)\")", "prior(\"gamma(1, 0.5)[sd]\")", "equal(\"a\")", "level:", "level: within",
          "level: between", "level: 2", "c(1, 2)", "exp(", "abs", "t1", "sqrt(", "\t", "\\", "!"]

fragments = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
any_text = st.text(max_size=200)


def _parse_or_syntax_error(text: str) -> None:
    try:
        table = parse(text)
    except ModelSyntaxError as error:
        assert 1 <= error.line <= text.count("\n") + 2, (error.line, text)
        assert str(error)  # a message to show
    else:
        assert {"lhs", "op", "rhs"} <= set(table.columns)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragments)
def test_language_fragments_parse_or_raise_a_syntax_error(text: str) -> None:
    _parse_or_syntax_error(text)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_arbitrary_text_parses_or_raises_a_syntax_error(text: str) -> None:
    _parse_or_syntax_error(text)
