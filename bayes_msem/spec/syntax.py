"""Parser for lavaan model syntax with Mplus-style random-parameter extensions.

``parse(text)`` returns the user parameter table (one row per statement element,
in the order written).  The grammar, informally::

    model      := (level_line | statement)*       one per line, or separated by ';'
    level_line := 'level' ':' (NAME | POSITIVE_INTEGER)
    statement  := lhs_list ('=~' | '~' | '~~') term ('+' term)*
                | NAME '|' threshold ('+' threshold)*            thresholds
                | NAME '|' lhs_list ('=~' | '~' | '~~') rhs      random parameter
                | NAME ':=' expr                                 defined parameter
                | expr ('==' | '<' | '>') expr                   constraint
    lhs_list   := NAME ('+' NAME)*
    term       := (modifier '*' | ['-'] NUMBER '?')* (NAME | '1')   '1' only after '~'; NUMBER '?': start value
    threshold  := (modifier '*')* 't' DIGITS
    modifier   := entry | 'start' '(' ['-'] NUMBER ')'
                | 'c' '(' entry (',' entry)* ')'                      one entry per group, in order
    entry      := NAME (label) | 'NA' (free) | ['-'] NUMBER (fixed) | 'prior' '(' STRING ')'
                | ('label' | 'equal') '(' STRING ')'                 label (lavaan's long forms)
    expr       := operand (('+' | '-' | '*' | '/' | '^') operand)*
    operand    := ('+' | '-')* (NUMBER | NAME ['(' [expr (',' expr)*] ')'] | '(' expr ')')

Random-parameter statements (``s | y ~ x``, ``Phi | f1 + f2 ~~ f1 + f2``) take no
modifiers.  ``#`` and ``!`` start comments.  A statement continues on the next line
when its line ends with an operator, ``+``, ``*``, ``(`` or ``,``, or when the next
non-empty line starts with ``+`` or ``*``.  NAME is letters, digits, ``_`` and ``.``,
not starting with a digit; ``NA`` is reserved.
"""

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NoReturn

import pandas as pd

from ..errors import ArgumentTypeError, Error

__all__ = ["ModelSyntaxError", "parse"]

#: Columns of the table returned by :func:`parse`, with their dtypes.
_COLUMNS: dict[str, str] = {
    "lhs": "object", "op": "object", "rhs": "object", "block": "object",
    "label": "object", "fixed": "float64", "start": "float64", "prior": "object",
    "random": "object", "line": "int64", "free_forced": "bool", "per_group": "object",
}

_TOKEN = re.compile(
    r"(?P<space>[^\S\n]+)|(?P<newline>\n)|(?P<comment>[#!][^\n]*)"
    r"|(?P<string>\"[^\"\n]*\"|'[^'\n]*')"
    r"|(?P<number>(?:[0-9]|\.[0-9])(?:[eE][+-][0-9]|[\w.])*)"
    r"|(?P<name>(?:[^\W\d]|\.)[\w.]*)"
    r"|(?P<sep>;)|(?P<op>=~|~~|:=|==|[~<>|:+\-*/^(),?])"
)
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_POSITIVE_INTEGER = re.compile(r"0*[1-9][0-9]*", re.ASCII)
_THRESHOLD = re.compile(r"t[0-9]+", re.ASCII)
_RELATIONS = frozenset({"=~", "~", "~~"})
_STATEMENT_OPS = _RELATIONS | {":=", "==", "<", ">", "|"}
_CONTINUES = _STATEMENT_OPS | {"+", "-", "*", "/", "^", "(", ",", "?"}
_ARITHMETIC = frozenset({"+", "-", "*", "/", "^"})
_ANY_OP = "one of =~ ~ ~~ := | == < >"
_TARGETS = {
    "variable": "a variable name",
    "variable or 1": "a variable name or 1 (an intercept)",
    "threshold": "a threshold name of the form t<digits> (t1, t2, ...)",
}
_NAME = re.compile(r"(?:[^\W\d]|\.)[\w.]*")
_LABEL_FORMS = ("label", "equal")
_MAX_DEPTH = 50
_INTERCEPT = "1"


class ModelSyntaxError(Error, ValueError):
    """Raised for malformed model syntax.

    The message reads ``line L, column C: found <what>; expected <what>`` followed by
    the offending line and a caret under column C (both 1-based).
    """

    line: int
    column: int
    found: str
    expected: str

    def __init__(
        self, line: int, column: int, found: str, expected: str, source: str = ""
    ) -> None:
        self.line, self.column, self.found = line, column, found
        self.expected, self.source = expected, source
        first = max(0, column - 60)  # show at most 60 characters either side of the caret
        head = "..." if first else ""
        tail = "..." if column + 60 < len(source) else ""
        caret = "".join(c if c == "\t" else " " for c in head + source[first:column - 1])
        super().__init__(
            f"line {line}, column {column}: found {found}; expected {expected}\n"
            f"  {head}{source[first:column + 60]}{tail}\n  {caret}^"
        )

    def __reduce__(self) -> tuple[type, tuple[int, int, str, str, str]]:
        return type(self), (self.line, self.column, self.found, self.expected, self.source)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name, number, string, op, sep, newline, eof, or end (a statement's end)
    text: str
    line: int
    col: int
    pos: int  # offset in the source text

    @property
    def end(self) -> int:
        return self.pos + len(self.text)


@dataclass(slots=True)
class _Modifiers:
    label: str | None = None
    fixed: float = math.nan
    start: float = math.nan
    prior: str | None = None
    free_forced: bool = False
    seen: set[str] = field(default_factory=set)
    per_group: list["_Modifiers"] | None = None  # lavaan's c(...): one entry per group

    def entry(self) -> tuple[str | None, float, str | None, bool]:
        """The modifiers one group's entry of ``c(...)`` sets: label, fixed value, prior, NA."""
        return self.label, self.fixed, self.prior, self.free_forced


def _is(tok: _Token, *texts: str) -> bool:
    return tok.kind == "op" and tok.text in texts


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return tok.text
    return f"the string {_shorten(tok.text)}" if tok.kind == "string" else repr(_shorten(tok.text))


def _where(tok: _Token) -> str:
    return f"the {tok.text!r} at line {tok.line}, column {tok.col}"


def _fail(lines: list[str], line: int, col: int, found: str, expected: str) -> NoReturn:
    source = lines[line - 1].rstrip("\r") if line <= len(lines) else ""
    raise ModelSyntaxError(line, col, found, expected, source)


def _tokenize(text: str, lines: list[str]) -> list[_Token]:
    """Split the text into tokens; comments and spaces are dropped, newlines kept."""
    tokens: list[_Token] = []
    line, line_start, pos = 1, 0, 0
    while pos < len(text):
        col = pos - line_start + 1
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            if char in "\"'":
                _fail(lines, line, col, f"an unterminated string {char}...",
                      f"a closing {char} on the same line")
            _fail(lines, line, col, repr(char),
                  "a variable name, a number, an operator or a comment")
        kind, lexeme = match.lastgroup or "", match.group()
        if kind == "number" and not (_NUMBER.fullmatch(lexeme) and math.isfinite(float(lexeme))):
            _fail(lines, line, col, f"the malformed number {_shorten(lexeme)!r}",
                  "a number such as 1, -0.5 or 1.5e-2 (names cannot start with a digit)")
        if kind not in ("space", "comment"):
            tokens.append(_Token(kind, lexeme, line, col, pos))
        if kind == "newline":
            line, line_start = line + 1, match.end()
        pos = match.end()
    tokens.append(_Token("eof", "", line, pos - line_start + 1, pos))
    return tokens


def _statements(tokens: list[_Token]) -> Iterator[tuple[list[_Token], _Token]]:
    """Group tokens into statements; yields each with the token that ends it."""
    current: list[_Token] = []
    for i, tok in enumerate(tokens):
        if tok.kind not in ("newline", "sep", "eof"):
            current.append(tok)
            continue
        if not current:
            continue
        if tok.kind == "newline":
            j = i + 1
            while tokens[j].kind == "newline":
                j += 1
            if _is(current[-1], *_CONTINUES) or _is(tokens[j], "+", "*"):
                continue
        last = current[-1]
        if tok.kind != "sep":
            what = "end of line" if tok.kind == "newline" else "end of input"
            tok = _Token("end", what, last.line, last.col + len(last.text), last.end)
        yield current, tok
        current = []


def _row(lhs: str, op: str, rhs: str, mods: _Modifiers | None = None,
         random: str | None = None) -> dict[str, object]:
    mods = mods or _Modifiers()
    return {"lhs": lhs, "op": op, "rhs": rhs, "label": mods.label, "fixed": mods.fixed,
            "start": mods.start, "prior": mods.prior, "random": random,
            "free_forced": mods.free_forced,
            "per_group": None if mods.per_group is None else tuple(m.entry() for m in mods.per_group)}


class _Statement:
    """Recursive-descent parser for the tokens of one statement."""

    def __init__(self, tokens: list[_Token], end: _Token, text: str, lines: list[str]) -> None:
        self.tokens, self.end, self.text, self.lines = tokens, end, text, lines
        self.index = 0

    def peek(self, ahead: int = 0) -> _Token:
        i = self.index + ahead
        return self.tokens[i] if i < len(self.tokens) else self.end

    def take(self) -> _Token:
        tok = self.peek()
        self.index += 1
        return tok

    def fail(self, tok: _Token, expected: str, found: str | None = None) -> NoReturn:
        _fail(self.lines, tok.line, tok.col, found or _describe(tok), expected)

    def expect(self, op: str, expected: str) -> _Token:
        tok = self.take()
        if not _is(tok, op):
            self.fail(tok, expected)
        return tok

    def done(self, expected: str) -> None:
        if self.index < len(self.tokens):
            self.fail(self.peek(), expected)

    def is_level(self) -> bool:
        first = self.peek()
        return first.kind == "name" and first.text.lower() == "level" and _is(self.peek(1), ":")

    def level(self) -> _Token:
        """Parse ``level: NAME``; returns the name token."""
        self.index += 2
        name = self.take()
        if not (name.kind == "name" and name.text != "NA"
                or name.kind == "number" and _POSITIVE_INTEGER.fullmatch(name.text)):
            self.fail(name, "a level name (an identifier such as within, or a positive integer)")
        self.done("end of line after the level name")
        return name

    def statement(self) -> list[dict[str, object]]:
        """Parse any non-level statement into parameter-table rows."""
        op = next((t.text for t in self.tokens if _is(t, *_STATEMENT_OPS)), None)
        if op == ":=":
            return self.defined()
        if op in ("==", "<", ">"):
            return self.constraint()
        if op == "|":
            return self.bar()
        return self.relation(None)

    def variable(self) -> str:
        """A left-hand-side variable name (no modifiers allowed)."""
        tok, after = self.take(), self.peek()
        if _is(after, "*") or tok.text in ("start", "prior") and _is(after, "("):
            self.fail(tok, "a variable name (modifiers go on right-hand-side terms only)",
                      found=f"the modifier {_describe(tok)} on the left-hand side")
        if tok.kind != "name" or tok.text == "NA":
            self.fail(tok, "a variable name")
        return tok.text

    def relation(self, random: str | None) -> list[dict[str, object]]:
        """``lhs_list (=~ | ~ | ~~) terms``, expanded to lhs x rhs (unordered pairs for ~~)."""
        lhs = [self.variable()]
        while _is(self.peek(), "+"):
            self.take()
            lhs.append(self.variable())
        op = self.take()
        if not _is(op, *_RELATIONS):
            self.fail(op, "one of =~ ~ ~~ (after NAME |)" if random else _ANY_OP)
        target = "variable or 1" if op.text == "~" and random is None else "variable"
        terms = self.terms(target, random)
        rows, pairs = [], set()
        for left in lhs:
            for right, mods in terms:
                if op.text == "~~":
                    pair = (min(left, right), max(left, right))
                    if pair in pairs:
                        continue
                    pairs.add(pair)
                if right == _INTERCEPT:
                    rows.append(_row(left, "~1", "", mods))
                else:
                    rows.append(_row(left, op.text, right, mods, random))
        return rows

    def bar(self) -> list[dict[str, object]]:
        """Thresholds ``y | t1 + t2`` or a random parameter ``NAME | relation``."""
        bars = [t for t in self.tokens if _is(t, "|")]
        if len(bars) > 1:
            self.fail(bars[1], "a single '|' per statement", found="a second '|' (nested '|')")
        after = self.tokens[self.tokens.index(bars[0]) + 1:]
        if any(_is(t, *_STATEMENT_OPS) for t in after):
            name = self.take()
            if name.kind != "name" or name.text == "NA":
                self.fail(name, "a random-parameter name (an identifier) before '|'")
            self.expect("|", "'|' after the random-parameter name")
            return self.relation(name.text)
        lhs = self.variable()
        self.expect("|", "'|' after the variable name (thresholds read y | t1 + t2)")
        return [_row(lhs, "|", name, mods) for name, mods in self.terms("threshold", None)]

    def terms(self, target: str, random: str | None) -> list[tuple[str, _Modifiers]]:
        terms = [self.term(target, random)]
        while _is(self.peek(), "+"):
            self.take()
            terms.append(self.term(target, random))
        self.done("'+' or end of statement")
        return terms

    def term(self, target: str, random: str | None) -> tuple[str, _Modifiers]:
        """``(modifier *)* target``; returns the name ('1' for an intercept) and modifiers."""
        mods = _Modifiers()
        while True:
            tok, after = self.peek(), self.peek(1)
            if tok.kind == "name" and _is(after, "*"):
                slot = "fixed value or NA" if tok.text == "NA" else "label"
                self.modifier(tok, random, mods, slot)
                self.index += 2
                if tok.text == "NA":
                    mods.free_forced = True
                else:
                    mods.label = tok.text
            elif tok.text == "c" and tok.kind == "name" and _is(after, "("):
                self.per_group(tok, random, mods)
            elif tok.text in ("start", "prior", *_LABEL_FORMS) and tok.kind == "name" and _is(after, "("):
                self.modifier(tok, random, mods, "label" if tok.text in _LABEL_FORMS else tok.text)
                self.index += 2
                if tok.text == "start":
                    mods.start = self.number()
                elif tok.text == "prior":
                    mods.prior = self.prior()
                else:
                    mods.label = self.quoted_label(tok.text)
                self.expect(")", f"')' to close {tok.text}(")
                self.expect("*", f"'*' between {tok.text}(...) and the variable name")
            elif tok.kind == "number" or _is(tok, "-"):
                value = self.number()
                if _is(self.peek(), "*"):
                    self.modifier(tok, random, mods, "fixed value or NA")
                    self.index += 1
                    mods.fixed = value
                elif _is(self.peek(), "?"):  # lavaan's 0.5?x: a start value, the parameter free
                    self.modifier(tok, random, mods, "start")
                    self.index += 1
                    mods.start = value
                elif target == "variable or 1" and tok.kind == "number" and value == 1:
                    return _INTERCEPT, mods
                else:
                    self.fail(tok, _TARGETS[target])
            elif tok.kind == "name" and tok.text != "NA":
                self.index += 1
                if target == "threshold" and not _THRESHOLD.fullmatch(tok.text):
                    self.fail(tok, _TARGETS[target])
                return tok.text, mods
            elif _is(tok, "*"):
                self.fail(tok, "a label or a value before '*'", found="'*' with nothing before it")
            else:
                self.fail(tok, f"{_TARGETS[target]} or a modifier")

    def modifier(self, tok: _Token, random: str | None, mods: _Modifiers, slot: str) -> None:
        """Check that a modifier may appear here and is the first of its kind on the term."""
        if random is not None:
            self.fail(tok, "a variable name (random parameters take no modifiers)",
                      found=f"the modifier {_describe(tok)}")
        if slot in mods.seen or f"{slot} in c(...)" in mods.seen:
            self.fail(tok, f"at most one {slot} per term",
                      found=f"{_describe(tok)}, a second {slot} on this term")
        mods.seen.add(slot)

    def per_group(self, tok: _Token, random: str | None, mods: _Modifiers) -> None:
        """lavaan's ``c(e1, e2, ...)*``: entry k modifies the parameter in the k-th group (a label,
        NA, a fixed value or a prior); several ``c(...)`` on one term combine entry by entry."""
        if random is not None:
            self.fail(tok, "a variable name (random parameters take no modifiers)", found=f"the modifier {_describe(tok)}")
        self.index += 2
        entries: list[_Modifiers] = []
        while True:
            entries.append(self.entry())
            sep = self.take()
            if _is(sep, ")"):
                break
            if not _is(sep, ","):
                self.fail(sep, "',' or ')' in c(...)")
        self.expect("*", "'*' between c(...) and the variable name")
        if mods.per_group is None:
            mods.per_group = [_Modifiers() for _ in entries]
        if len(entries) != len(mods.per_group):
            self.fail(tok, f"c(...) with {len(mods.per_group)} entries, as in the term's first c(...) (one per group)",
                      found=f"c(...) with {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
        for merged, entry in zip(mods.per_group, entries):
            for slot in entry.seen:
                if slot in merged.seen or slot in mods.seen:
                    self.fail(tok, f"at most one {slot} per group and term", found=f"a second {slot} in c(...)")
            merged.seen |= entry.seen
            merged.label = merged.label if entry.label is None else entry.label
            merged.fixed = merged.fixed if math.isnan(entry.fixed) else entry.fixed
            merged.prior = merged.prior if entry.prior is None else entry.prior
            merged.free_forced |= entry.free_forced
        mods.seen |= {f"{slot} in c(...)" for slot in set().union(*(m.seen for m in entries))}

    def entry(self) -> _Modifiers:
        """One entry of ``c(...)``: NAME (label), NA, a number (fixed), prior("..."), label("a") or equal("a")."""
        entry, tok = _Modifiers(), self.peek()
        if tok.kind == "name" and tok.text in ("prior", *_LABEL_FORMS) and _is(self.peek(1), "("):
            self.index += 2
            if tok.text == "prior":
                entry.prior, slot = self.prior(), "prior"
            else:
                entry.label, slot = self.quoted_label(tok.text), "label"
            self.expect(")", f"')' to close {tok.text}(")
        elif tok.kind == "name":
            self.index += 1
            entry.free_forced, slot = tok.text == "NA", "fixed value or NA" if tok.text == "NA" else "label"
            entry.label = None if tok.text == "NA" else tok.text
        elif tok.kind == "number" or _is(tok, "-"):
            entry.fixed, slot = self.number(), "fixed value or NA"
        else:
            self.fail(tok, 'a label, NA, a number or prior("...") as an entry of c(...)')
        entry.seen.add(slot)
        return entry

    def number(self) -> float:
        negative = _is(self.peek(), "-")
        if negative:
            self.index += 1
        tok = self.take()
        if tok.kind != "number":
            self.fail(tok, "a number")
        return -float(tok.text) if negative else float(tok.text)

    def quoted_label(self, form: str) -> str:
        """The label inside ``label("a")`` or ``equal("a")``: a quoted name."""
        tok = self.take()
        text = tok.text[1:-1].strip() if tok.kind == "string" else ""
        if not _NAME.fullmatch(text) or text == "NA":
            self.fail(tok, f'a quoted label such as {form}("a") (letters, digits, _ and ., not starting with a digit)')
        return text

    def prior(self) -> str:
        tok = self.take()
        if tok.kind != "string":
            self.fail(tok, 'a quoted prior such as "normal(0, 1)"')
        text = tok.text[1:-1].strip()
        if not text:
            self.fail(tok, 'a prior such as "normal(0, 1)"', found="an empty prior string")
        return text

    def defined(self) -> list[dict[str, object]]:
        """``NAME := expr``."""
        name = self.take()
        if name.kind != "name" or name.text == "NA":
            self.fail(name, "a parameter name before ':='")
        self.expect(":=", "':=' after the name of a defined parameter")
        expression = self.expression_text("an arithmetic operator or end of statement")
        return [_row(name.text, ":=", expression)]

    def constraint(self) -> list[dict[str, object]]:
        """``expr (== | < | >) expr``."""
        left = self.expression_text(None)
        op = self.take()
        if not _is(op, "==", "<", ">"):
            self.fail(op, "an arithmetic operator or one of == < >")
        right = self.expression_text("an arithmetic operator or end of statement")
        return [_row(left, op.text, right)]

    def expression_text(self, then: str | None) -> str:
        """Parse an expression, then the end of the statement unless ``then`` is None."""
        start = self.index
        self.expression(0)
        if then is not None:
            self.done(then)
        tokens = self.tokens[start:self.index]
        text = tokens[0].text
        for prev, tok in zip(tokens, tokens[1:]):
            gap = self.text[prev.end:tok.pos]
            text += (" " if "\n" in gap else gap) + tok.text
        return text

    def expression(self, depth: int) -> None:
        if depth > _MAX_DEPTH:
            self.fail(self.peek(), f"at most {_MAX_DEPTH} nested parentheses",
                      found="parentheses nested too deeply")
        self.operand(depth)
        while self.peek().kind == "op" and self.peek().text in _ARITHMETIC:
            self.index += 1
            self.operand(depth)

    def operand(self, depth: int) -> None:
        while _is(self.peek(), "+", "-"):
            self.index += 1
        tok = self.take()
        if tok.kind == "number":
            return
        if _is(tok, "("):
            self.expression(depth + 1)
            self.expect(")", f"')' to close {_where(tok)}")
        elif tok.kind == "name" and tok.text != "NA":
            if _is(self.peek(), "("):
                opening = self.take()
                if not _is(self.peek(), ")"):
                    self.expression(depth + 1)
                    while _is(self.peek(), ","):
                        self.index += 1
                        self.expression(depth + 1)
                self.expect(")", f"',' or ')' to close {_where(opening)}")
        else:
            self.fail(tok, "a number, a parameter label or '('")


def parse(text: str) -> pd.DataFrame:
    """Parse lavaan/Mplus-style model syntax into the user parameter table (see _COLUMNS)."""
    if not isinstance(text, str):
        raise ArgumentTypeError(f"model syntax must be a str, not {type(text).__name__}")
    lines = text.split("\n")
    rows: list[dict[str, object]] = []
    block: str | None = None
    levels: dict[str, int] = {}
    outside: _Token | None = None  # first statement before any level line
    for tokens, end in _statements(_tokenize(text, lines)):
        statement = _Statement(tokens, end, text, lines)
        if statement.is_level():
            name = statement.level()
            if outside is not None:
                statement.fail(outside, "a 'level:' line before the first statement",
                               found="a statement outside a level block")
            if name.text in levels:
                again = f"level {name.text!r} again (first on line {levels[name.text]})"
                statement.fail(name, "each level name once", found=again)
            block, levels[name.text] = name.text, name.line
            continue
        new_rows = statement.statement()
        if block is None and outside is None:
            outside = tokens[0]
        for row in new_rows:
            row["block"], row["line"] = block, tokens[0].line
        rows.extend(new_rows)
    if not rows:
        _fail(lines, 1, 1, "no statements", "at least one statement (the model has no statements)")
    return pd.DataFrame({name: pd.Series([row[name] for row in rows], dtype=dtype)
                         for name, dtype in _COLUMNS.items()})
