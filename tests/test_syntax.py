"""Tests for bayes_msem.spec.syntax: the lavaan/Mplus model-syntax parser."""

import math
import pickle
import random

import pandas as pd
import pytest

from bayes_msem.spec.syntax import ModelSyntaxError, parse

COLUMNS = ["lhs", "op", "rhs", "block", "label", "fixed", "start", "prior", "random",
           "line", "free_forced", "per_group"]


def triples(table: pd.DataFrame) -> list[tuple[str, str, str]]:
    return list(zip(table.lhs, table.op, table.rhs))


def error(text: str) -> ModelSyntaxError:
    with pytest.raises(ModelSyntaxError) as info:
        parse(text)
    return info.value


# --- table shape -----------------------------------------------------------------------

def test_columns_and_dtypes():
    table = parse("f =~ y1 + a*y2")
    assert list(table.columns) == COLUMNS
    for name in ["lhs", "op", "rhs", "block", "label", "prior", "random"]:
        assert table[name].dtype == object, name
    assert table.fixed.dtype == "float64" and table.start.dtype == "float64"
    assert table.line.dtype == "int64" and table.free_forced.dtype == bool
    assert table.block.tolist() == [None, None]
    assert table.label.tolist() == [None, "a"]
    assert table.random.tolist() == [None, None] and table.prior.tolist() == [None, None]


def test_holzinger_swineford():
    table = parse("visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9\n")
    assert triples(table) == [(f, "=~", f"x{i}") for f, items in
                              [("visual", (1, 2, 3)), ("textual", (4, 5, 6)), ("speed", (7, 8, 9))]
                              for i in items]
    assert table.line.tolist() == [1] * 3 + [2] * 3 + [3] * 3
    assert table.fixed.isna().all() and table.label.isna().all()


# --- operators -------------------------------------------------------------------------

def test_regression_and_intercepts():
    assert triples(parse("y ~ x1 + x2")) == [("y", "~", "x1"), ("y", "~", "x2")]
    assert triples(parse("y ~ 1")) == [("y", "~1", "")]
    assert triples(parse("y ~ 1 + x")) == [("y", "~1", ""), ("y", "~", "x")]
    assert triples(parse("y ~ x + 1")) == [("y", "~", "x"), ("y", "~1", "")]


def test_lhs_lists_expand():
    assert triples(parse("y1 + y2 ~ x")) == [("y1", "~", "x"), ("y2", "~", "x")]
    assert triples(parse("f1 + f2 =~ a + b")) == [
        ("f1", "=~", "a"), ("f1", "=~", "b"), ("f2", "=~", "a"), ("f2", "=~", "b")]
    assert triples(parse("y1 + y2 ~ 1")) == [("y1", "~1", ""), ("y2", "~1", "")]


def test_covariances_deduplicated():
    assert triples(parse("a ~~ b")) == [("a", "~~", "b")]
    assert triples(parse("a + b ~~ a + b")) == [
        ("a", "~~", "a"), ("a", "~~", "b"), ("b", "~~", "b")]
    assert triples(parse("b + a ~~ a + b + c")) == [
        ("b", "~~", "a"), ("b", "~~", "b"), ("b", "~~", "c"), ("a", "~~", "a"), ("a", "~~", "c")]


def test_defined_parameters_keep_expression_text():
    table = parse("ab := a*b\ntotal   :=   c + exp(a) * (b - 1)^2 / 3   # comment\n")
    assert triples(table) == [("ab", ":=", "a*b"), ("total", ":=", "c + exp(a) * (b - 1)^2 / 3")]
    assert triples(parse("d := max(a, -b, 0.5)")) == [("d", ":=", "max(a, -b, 0.5)")]
    assert triples(parse("d := a +\n  b")) == [("d", ":=", "a + b")]


def test_constraints():
    assert triples(parse("a == b")) == [("a", "==", "b")]
    assert triples(parse("a < 2*b + 1; c > 0")) == [("a", "<", "2*b + 1"), ("c", ">", "0")]
    assert triples(parse("a1 + a2 == 2 * (b - c)")) == [("a1 + a2", "==", "2 * (b - c)")]


def test_thresholds():
    table = parse("u | t1 + a*t2 + 0.5*t3 + start(1)*t4")
    assert triples(table) == [("u", "|", f"t{i}") for i in range(1, 5)]
    assert table.label.tolist() == [None, "a", None, None]
    assert table.fixed.tolist()[2] == 0.5 and table.start.tolist()[3] == 1.0
    assert table.random.isna().all()


# --- modifiers -------------------------------------------------------------------------

def test_each_modifier():
    table = parse('f =~ 1*y1 + a*y2 + NA*y3 + start(0.5)*y4 + prior("normal(0, 1)")*y5'
                  " + -0.5*y6 + 1.5e-2*y7 + 0*y8 + .5*y9")
    fixed = table.fixed.tolist()
    assert fixed[0] == 1.0 and fixed[5:] == [-0.5, 0.015, 0.0, 0.5]
    assert all(math.isnan(v) for v in fixed[1:5])
    assert table.label.tolist() == [None, "a"] + [None] * 7
    assert table.free_forced.tolist() == [False, False, True] + [False] * 6
    assert table.start.tolist()[3] == 0.5
    assert table.prior.tolist()[4] == "normal(0, 1)"
    assert not (table == "NA").any().any()


def test_modifier_combinations():
    table = parse("""y ~ prior("normal(0,1)")*a*x1 + a2*prior('gamma(1, .5)')*x2
                     y ~ start(-1)*b*NA*x3 + c*1*x4 + prior(" student_t(3, 0, 1) ")*0.2*x5""")
    assert table.label.tolist() == ["a", "a2", "b", "c", None]
    assert table.prior.tolist() == ["normal(0,1)", "gamma(1, .5)", None, None, "student_t(3, 0, 1)"]
    assert table.start.tolist()[2] == -1.0
    assert table.free_forced.tolist() == [False, False, True, False, False]
    assert table.fixed.tolist()[3:] == [1.0, 0.2]


def test_per_group_modifiers():
    """lavaan's c(...): one entry per group, each a label, NA, a fixed value or a prior (label, fixed
    value, prior, NA); c(...)s on one term combine entry by entry."""
    table = parse('f =~ y1 + c(a, b)*y2 + c(NA, 1)*c(prior("normal(0, 1)"), label("l3"))*y3\ny ~ c(-1, .5)*1')
    plain = [None if entries is None else [tuple(None if v != v else v for v in e) for e in entries]
             for entries in table.per_group]  # NaN (no fixed value) written as None
    assert plain == [None, [("a", None, None, False), ("b", None, None, False)],
                     [(None, None, "normal(0, 1)", True), ("l3", 1.0, None, False)],
                     [(None, -1.0, None, False), (None, 0.5, None, False)]]
    assert table.label.isna().all() and table.fixed.isna().all()  # the entries say it, group by group


def test_modifiers_on_intercepts():
    table = parse("y ~ c*1 + 0*1 + NA*1")
    assert triples(table) == [("y", "~1", "")] * 3
    assert table.label.tolist() == ["c", None, None]
    assert table.fixed.tolist()[1] == 0.0 and table.free_forced.tolist() == [False, False, True]


def test_prior_keeps_comment_characters():
    table = parse('y ~ prior("normal(0, 1) # not a comment ! either")*x  # comment')
    assert table.prior.tolist() == ["normal(0, 1) # not a comment ! either"]


# --- Mplus random parameters -----------------------------------------------------------

def test_random_parameters():
    table = parse("s | y ~ x\nl2 | f =~ y2\nv | y1 ~~ y1\nPhi | f1 + f2 ~~ f1 + f2")
    assert triples(table) == [("y", "~", "x"), ("f", "=~", "y2"), ("y1", "~~", "y1"),
                              ("f1", "~~", "f1"), ("f1", "~~", "f2"), ("f2", "~~", "f2")]
    assert table.random.tolist() == ["s", "l2", "v", "Phi", "Phi", "Phi"]
    assert table.label.isna().all() and table.fixed.isna().all()


# --- level blocks ----------------------------------------------------------------------

LAVAAN_EXAMPLE = """
level: within
  fw =~ y1 + y2 + y3
  fw ~ x1 + x2 + x3
level: between
  fb =~ y1 + y2 + y3
  fb ~ w1 + w2
"""


def test_lavaan_two_level_example():
    table = parse(LAVAAN_EXAMPLE)
    assert table.block.tolist() == ["within"] * 6 + ["between"] * 5
    assert triples(table)[3] == ("fw", "~", "x1") and triples(table)[-1] == ("fb", "~", "w2")
    assert table.line.tolist() == [3] * 3 + [4] * 3 + [6] * 3 + [7] * 2


@pytest.mark.parametrize("first, second",
                         [("1", "2"), ("school", "student"), ("Within", "Between")])
def test_level_names_kept_raw(first, second):
    table = parse(f"level:{first}\ny ~ x\n  level :   {second}  # c\ny ~ 1")
    assert table.block.tolist() == [first, second]


def test_random_slope_in_two_levels():
    table = parse("level: 1\n s | y ~ x\nlevel: 2\n s ~ w; y ~ w\n s ~~ y")
    assert table.block.tolist() == ["1", "2", "2", "2"]
    assert table.random.tolist() == ["s", None, None, None]


# --- layout: comments, separators, continuation -----------------------------------------

def test_comments_semicolons_and_blank_lines():
    table = parse("# header\n! Mplus comment\n\nf =~ y1 + y2 # trailing\n\ny ~ x; z ~ x ;; w ~ x\n")
    assert triples(table) == [("f", "=~", "y1"), ("f", "=~", "y2"),
                              ("y", "~", "x"), ("z", "~", "x"), ("w", "~", "x")]
    assert table.line.tolist() == [4, 4, 6, 6, 6]


def test_continuation_lines():
    text = "f =~ y1 +\n  y2\n  + y3 # c\n\n  + y4\ny ~\n x\ny ~ a\n  *x\ng =~ y1\n# c\n+ y5"
    table = parse(text)
    assert triples(table) == [("f", "=~", f"y{i}") for i in range(1, 5)] + [
        ("y", "~", "x"), ("y", "~", "x"), ("g", "=~", "y1"), ("g", "=~", "y5")]
    assert table.label.tolist()[5] == "a"
    assert table.line.tolist() == [1] * 4 + [6, 8, 10, 10]


def test_identifiers_and_windows_newlines():
    table = parse("f.1 =~ y_1 + .y2 + Größe\r\nf.1 ~~ f.1\r\n")
    assert triples(table) == [("f.1", "=~", "y_1"), ("f.1", "=~", ".y2"), ("f.1", "=~", "Größe"),
                              ("f.1", "~~", "f.1")]


# --- errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, column, expected", [
    ("f y1 + y2", 1, 3, "=~ ~ ~~ := |"),
    ("f =~", 1, 5, "variable name"),
    ("f =~ y1\ng =~   # nothing", 2, 5, "variable name"),
    ("=~ y1", 1, 1, "variable name"),
    ("f =~ y1 +", 1, 10, "variable name"),
    ("f =~ y1 + + y2", 1, 11, "variable name"),
    ("f =~ y1 y2", 1, 9, "'+' or end of statement"),
    ("f =~ y1 & y2", 1, 9, "operator"),
    ("y ~ x\nf =~ 1.2.3*y1", 2, 6, "number"),
    ("f =~ 1e*y1", 1, 6, "number"),
    ("f =~ 2x", 1, 6, "number"),
    ('y ~ prior("normal(0,1)*x', 1, 11, 'closing "'),
    ("y ~ prior('normal(0,1)\")*x", 1, 11, "closing '"),
    ("y ~ prior(normal)*x", 1, 11, "quoted prior"),
    ('y ~ prior("  ")*x', 1, 11, "prior"),
    ('y ~ prior("n"*x', 1, 14, "')'"),
    ('y ~ prior("n") x', 1, 16, "'*'"),
    ("y ~ start(a)*x", 1, 11, "number"),
    ("d := (a + b", 1, 12, "')'"),
    ("d := a + b)", 1, 11, "end of statement"),
    ("d := exp(a", 1, 11, "')'"),
    ("d :=", 1, 5, "number, a parameter label"),
    ("a + b := c", 1, 3, "':='"),
    ("a == ", 1, 5, "number"),
    ("a == b == c", 1, 8, "end of statement"),
    ("f =~ *y1", 1, 6, "label"),
    ("level:", 1, 7, "level name"),
    ("level: 0\ny ~ x", 1, 8, "level name"),
    ("level: within between\ny ~ x", 1, 15, "end of line"),
    ("a*f =~ y", 1, 1, "modifiers go on right-hand-side terms only"),
    ("f + 1*g =~ y", 1, 5, "right-hand-side"),
    ("f =~ a*b*y1", 1, 8, "one label"),
    ("f =~ 1*2*y1", 1, 8, "one fixed value"),
    ("f =~ NA*1*y1", 1, 9, "one fixed value"),
    ("y ~ start(1)*start(2)*x", 1, 14, "one start"),
    ("y ~ 2", 1, 5, "variable name or 1"),
    ("y ~ -1", 1, 5, "variable name or 1"),
    ("f =~ 1", 1, 6, "variable name"),
    ("y ~~ 1", 1, 6, "variable name"),
    ("y ~ NA", 1, 5, "variable name"),
    ("y | x1", 1, 5, "t<digits>"),
    ("y | t1 + 2", 1, 10, "t<digits>"),
    ("1 | y ~ x", 1, 1, "random-parameter name"),
    ("s t | y ~ x", 1, 3, "'|'"),
    ("s | t | y ~ x", 1, 7, "single '|'"),
    ("s | y ~ a*x", 1, 9, "random parameters take no modifiers"),
    ("s | y ~ 0.5*x", 1, 9, "random parameters take no modifiers"),
    ('s | y ~ prior("n")*x', 1, 9, "random parameters take no modifiers"),
    ("s | y ~ 1", 1, 9, "variable name"),
    ("s | a := b", 1, 7, "=~ ~ ~~"),
    ("f =~ y\nlevel: within\ng =~ z", 1, 1, "'level:'"),
    ("level: a\nf =~ y\nlevel: a\ng =~ z", 3, 8, "once"),
    ("y ~ x\n\t= y", 2, 2, "operator"),
    ("f =~ c(a, )*y1", 1, 11, "entry of c(...)"),
    ("f =~ c(a b)*y1", 1, 10, "',' or ')' in c(...)"),
    ("f =~ c(a, b) y1", 1, 14, "'*' between c(...)"),
    ("f =~ c(a, b)*c(1)*y1", 1, 14, "with 2 entries"),
    ("f =~ c(a, b)*c(c, d)*y1", 1, 14, "one label per group"),
    ("f =~ a*c(b, c)*y1", 1, 8, "one label per group"),
    ("f =~ c(b, c)*a*y1", 1, 14, "one label per term"),
    ("s | y ~ c(a, b)*x", 1, 9, "random parameters take no modifiers"),
])
def test_errors(text, line, column, expected):
    err = error(text)
    assert (err.line, err.column) == (line, column), str(err)
    assert expected in err.expected, str(err)
    assert str(err).startswith(f"line {line}, column {column}: found ")
    assert f"; expected {err.expected}" in str(err)


def test_error_message_shows_line_and_caret():
    err = error("f =~ y1\n  g =~ y1 & y2")
    assert str(err).splitlines() == [
        "line 2, column 11: found '&'; "
        "expected a variable name, a number, an operator or a comment",
        "    g =~ y1 & y2",
        "            ^",
    ]
    assert isinstance(err, ValueError)
    assert pickle.loads(pickle.dumps(err)).args == err.args


@pytest.mark.parametrize(
    "text", ["", "   \n\n", "# only a comment\n! and another", ";;", "level: within"])
def test_no_statements(text):
    err = error(text)
    assert "the model has no statements" in str(err)
    assert (err.line, err.column) == (1, 1)


def test_long_lines_are_abbreviated_in_messages():
    err = error("f =~ " + " + ".join(f"y{i}" for i in range(500)) + " & y")
    assert err.column > 2000
    shown, caret = str(err).splitlines()[1:]
    assert len(shown) < 140 and caret.index("^") == shown.index("&")


def test_pathological_inputs_raise_model_syntax_error():
    for text in ["d := " + "(" * 5000 + "a", "(" * 5000, "x" * 100_000, "level: " + "9" * 5000,
                 "+" * 1000, "\x00", "\ud800", "'", '"', "|", "~", "level", "level:\n:"]:
        with pytest.raises(ModelSyntaxError):
            parse(text)
    assert len(parse("d := " + "-" * 5000 + "a")) == 1


def test_non_string_input_is_a_type_error():
    with pytest.raises(TypeError):
        parse(None)


# --- fuzzing ---------------------------------------------------------------------------

PIECES = ["f", "y1", "x2", "s", "Phi", "t1", "a.b", "_z", "level", "level:", ":", "within", "=~",
          "~", "~~", ":=", "==", "<", ">", "|", "+", "-", "*", "/", "^", "(", ")", ",", ";", "1",
          "0", "2", "-0.5", "1e-2", "1e", "1.2.3", ".5", "NA", "start", "prior", "start(1)",
          'prior("normal(0, 1)")', '"', "'", "#", "!", "\n", "\n", " ", " ", "\t", "é", "∀",
          "\x00", "\u2028", "\r\n", "=", "&", "exp"]
VALID = ['f =~ y1 + a*y2 + prior("normal(0,1)")*y3', "y ~ 1 + x1 + s*x2", "a + b ~~ a + b",
         "s | y ~ x", "Phi | f1 + f2 ~~ f1 + f2", "u | t1 + t2", "ab := a*exp(b)", "a == b + 1",
         "level: within", "level: between", "y ~ NA*x + start(0.5)*z"]


def test_fuzz_only_model_syntax_errors():
    rng = random.Random(20240601)
    parsed = 0
    for i in range(2000):
        if i % 2:
            pieces = rng.choices(PIECES, k=rng.randint(0, 25))
            text = "".join(piece + rng.choice(["", " "]) for piece in pieces)
        else:
            text = list("\n".join(rng.sample(VALID, rng.randint(1, 5))))
            for _ in range(rng.randint(0, 3)):
                pos = rng.randrange(len(text) + 1)
                if rng.random() < 0.5 and pos < len(text):
                    del text[pos]
                else:
                    text.insert(pos, rng.choice(PIECES + [chr(rng.randrange(1, 0x2FFFF))]))
            text = "".join(text)
        try:
            table = parse(text)
        except ModelSyntaxError as err:
            lines = text.split("\n")
            assert 1 <= err.line <= len(lines) and 1 <= err.column <= len(lines[err.line - 1]) + 1
            assert err.expected
            assert str(err).startswith(f"line {err.line}, column {err.column}: found ")
        else:
            assert isinstance(table, pd.DataFrame) and list(table.columns) == COLUMNS
            assert len(table) > 0
            parsed += 1
    assert parsed > 100  # the mutated valid models keep the parser's success path exercised
