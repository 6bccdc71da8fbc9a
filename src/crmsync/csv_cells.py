"""CSV cells that a spreadsheet shows as text, never runs.

Text from a CRM (a deal name, a reason quoting one) can start with ``=``, ``+``, ``-`` or ``@``
(or a tab / carriage return), which Excel, LibreOffice and Google Sheets evaluate as a formula
when the export is opened. Such a cell gets a leading apostrophe, the spreadsheets' own
"this is text" marker. Numbers (``Decimal``, ``int``, plain ``-12.50`` strings) are written as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]
