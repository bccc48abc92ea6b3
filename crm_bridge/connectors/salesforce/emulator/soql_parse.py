"""SOQL syntax: tokens, a recursive-descent parser and the syntax tree (no schema knowledge).

Why separate from evaluation: the parser's only job is to reproduce a real org's
``MALFORMED_QUERY`` answers (with ``ERROR at Row:R:Column:C``), including its refusal of
``a AND b OR c`` without parentheses; checking fields and running queries lives in ``soql.py``.
Doc: https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select.htm
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from crm_bridge.connectors.salesforce.emulator.errors import ApiError
from crm_bridge.connectors.salesforce.emulator.values import format_datetime, parse_datetime

__all__ = ["BoolOp", "Comparison", "Cond", "Errors", "Literal", "Parsed", "parse", "tokenize"]


# ------------------------------------------------------------------------------------ tokens
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<string>'(?:[^'\\]|\\.)*')
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<op><=|>=|!=|<>|=|<|>)
    |(?P<punct>[(),])
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::\d+)?)
    """,
    re.VERBOSE,
)


@dataclass
class Tok:
    """One token with its offset in the query text (for Row/Column error messages)."""

    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        """Keyword comparison is case-insensitive."""
        return self.text.upper()


class Errors:
    """Builds error messages pointing at a row and column, as a real org does."""

    def __init__(self, text: str) -> None:
        self.text = text

    def at(self, pos: int, code: str, message: str) -> ApiError:
        before = self.text[:pos]
        row = before.count("\n") + 1
        col = pos - (before.rfind("\n") + 1) + 1
        line = self.text.splitlines()[row - 1] if self.text.strip() else ""
        return ApiError(
            400, code, f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}"
        )

    def malformed(self, tok: Tok | None) -> ApiError:
        if tok is None:
            return ApiError(400, "MALFORMED_QUERY", "unexpected token: <EOF>")
        return self.at(tok.pos, "MALFORMED_QUERY", f"unexpected token: {tok.text}")


def tokenize(text: str) -> list[Tok]:
    """Split a query into tokens; anything unrecognised is a MALFORMED_QUERY."""
    out: list[Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise Errors(text).at(pos, "MALFORMED_QUERY", f"unexpected token: {text[pos]}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(Tok(kind, m.group(), pos))
        pos = m.end()
    return out


# ------------------------------------------------------------------------------------ AST
@dataclass
class Literal:
    """A value on the right of a comparison."""

    kind: str  # string number datetime date bool null dateliteral
    value: Any
    pos: int


@dataclass
class Comparison:
    """``field op value`` (``op`` may be IN / NOT IN with a list, or LIKE)."""

    path: list[str]
    path_pos: int
    op: str
    values: list[Literal]


@dataclass
class BoolOp:
    """AND / OR over sub-conditions, or NOT over one."""

    op: str
    items: list[Cond]


Cond = Comparison | BoolOp


@dataclass
class Parsed:
    """The syntax of a query, not yet checked against a schema."""

    fields: list[tuple[list[str], int]]
    count: bool
    object: str
    object_pos: int
    where: Cond | None = None
    order: list[tuple[list[str], int, bool, bool | None]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0


class _Parser:
    _CLAUSE_ENDS = frozenset({"WHERE", "ORDER", "LIMIT", "OFFSET", "GROUP", "FOR", "WITH"})

    def __init__(self, text: str) -> None:
        self.text = text
        self.err = Errors(text)
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise self.err.malformed(None)
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "ident" and tok.upper == word:
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.err.malformed(self.peek())

    def expect_punct(self, ch: str) -> Tok:
        tok = self.next()
        if tok.text != ch:
            raise self.err.malformed(tok)
        return tok

    def parse(self) -> Parsed:
        self.expect_keyword("SELECT")
        fields: list[tuple[list[str], int]] = []
        count = False
        while True:
            tok = self.next()
            if tok.kind != "ident" or tok.upper in ("FROM",):
                raise self.err.malformed(tok)
            nxt = self.peek()
            if tok.upper == "COUNT" and nxt is not None and nxt.text == "(":
                self.next()
                self.expect_punct(")")
                count = True
            else:
                fields.append((tok.text.split("."), tok.pos))
            if not (self.peek() is not None and self.peek().text == ","):  # type: ignore[union-attr]
                break
            self.next()
        if count and fields:
            raise self.err.at(
                fields[0][1], "MALFORMED_QUERY", "COUNT() cannot be combined with other fields"
            )
        self.expect_keyword("FROM")
        obj = self.next()
        if obj.kind != "ident" or "." in obj.text:
            raise self.err.malformed(obj)
        parsed = Parsed(fields, count, obj.text, obj.pos)
        if self.keyword("WHERE"):
            parsed.where = self.parse_or()
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            while True:
                tok = self.next()
                if tok.kind != "ident":
                    raise self.err.malformed(tok)
                desc = False
                if self.keyword("DESC"):
                    desc = True
                else:
                    self.keyword("ASC")
                nulls: bool | None = None
                if self.keyword("NULLS"):
                    if self.keyword("FIRST"):
                        nulls = True
                    else:
                        self.expect_keyword("LAST")
                        nulls = False
                parsed.order.append((tok.text.split("."), tok.pos, desc, nulls))
                if not (self.peek() is not None and self.peek().text == ","):  # type: ignore[union-attr]
                    break
                self.next()
        if self.keyword("LIMIT"):
            parsed.limit = self.integer()
        if self.keyword("OFFSET"):
            parsed.offset = self.integer()
            if parsed.offset > 2000:
                raise ApiError(
                    400, "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"
                )
        rest = self.peek()
        if rest is not None:
            raise self.err.malformed(rest)
        return parsed

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "number" or "." in tok.text or tok.text.startswith("-"):
            raise self.err.malformed(tok)
        return int(tok.text)

    def parse_or(self) -> Cond:
        return self._parse_chain()

    def _parse_chain(self) -> Cond:
        first = self.parse_not()
        items = [first]
        op: str | None = None
        while True:
            tok = self.peek()
            if tok is None or tok.kind != "ident" or tok.upper not in ("AND", "OR"):
                break
            if op is not None and tok.upper != op:
                # A real org refuses "a AND b OR c": the precedence must be spelled out.
                raise self.err.malformed(tok)
            op = tok.upper
            self.next()
            items.append(self.parse_not())
        if op is None:
            return first
        return BoolOp(op, items)

    def parse_not(self) -> Cond:
        if self.keyword("NOT"):
            return BoolOp("NOT", [self.parse_not()])
        tok = self.peek()
        if tok is not None and tok.text == "(":
            self.next()
            inner = self._parse_chain()
            self.expect_punct(")")
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Comparison:
        ftok = self.next()
        if ftok.kind != "ident" or ftok.upper in ("AND", "OR", "NOT"):
            raise self.err.malformed(ftok)
        path = ftok.text.split(".")
        op_tok = self.next()
        if op_tok.kind == "op":
            op = "!=" if op_tok.text == "<>" else op_tok.text
            return Comparison(path, ftok.pos, op, [self.literal()])
        word = op_tok.upper if op_tok.kind == "ident" else ""
        if word == "LIKE":
            return Comparison(path, ftok.pos, "LIKE", [self.literal()])
        if word == "NOT":
            self.expect_keyword("IN")
            return Comparison(path, ftok.pos, "NOT IN", self.literal_list())
        if word == "IN":
            return Comparison(path, ftok.pos, "IN", self.literal_list())
        raise self.err.malformed(op_tok)

    def literal_list(self) -> list[Literal]:
        self.expect_punct("(")
        nxt = self.peek()
        if nxt is not None and nxt.kind == "ident" and nxt.upper == "SELECT":
            raise self.err.at(
                nxt.pos,
                "MALFORMED_QUERY",
                "semi-join sub-selects are not supported by the emulator",
            )
        values = [self.literal()]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.next()
            values.append(self.literal())
        self.expect_punct(")")
        return values

    def literal(self) -> Literal:
        tok = self.next()
        if tok.kind == "string":
            return Literal("string", _unescape(tok.text[1:-1]), tok.pos)
        if tok.kind == "number":
            return Literal("number", float(tok.text), tok.pos)
        if tok.kind == "datetime":
            return Literal("datetime", format_datetime(parse_datetime(tok.text)), tok.pos)
        if tok.kind == "date":
            return Literal("date", tok.text, tok.pos)
        if tok.kind == "ident":
            word = tok.upper
            if word in ("TRUE", "FALSE"):
                return Literal("bool", word == "TRUE", tok.pos)
            if word == "NULL":
                return Literal("null", None, tok.pos)
            name, _, n = word.partition(":")
            if name in _DATE_LITERALS and bool(n) == (name not in _FIXED_DATE_LITERALS):
                return Literal("dateliteral", (name, int(n or 0)), tok.pos)
        raise self.err.malformed(tok)


_DATE_LITERALS = {"TODAY", "YESTERDAY", "TOMORROW", "LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"}
_FIXED_DATE_LITERALS = {"TODAY", "YESTERDAY", "TOMORROW"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            # \% and \_ keep their backslash: they only mean something inside LIKE patterns.
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse(text: str) -> Parsed:
    """Parse SOQL text (syntax only)."""
    if not text or not text.strip():
        raise ApiError(400, "MALFORMED_QUERY", "unexpected token: <EOF>")
    return _Parser(text).parse()
