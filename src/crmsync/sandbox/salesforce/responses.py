"""JSON and CSV answers in Salesforce's shapes (numbers exact: Decimals are written verbatim)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import Response


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        text = format(value, "f")
        return orjson.Fragment(text.encode())
    raise TypeError(f"cannot serialise {type(value).__name__}")


def sf_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, default=_default), status_code=status, headers=headers,
                    media_type="application/json;charset=UTF-8")


def sf_error(code: str, message: str, status: int = 400, fields: list[str] | None = None,
             headers: dict[str, str] | None = None) -> Response:
    """Top-level REST errors: a JSON array of ``{"message","errorCode"}`` (plus ``fields``)."""
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields:
        item["fields"] = fields
    return sf_json([item], status, headers)


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def to_csv(fields: list[str], rows: list[dict[str, Any]], delimiter: str = ",", line_ending: str = "\n") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=line_ending, quoting=csv.QUOTE_ALL)
    writer.writerow(fields)
    for row in rows:
        writer.writerow([csv_value(row.get(f)) for f in fields])
    return out.getvalue()
