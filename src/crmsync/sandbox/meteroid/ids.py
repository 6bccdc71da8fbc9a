"""Meteroid-style ids: a type prefix and a 22-character base62 body (``cus_7n42DGM5Tflk9n8mt7Fhc7``).

The body is an invertible scramble of a sequence number, so a seeded record's id is computed
from its number (no table of a million ids) and an id read back from a request maps straight to
its number.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
BODY_LEN = 22
_MOD = 62**BODY_LEN
# 62**22 = 2**22 * 31**22: the multiplier must be odd and not a multiple of 31 to be invertible.
_MULT = 0x9E3779B97F4A7C15F39CC0605CEDC835
assert _MULT % 2 == 1 and _MULT % 31 != 0
_INV = pow(_MULT, -1, _MOD)


def _encode(value: int) -> str:
    chars = []
    for _ in range(BODY_LEN):
        value, rem = divmod(value, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def _decode(body: str) -> int | None:
    value = 0
    for ch in body:
        digit = _INDEX.get(ch)
        if digit is None:
            return None
        value = value * 62 + digit
    return value


def _offset(prefix: str, salt: int) -> int:
    """Per-kind and per-salt offset, so plan 1 and product 1 do not share a body."""
    return int.from_bytes(prefix.encode(), "big") * 10**18 + salt * 1_000_003


def make_id(prefix: str, number: int, salt: int = 0) -> str:
    """The id of record ``number`` of kind ``prefix`` (deterministic)."""
    return f"{prefix}_{_encode(((number + _offset(prefix, salt)) * _MULT) % _MOD)}"


def parse_id(prefix: str, value: str, salt: int = 0) -> int | None:
    """The record number of an id of kind ``prefix``, or None if it is not one."""
    head, sep, body = value.partition("_")
    if not sep or head != prefix or len(body) != BODY_LEN:
        return None
    raw = _decode(body)
    if raw is None:
        return None
    return (raw * _INV) % _MOD - _offset(prefix, salt)


ID_PREFIXES = ("cus_", "plan_", "plv_", "sub_", "prd_", "pf_", "price_", "cou_", "inv_", "ive_", "acp_", "pri_", "bm_")
