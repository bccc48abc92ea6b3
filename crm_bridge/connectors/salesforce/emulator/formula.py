"""A small subset of the Salesforce formula language, for validation rules.

Why: crm-bridge installs validation rules such as "a Closed Lost opportunity needs a loss
reason" (``AND(ISPICKVAL(StageName,'Closed Lost'), ISBLANK(TEXT(Win_Loss_Reason__c)))``).  The
emulator must both *enforce* them on writes and *reject* formulas a real org would reject -- most
notably a picklist field used outside ISPICKVAL/TEXT/ISCHANGED/PRIORVALUE/ISBLANK.
Doc: https://help.salesforce.com/s/articleView?id=sf.customize_functions.htm
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crm_bridge.connectors.salesforce.emulator.schema import SObjectType

__all__ = ["Formula", "FormulaError", "compile_formula"]

Record = dict[str, Any]
Env = tuple[Record, Record | None]  # (record as it would be saved, record before the write)
Fn = Callable[[Env], Any]


class FormulaError(ValueError):
    """The formula does not compile (unknown field, bad syntax, wrong function use)."""


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>&&|\|\||==|!=|<>|<=|>=|[=<>+\-*/&!(),])|(?P<name>[A-Za-z_$][A-Za-z0-9_.$]*))"
)
_PICKLIST_OK = frozenset({"ISPICKVAL", "TEXT", "ISCHANGED", "PRIORVALUE", "ISBLANK", "ISNULL"})


@dataclass
class Formula:
    """A compiled formula: call it with (new record, old record or None)."""

    source: str
    fn: Fn

    def __call__(self, new: Record, old: Record | None) -> Any:
        return self.fn((new, old))


def compile_formula(text: str, obj: SObjectType) -> Formula:
    """Compile ``text`` against ``obj``'s fields; raises :class:`FormulaError`."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FormulaError(f"Syntax error at character {pos + 1}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    parser = _FormulaParser(tokens, obj)
    fn = parser.expr()
    if parser.i != len(tokens):
        raise FormulaError(f"Syntax error. Extra {tokens[parser.i][1]}")
    return Formula(text, fn)


def _blank(v: Any) -> bool:
    return v is None or v == ""


class _FormulaParser:
    def __init__(self, tokens: list[tuple[str, str]], obj: SObjectType) -> None:
        self.toks = tokens
        self.i = 0
        self.obj = obj
        self.context: list[str] = []

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise FormulaError(
                "Syntax error. Missing ')'"
                if expected == ")"
                else "Syntax error: unexpected end of formula"
            )
        tok = self.toks[self.i]
        if expected is not None and tok[1] != expected:
            raise FormulaError(f"Syntax error. Found '{tok[1]}', expected '{expected}'")
        self.i += 1
        return tok

    def expr(self) -> Fn:
        left = self.conj()
        while self.peek() == "||":
            self.take()
            right, prev = self.conj(), left
            left = (lambda a, b: lambda e: bool(a(e)) or bool(b(e)))(prev, right)
        return left

    def conj(self) -> Fn:
        left = self.compare()
        while self.peek() == "&&":
            self.take()
            right, prev = self.compare(), left
            left = (lambda a, b: lambda e: bool(a(e)) and bool(b(e)))(prev, right)
        return left

    def compare(self) -> Fn:
        left = self.additive()
        op = self.peek()
        if op in ("=", "==", "!=", "<>", "<", "<=", ">", ">="):
            self.take()
            right = self.additive()
            return _comparison(op, left, right)
        return left

    def additive(self) -> Fn:
        left = self.unary()
        while self.peek() in ("+", "-", "&", "*", "/"):
            op = self.take()[1]
            right, prev = self.unary(), left
            left = _arith(op, prev, right)
        return left

    def unary(self) -> Fn:
        if self.peek() == "!":
            self.take()
            inner = self.unary()
            return lambda e: not inner(e)
        if self.peek() == "-":
            self.take()
            inner = self.unary()
            return lambda e: None if (v := inner(e)) is None else -v
        return self.primary()

    def primary(self) -> Fn:
        kind, text = self.take()
        if kind == "num":
            value = float(text)
            return lambda e: value
        if kind == "str":
            s = text[1:-1].replace("\\'", "'").replace('\\"', '"')
            return lambda e: s
        if text == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if kind != "name":
            raise FormulaError(f"Syntax error. Found '{text}'")
        upper = text.upper()
        if upper in ("TRUE", "FALSE"):
            b = upper == "TRUE"
            return lambda e: b
        if upper == "NULL":
            return lambda e: None
        if self.peek() == "(":
            return self.call(upper)
        return self.field(text)

    def field(self, name: str) -> Fn:
        f = self.obj.field(name)
        if f is None:
            raise FormulaError(f"Field {name} does not exist. Check spelling.")
        if f.type in ("picklist", "multipicklist") and (
            not self.context or self.context[-1] not in _PICKLIST_OK
        ):
            raise FormulaError(
                f"Field {f.name} is a picklist field. Picklist fields are only "
                f"supported in certain functions."
            )
        key = f.name
        return lambda e: e[0].get(key)

    def args(self, fn_name: str) -> list[Fn]:
        self.take("(")
        self.context.append(fn_name)
        out: list[Fn] = []
        try:
            if self.peek() != ")":
                out.append(self.expr())
                while self.peek() == ",":
                    self.take()
                    out.append(self.expr())
        finally:
            self.context.pop()
        self.take(")")
        return out

    def call(self, name: str) -> Fn:
        if name in ("ISCHANGED", "PRIORVALUE"):
            self.take("(")
            kind, field_name = self.take()
            f = self.obj.field(field_name) if kind == "name" else None
            if f is None:
                raise FormulaError(f"Field {field_name} does not exist. Check spelling.")
            self.take(")")
            key = f.name
            if name == "ISCHANGED":
                return lambda e: e[1] is not None and e[1].get(key) != e[0].get(key)
            return lambda e: (e[1] if e[1] is not None else e[0]).get(key)
        args = self.args(name)
        arity = {
            "ISPICKVAL": 2,
            "ISBLANK": 1,
            "ISNULL": 1,
            "TEXT": 1,
            "NOT": 1,
            "IF": 3,
            "ISNEW": 0,
            "LEN": 1,
            "BLANKVALUE": 2,
            "CONTAINS": 2,
            "BEGINS": 2,
            "LOWER": 1,
            "UPPER": 1,
        }
        if name in arity and len(args) != arity[name]:
            raise FormulaError(
                f"Incorrect number of parameters for function '{name}()'. "
                f"Expected {arity[name]}, received {len(args)}"
            )
        if name == "AND":
            return lambda e: all(a(e) for a in args)
        if name == "OR":
            return lambda e: any(a(e) for a in args)
        a = args[0] if args else (lambda e: None)
        b = args[1] if len(args) > 1 else (lambda e: None)
        simple: dict[str, Fn] = {
            "NOT": lambda e: not a(e),
            "ISPICKVAL": lambda e: (a(e) or "") == (b(e) or ""),
            "ISBLANK": lambda e: _blank(a(e)),
            "ISNULL": lambda e: _blank(a(e)),
            "TEXT": lambda e: "" if (v := a(e)) is None else _text(v),
            "ISNEW": lambda e: e[1] is None,
            "LEN": lambda e: len(a(e) or ""),
            "BLANKVALUE": lambda e: b(e) if _blank(v := a(e)) else v,
            "CONTAINS": lambda e: (b(e) or "") in (a(e) or ""),
            "BEGINS": lambda e: (a(e) or "").startswith(b(e) or ""),
            "LOWER": lambda e: (a(e) or "").lower(),
            "UPPER": lambda e: (a(e) or "").upper(),
        }
        if name == "IF":
            c = args[2]
            return lambda e: b(e) if a(e) else c(e)
        if name not in simple:
            raise FormulaError(f"Unknown function {name}. Check spelling.")
        return simple[name]


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _comparison(op: str, left: Fn, right: Fn) -> Fn:
    def fn(e: Env) -> Any:
        a, b = left(e), right(e)
        if op in ("=", "=="):
            return a == b
        if op in ("!=", "<>"):
            return a != b
        if a is None or b is None:
            return False
        try:
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        except TypeError:
            return False

    return fn


def _arith(op: str, left: Fn, right: Fn) -> Fn:
    def fn(e: Env) -> Any:
        a, b = left(e), right(e)
        if op == "&":
            return f"{'' if a is None else _text(a)}{'' if b is None else _text(b)}"
        if a is None or b is None:
            return None
        try:
            return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b}[
                op
            ]()
        except (TypeError, ZeroDivisionError):
            return None

    return fn
