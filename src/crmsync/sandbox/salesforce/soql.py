"""A real SOQL subset: tokenizer and recursive-descent parser producing a small AST.

Supported: ``SELECT f1, f2 | COUNT() FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
[LIMIT n] [OFFSET n]``; conditions with AND / OR / NOT and parentheses; ``= != <> < <= > >=``,
``[NOT] IN (...)``, ``LIKE``; literals: quoted strings with the documented escapes, numbers,
``null``, ``true``/``false``, unquoted date (``YYYY-MM-DD``) and datetime
(``YYYY-MM-DDThh:mm:ss[.sss](Z|+hh:mm|-hh:mm)``) literals. Errors raise ``SoqlError`` whose
message names the problem the way Salesforce's MALFORMED_QUERY does.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


class SoqlError(ValueError):
    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code


KEYWORDS = frozenset({
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
    "FIRST", "LAST", "LIMIT", "OFFSET", "NULL", "TRUE", "FALSE", "COUNT",
})

_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?![\w:.-])")
_NUMBER = re.compile(r"-?\d+(\.\d+)?(?![\w])")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_OPS = ("!=", "<>", "<=", ">=", "=", "<", ">")
_STRING_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # IDENT KEYWORD STRING NUMBER DATE DATETIME OP PUNCT EOF
    value: Any
    pos: int
    text: str


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            j = i + 1
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise SoqlError(f"unterminated string literal starting at position {i}")
            raw = text[i + 1:j]
            tokens.append(Token("STRING", raw, i, text[i:j + 1]))
            i = j + 1
            continue
        if ch in "(),":
            tokens.append(Token("PUNCT", ch, i, ch))
            i += 1
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("OP", "!=" if op == "<>" else op, i, op))
            i += len(op)
            continue
        if ch.isdigit() or (ch == "-" and i + 1 < n and text[i + 1].isdigit()):
            m = _DATETIME.match(text, i)
            if m:
                tokens.append(Token("DATETIME", _datetime_value(m), i, m.group(0)))
                i = m.end()
                continue
            m = _DATE.match(text, i)
            if m:
                try:
                    value = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
                except ValueError as exc:
                    raise SoqlError(f"invalid date: {m.group(0)}") from exc
                tokens.append(Token("DATE", value, i, m.group(0)))
                i = m.end()
                continue
            m = _NUMBER.match(text, i)
            if m:
                tokens.append(Token("NUMBER", Decimal(m.group(0)), i, m.group(0)))
                i = m.end()
                continue
            raise SoqlError(f"unexpected token: '{_word_at(text, i)}'")
        m = _IDENT.match(text, i)
        if m:
            word = m.group(0)
            kind = "KEYWORD" if word.upper() in KEYWORDS else "IDENT"
            tokens.append(Token(kind, word.upper() if kind == "KEYWORD" else word, i, word))
            i = m.end()
            continue
        raise SoqlError(f"unexpected token: '{_word_at(text, i)}'")
    tokens.append(Token("EOF", None, n, "<EOF>"))
    return tokens


def _word_at(text: str, i: int) -> str:
    m = re.compile(r"\S+").match(text, i)
    return m.group(0)[:40] if m else text[i:i + 1]


def _datetime_value(m: re.Match[str]) -> dt.datetime:
    year, month, day, hour, minute, second = (int(m.group(k)) for k in range(1, 7))
    frac = m.group(7)
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    zone = m.group(8)
    if zone == "Z":
        tz = dt.UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 14 or minutes > 59:
            raise SoqlError(f"invalid time zone offset in datetime: {m.group(0)}")
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(dt.UTC)
    except ValueError as exc:
        raise SoqlError(f"invalid datetime: {m.group(0)}") from exc


def decode_string(raw: str, *, like: bool = False) -> list[tuple[str, bool]]:
    """Decode a quoted string's body into (char, escaped) pairs; ``\\%``/``\\_`` only in LIKE."""
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out.append((ch, False))
            i += 1
            continue
        if i + 1 >= len(raw):
            raise SoqlError("invalid escape sequence at the end of a string literal")
        nxt = raw[i + 1]
        if nxt in _STRING_ESCAPES:
            out.append((_STRING_ESCAPES[nxt], True))
            i += 2
        elif nxt == "u":
            hexdigits = raw[i + 2:i + 6]
            if len(hexdigits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in hexdigits):
                raise SoqlError(f"invalid unicode escape: \\u{hexdigits}")
            out.append((chr(int(hexdigits, 16)), True))
            i += 6
        elif nxt in "%_" and like:
            out.append((nxt, True))
            i += 2
        else:
            raise SoqlError(f"invalid escape sequence in string literal: \\{nxt}")
    return out


def string_value(raw: str) -> str:
    return "".join(ch for ch, _ in decode_string(raw))


# --- AST ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Literal:
    kind: str  # STRING NUMBER DATE DATETIME NULL BOOLEAN
    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class Comparison:
    field: str
    op: str  # = != < <= > >= IN NOT IN LIKE
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Any


Condition = Comparison | And | Or | Not


@dataclass(frozen=True, slots=True)
class OrderItem:
    field: str
    descending: bool = False
    nulls_first: bool | None = None  # None = Salesforce default (first for ASC, last for DESC)

    @property
    def nulls_go_first(self) -> bool:
        return (not self.descending) if self.nulls_first is None else self.nulls_first


@dataclass(frozen=True, slots=True)
class Query:
    fields: tuple[str, ...]
    count_only: bool
    object_name: str
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at_keyword(self, *words: str) -> bool:
        return self.tok.kind == "KEYWORD" and self.tok.value in words

    def expect_keyword(self, word: str) -> Token:
        if not self.at_keyword(word):
            raise self.unexpected(f"expecting '{word}'")
        return self.advance()

    def expect_punct(self, ch: str) -> Token:
        if not (self.tok.kind == "PUNCT" and self.tok.value == ch):
            raise self.unexpected(f"expecting '{ch}'")
        return self.advance()

    def unexpected(self, hint: str = "") -> SoqlError:
        tok = self.tok
        what = "end of query" if tok.kind == "EOF" else f"'{tok.text}'"
        suffix = f", {hint}" if hint else ""
        return SoqlError(f"unexpected token: {what} at position {tok.pos}{suffix}")

    def identifier(self, what: str) -> str:
        if self.tok.kind != "IDENT":
            raise self.unexpected(f"expecting a {what}")
        return str(self.advance().value)

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        fields: list[str] = []
        count_only = False
        if self.at_keyword("COUNT"):
            self.advance()
            self.expect_punct("(")
            self.expect_punct(")")
            count_only = True
        else:
            fields.append(self.identifier("field name"))
            while self.tok.kind == "PUNCT" and self.tok.value == ",":
                self.advance()
                fields.append(self.identifier("field name"))
        self.expect_keyword("FROM")
        object_name = self.identifier("sObject name")
        where = None
        if self.at_keyword("WHERE"):
            self.advance()
            where = self.condition()
        order: list[OrderItem] = []
        if self.at_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            order.append(self.order_item())
            while self.tok.kind == "PUNCT" and self.tok.value == ",":
                self.advance()
                order.append(self.order_item())
        limit = offset = None
        if self.at_keyword("LIMIT"):
            self.advance()
            limit = self.whole_number("LIMIT")
        if self.at_keyword("OFFSET"):
            self.advance()
            offset = self.whole_number("OFFSET")
        if self.tok.kind != "EOF":
            raise self.unexpected()
        return Query(tuple(fields), count_only, object_name, where, tuple(order), limit, offset)

    def whole_number(self, clause: str) -> int:
        tok = self.tok
        if tok.kind != "NUMBER" or tok.value != tok.value.to_integral_value() or tok.value < 0:
            raise self.unexpected(f"{clause} needs a non-negative whole number")
        self.advance()
        return int(tok.value)

    def order_item(self) -> OrderItem:
        name = self.identifier("field name")
        descending = False
        nulls_first: bool | None = None
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().value == "DESC"
        if self.at_keyword("NULLS"):
            self.advance()
            if not self.at_keyword("FIRST", "LAST"):
                raise self.unexpected("expecting FIRST or LAST")
            nulls_first = self.advance().value == "FIRST"
        return OrderItem(name, descending, nulls_first)

    def condition(self) -> Condition:
        items = [self.conjunction()]
        while self.at_keyword("OR"):
            self.advance()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Condition:
        items = [self.negation()]
        while self.at_keyword("AND"):
            self.advance()
            items.append(self.negation())
        return items[0] if len(items) == 1 else And(tuple(items))

    def negation(self) -> Condition:
        if self.at_keyword("NOT"):
            self.advance()
            return Not(self.negation())
        if self.tok.kind == "PUNCT" and self.tok.value == "(":
            self.advance()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        name = self.identifier("field name")
        if self.tok.kind == "OP":
            op = str(self.advance().value)
            return Comparison(name, op, self.literal())
        if self.at_keyword("NOT"):
            self.advance()
            self.expect_keyword("IN")
            return Comparison(name, "NOT IN", self.literal_list())
        if self.at_keyword("IN"):
            self.advance()
            return Comparison(name, "IN", self.literal_list())
        if self.at_keyword("LIKE"):
            self.advance()
            if self.tok.kind != "STRING":
                raise self.unexpected("LIKE needs a quoted string")
            tok = self.advance()
            decode_string(tok.value, like=True)  # validate escapes now
            return Comparison(name, "LIKE", Literal("STRING", tok.value, tok.text))
        raise self.unexpected("expecting a comparison operator")

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect_punct("(")
        items = [self.literal()]
        while self.tok.kind == "PUNCT" and self.tok.value == ",":
            self.advance()
            items.append(self.literal())
        self.expect_punct(")")
        return tuple(items)

    def literal(self) -> Literal:
        tok = self.tok
        if tok.kind == "STRING":
            self.advance()
            return Literal("STRING", string_value(tok.value), tok.text)
        if tok.kind in ("NUMBER", "DATE", "DATETIME"):
            self.advance()
            return Literal(tok.kind, tok.value, tok.text)
        if self.at_keyword("NULL"):
            self.advance()
            return Literal("NULL", None, tok.text)
        if self.at_keyword("TRUE", "FALSE"):
            self.advance()
            return Literal("BOOLEAN", tok.value == "TRUE", tok.text)
        raise self.unexpected("expecting a literal value")


def parse(text: str) -> Query:
    """Parse one SOQL statement; raises ``SoqlError`` naming the problem."""
    if not text or not text.strip():
        raise SoqlError("empty query")
    return _Parser(text).parse()
