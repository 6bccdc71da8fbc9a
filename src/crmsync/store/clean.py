"""Values both stores take the same way, decided before any write.

SQLite takes almost anything; PostgreSQL refuses some values outright. So that a page stores the
same data on both, every record is checked here first and each odd value is either **cleaned,
with a note** (kept in ``extra["_crmsync_cleaned"]``, so a person can see what was changed) or
**refused** with a ``ModelError`` naming the field (the engine quarantines that record):

* text with NUL characters (PostgreSQL ``text`` and ``jsonb`` refuse ``\\x00``): removed, noted;
* text with lone surrogates (no UTF-8 encoder takes them): replaced by U+FFFD, noted;
* canonical text longer than ``MAX_TEXT_CHARS`` (HubSpot's own cap on a property value): cut, noted;
* a deal without a name: stored, noted (the CRM allows it; reports show it as unnamed);
* whole numbers outside PostgreSQL's ``integer`` range: refused;
* decimals beyond ``MAX_DECIMAL_EXPONENT`` (PostgreSQL ``numeric`` stops at 131,072 digits before
  the point; the bound keeps both stores and every report well inside it): refused.

Dates outside year 1-9999 never get here: Python cannot represent them, so mapping refuses them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Integer, String, Text

from crmsync.model import ModelError, ObjectType, Record
from crmsync.store.tables import record_table
from crmsync.store.types import ExactDecimal, json_dumps

#: where the notes of what was cleaned go in ``Record.extra``
CLEANED_KEY = "_crmsync_cleaned"
MAX_TEXT_CHARS = 65_536
MAX_DECIMAL_EXPONENT = 1_000
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_NUL = "\x00"


def _kinds(object_type: ObjectType) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(text, whole-number, decimal) field names of a kind, read from its table's column types."""
    table = record_table(object_type)
    text, whole, dec = [], [], []
    for column in table.columns:
        if column.name in ("connection", "source_id", "content_hash"):
            continue
        if isinstance(column.type, String | Text):
            text.append(column.name)
        elif isinstance(column.type, Integer):
            whole.append(column.name)
        elif isinstance(column.type, ExactDecimal):
            dec.append(column.name)
    return tuple(text), tuple(whole), tuple(dec)


_KINDS = {t: _kinds(t) for t in ObjectType}


def clean_text(value: str, name: str, notes: list[str], *, limit: int | None = MAX_TEXT_CHARS) -> str:
    """``value`` as both stores take it; appends a note per change made."""
    if _NUL in value:
        notes.append(f"{name}: removed {value.count(_NUL)} NUL character(s)")
        value = value.replace(_NUL, "")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
            notes.append(f"{name}: replaced invalid UTF-16 surrogates")
    if limit is not None and len(value) > limit:
        notes.append(f"{name}: cut from {len(value):,} to {limit:,} characters")
        value = value[:limit]
    return value


def clean_json(value: Any, name: str = "extra", notes: list[str] | None = None) -> Any:
    """A JSON document (dict keys included) with its text cleaned like ``clean_text`` (no length cap)."""
    sink = notes if notes is not None else []
    if _clean_already(value):
        return value
    return _walk(value, name, sink)


def _clean_already(value: Any) -> bool:
    """The fast path: serialise once; only documents holding NULs or surrogates are walked."""
    try:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return False
    return b"\\u0000" not in text


def _walk(value: Any, name: str, notes: list[str]) -> Any:
    if isinstance(value, str):
        return clean_text(value, name, notes, limit=None)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str):
                key = clean_text(key, f"{name} key", notes, limit=None)
            out[key] = _walk(item, f"{name}.{key}", notes)
        return out
    if isinstance(value, list | tuple):
        return [_walk(v, name, notes) for v in value]
    return value


def clean_record(record: Record) -> list[str]:
    """Make ``record`` storable the same way on SQLite and PostgreSQL, in place.

    Returns the notes of what was cleaned (also kept in ``extra[CLEANED_KEY]``); raises
    ``ModelError`` naming the field for a value neither store should take."""
    notes: list[str] = []
    text, whole, dec = _KINDS[record.object_type]
    for name in text:
        value = getattr(record, name, None)
        if type(value) is str and (len(value) > MAX_TEXT_CHARS or _NUL in value or not value.isascii()):
            setattr(record, name, clean_text(value, name, notes))
    for name in whole:
        value = getattr(record, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
            raise ModelError(f"{name}: {value} is outside the whole-number range the store keeps", field=name)
    for name in dec:
        value = getattr(record, name, None)
        if isinstance(value, Decimal) and value.is_finite() and value and abs(value.adjusted()) > MAX_DECIMAL_EXPONENT:
            raise ModelError(f"{name}: a number with exponent {value.adjusted()} is outside the range the store "
                             f"keeps (|exponent| <= {MAX_DECIMAL_EXPONENT})", field=name)
    ids = getattr(record, "contact_ids", None)
    if ids:
        setattr(record, "contact_ids", [clean_text(i, "contact_ids", notes) if isinstance(i, str) else i  # noqa: B010
                                        for i in ids])
    if record.object_type is ObjectType.DEAL and not getattr(record, "name", None):
        notes.append("name: missing in the source")
    # ``extra`` is checked where it is serialised anyway (``storable_json``), at no extra cost
    if notes:
        record.extra = {**record.extra, CLEANED_KEY: notes}
    return notes


def storable_json(value: Any, name: str = "extra") -> str:
    """A JSON column's text as both stores take it. The common case costs one substring search on
    the text the upsert builds anyway; a document holding NULs or lone surrogates is cleaned
    (``clean_json``) and, if it is a mapping, the notes are added under ``CLEANED_KEY``."""
    try:
        text = json_dumps(value)
    except TypeError:  # orjson refuses lone surrogates
        text = None
    if text is not None and "\\u0000" not in text:
        return text
    notes: list[str] = []
    cleaned = clean_json(value, name, notes) if text is not None else _walk(value, name, notes)
    if isinstance(cleaned, dict) and notes:
        cleaned[CLEANED_KEY] = [*(cleaned.get(CLEANED_KEY) or []), *notes]
    return json_dumps(cleaned)
