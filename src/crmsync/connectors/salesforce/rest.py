"""The REST reads of a pull, on the connector's session: query/queryAll pages and getDeleted.

simple-salesforce is what pushes go through (``connector.sf``, loaded on first use); reading does
not need it. Its ``query`` decodes every page with ``json`` into an ``OrderedDict`` per record,
and importing it loads zeep, lxml and cryptography (about 25 MB) that a backfill never uses. These
calls send the same requests (``GET …/query/?q=``, ``…/queryAll/``, ``nextRecordsUrl``,
``…/sobjects/{name}/deleted/?start=&end=``) and decode each body once into plain dicts, money
as ``Decimal`` (``transport.EXACT_JSON``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from crmsync.connectors.salesforce.transport import SalesforceSession

API_VERSION = "59.0"


def sf_stamp(value: dt.datetime) -> str:
    """``2013-05-05T00:00:00+00:00``: the form getDeleted takes for ``start`` and ``end``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


class RestReads:
    def __init__(self, session: SalesforceSession, version: str = API_VERSION) -> None:
        self.session = session
        self.version = version

    @property
    def instance(self) -> str:
        return str(self.session.instance_url or "").rstrip("/")

    @property
    def base(self) -> str:
        return f"{self.instance}/services/data/v{self.version}/"

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.session.call_json("GET", self.base + path, params=params)

    def send(self, method: str, path: str, body: bytes | None = None) -> Any:
        return self.session.call_json(method, self.base + path, body=body)

    def query_pages(self, soql: str, *, include_deleted: bool) -> Iterator[dict[str, Any]]:
        """Each answer of one SOQL query, following ``nextRecordsUrl``."""
        answer = self.get("queryAll/" if include_deleted else "query/", {"q": soql})
        yield answer
        while not answer.get("done", True) and answer.get("nextRecordsUrl"):
            answer = self.session.call_json("GET", self.instance + str(answer["nextRecordsUrl"]))
            yield answer

    def query(self, soql: str, *, include_deleted: bool) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for answer in self.query_pages(soql, include_deleted=include_deleted):
            records.extend(answer.get("records") or [])
        return records

    def total(self, soql: str) -> int:
        return int(self.get("query/", {"q": soql})["totalSize"])

    def deleted(self, sobject: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        path = f"sobjects/{quote(sobject)}/deleted/?start={quote(sf_stamp(start))}&end={quote(sf_stamp(end))}"
        return dict(self.get(path) or {})
