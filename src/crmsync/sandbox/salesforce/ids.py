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
    "Task": "00T", "OpportunityStage": "01J", "BulkJob": "750", "QueryLocator": "01g",
}


def checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitively unique."""
    out = []
    for chunk in range(3):
        bits = 0
        for pos, char in enumerate(id15[chunk * 5:chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << pos
        out.append(_SUFFIX[bits])
    return "".join(out)


def make_id(prefix: str, number: int) -> str:
    if number < 0:
        raise ValueError("record numbers are non-negative")
    digits = []
    for _ in range(12):
        number, rem = divmod(number, 62)
        digits.append(ALPHABET[rem])
    if number:
        raise ValueError("record number too large for a 12-character body")
    id15 = prefix + "".join(reversed(digits))
    return id15 + checksum(id15)


def is_valid_id(value: str) -> bool:
    if len(value) == 15:
        return all(c in ALPHABET for c in value)
    return len(value) == 18 and all(c in ALPHABET for c in value) and checksum(value[:15]) == value[15:]


def to18(value: str) -> str:
    return value if len(value) == 18 else value + checksum(value)

PREFIX_OF = {prefix: name for name, prefix in KEY_PREFIXES.items()}
