"""Salesforce-style record ids: 3-char key prefix, 12-char body, 3-char case-safe checksum.

The body is the record number in fixed-width base 62 over ``0-9A-Za-z`` (ASCII order), so ids of
one object sort in creation order, which the simulator's Id index relies on.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

KEY_PREFIXES = {
    "Opportunity": "006", "Lead": "00Q", "Account": "001", "Contact": "003", "User": "005",
    "Product2": "01t", "Pricebook2": "01s", "PricebookEntry": "01u", "OpportunityLineItem": "00k",
    "Task": "00T", "Note": "002", "OpportunityStage": "01J", "OpportunityFieldHistory": "017",
    "OpportunityHistory": "008", "BulkJob": "750", "QueryLocator": "01g",
}


_UPPER_FLAGS = str.maketrans({c: ("1" if "A" <= c <= "Z" else "0") for c in ALPHABET})
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]  # base 62**2, so a body is six table lookups


def checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitively unique.

    Each 5-character chunk gives a 5-bit number (bit i set when character i is A-Z) that indexes
    ``A..Z0..5``.
    """
    flags = id15.translate(_UPPER_FLAGS)
    return _SUFFIX[int(flags[4::-1], 2)] + _SUFFIX[int(flags[9:4:-1], 2)] + _SUFFIX[int(flags[14:9:-1], 2)]


def make_id(prefix: str, number: int) -> str:
    if number < 0 or number >= 62 ** 12:
        raise ValueError("record number out of range for a 12-character body")
    rest, p5 = divmod(number, 3844)
    rest, p4 = divmod(rest, 3844)
    rest, p3 = divmod(rest, 3844)
    rest, p2 = divmod(rest, 3844)
    p0, p1 = divmod(rest, 3844)
    pairs = _PAIRS
    id15 = prefix + pairs[p0] + pairs[p1] + pairs[p2] + pairs[p3] + pairs[p4] + pairs[p5]
    return id15 + checksum(id15)


def is_valid_id(value: str) -> bool:
    if len(value) == 15:
        return all(c in ALPHABET for c in value)
    return len(value) == 18 and all(c in ALPHABET for c in value) and checksum(value[:15]) == value[15:]


def to18(value: str) -> str:
    return value if len(value) == 18 else value + checksum(value)

PREFIX_OF = {prefix: name for name, prefix in KEY_PREFIXES.items()}
