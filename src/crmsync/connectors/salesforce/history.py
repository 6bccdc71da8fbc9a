"""Stage history of opportunities from ``OpportunityHistory`` and ``OpportunityFieldHistory``.

``OpportunityHistory`` (kept by every org) has a row when an opportunity is created and one on
each change of its stage, amount, probability or close date, each with the ``StageName`` after
it: the stages entered are those rows with repeats collapsed. ``OpportunityFieldHistory`` has a
``StageName`` row per stage change (``NewValue``) only when field history tracking covers the
stage; its rows are merged in, so an org whose OpportunityHistory was trimmed still shows its
moves. Loss reason and competitor are read from the opportunity's ``Loss_Reason__c`` and
``Competitor__c`` when the org has them (``options.loss_fields``, default those two).

The stage id crmsync uses for Salesforce is the ``StageName`` (connectors/salesforce/mapping.py).
Ids go 200 to a query (a SOQL ``IN`` list that keeps the URL short); both queries follow
``nextRecordsUrl``.

A backfill of the whole object reads them in batch instead (``BatchedHistories``): one Bulk 2.0
query job over each of ``OpportunityHistory``, ``OpportunityFieldHistory`` (``Field =
'StageName'``) and the lost opportunities' loss fields, read when the first page of deals asks,
kept compactly per opportunity (stage, microseconds) and handed out page by page. The jobs are
snapshots taken at their ``createdDate``: a deal whose SystemModstamp is not settled by then
(``StampRule.boundary``: the stamp's second plus ``settle_seconds``), or one none of them
mentions, is read by ids as before, so every page gets what the per-page reads would have stored.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from crmsync.connectors.base import FatalError
from crmsync.connectors.salesforce.bulk import BulkQueries, query_rows
from crmsync.connectors.salesforce.host import SalesforceHost
from crmsync.connectors.salesforce.soql import soql
from crmsync.connectors.stage_history import (
    COMPETITOR,
    LOSS_REASON,
    HistoryBatch,
    StageEntry,
    chunks,
    collapse,
)
from crmsync.model import Deal, parse_timestamp

IDS_PER_QUERY = 200
DEFAULT_LOSS_FIELDS = {"Loss_Reason__c": LOSS_REASON, "Competitor__c": COMPETITOR}


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICRO = dt.timedelta(microseconds=1)


class BatchedHistories:
    """The stage histories of a whole-object backfill, read by three Bulk 2.0 jobs (see above)."""

    def __init__(self, connector: SalesforceHost) -> None:
        self.c = connector
        self.loaded = False
        self.failed = False
        # deal id -> [stage, microseconds since the epoch, stage, microseconds, ...] (flat: ~44 bytes a row)
        self.rows: dict[str, list[Any]] = {}
        self.extra: dict[str, dict[str, Any]] = {}
        self.snapshot: dt.datetime | None = None  # the earliest job's createdDate
        self.settled_before: float | None = None  # deals stamped at or before this are answered by the batch
        self.calls = 0

    def load(self) -> None:
        before = self.c.usage.calls
        self.loaded = True
        bulk = BulkQueries(self.c.rest)
        stages: dict[str, str] = {}
        rows = self.rows

        def add(deal_id: Any, stage: Any, created: Any) -> None:
            if not stage or not deal_id:
                return
            at = parse_timestamp(created, field_name="OpportunityHistory.CreatedDate")
            if at is not None:
                name = stages.setdefault(str(stage), str(stage))
                rows.setdefault(sys.intern(str(deal_id)), []).extend((name, (at - EPOCH) // MICRO))

        for row, created in self._rows(bulk, "SELECT OpportunityId, StageName, CreatedDate FROM OpportunityHistory"):
            self._snap(created)
            add(row.get("OpportunityId"), row.get("StageName"), row.get("CreatedDate"))
        for row, created in self._rows(bulk, "SELECT OpportunityId, NewValue, CreatedDate FROM "
                                             "OpportunityFieldHistory WHERE Field = 'StageName'"):
            self._snap(created)
            add(row.get("OpportunityId"), row.get("NewValue"), row.get("CreatedDate"))
        fields: dict[str, str] = dict(self.c.conn.options.get("loss_fields", DEFAULT_LOSS_FIELDS))
        if fields:
            try:
                for row, created in self._rows(bulk, soql("SELECT Id, {:fields} FROM Opportunity WHERE IsClosed = true "
                                                          "AND IsWon = false", list(fields))):
                    self._snap(created)
                    self.extra[str(row["Id"])] = {key: row.get(name) for name, key in fields.items()}
            except FatalError as exc:
                if "INVALID_FIELD" not in str(exc):  # the org has no such fields: no loss reasons
                    raise
        self.calls = self.c.usage.calls - before
        if self.snapshot is not None:
            # a deal stamped in the snapshot's second or later, or within the settle time before it
            # (a transaction stamped earlier may commit after it: connectors.cursor), is read by id
            self.settled_before = self.c.stamp_rule.boundary(self.snapshot.timestamp())

    def _rows(self, bulk: BulkQueries, query: str) -> Any:
        return query_rows(bulk, "query", query, poll_s=self.c.bulk_poll_s, timeout_s=self.c.bulk_timeout_s,
                          before_call=self.c.check_budget)

    def _snap(self, created: str) -> None:
        at = parse_timestamp(created) if created else None
        if at is not None and (self.snapshot is None or at < self.snapshot):
            self.snapshot = at

    def take(self, deals: Sequence[Deal]) -> HistoryBatch:
        """The page's histories out of the batch (and let go of them); the deals the batch cannot
        answer for are read by ids."""
        calls = 0
        if not self.loaded:
            self.load()
            calls += self.calls
        histories: dict[str, list[StageEntry]] = {}
        extra: dict[str, dict[str, Any]] = {}
        unanswered: list[Deal] = []
        for deal in deals:
            flat = self.rows.get(deal.source_id)
            if flat is None or self.settled_before is None or deal.modified_at.timestamp() > self.settled_before:
                unanswered.append(deal)
                continue
            del self.rows[deal.source_id]
            histories[deal.source_id] = collapse(StageEntry(flat[i], EPOCH + flat[i + 1] * MICRO)
                                                 for i in range(0, len(flat), 2))
            found = self.extra.pop(deal.source_id, None)
            if found is not None and deal.is_closed and not deal.is_won:
                extra[deal.source_id] = found
        if unanswered:
            rest = read_histories(self.c, unanswered)
            histories.update(rest.histories)
            extra.update(rest.extra)
            calls += rest.api_calls
        return HistoryBatch(histories, extra, calls)


def read_histories(connector: SalesforceHost, deals: Sequence[Deal]) -> HistoryBatch:
    before = connector.usage.calls
    entries: dict[str, list[StageEntry]] = defaultdict(list)
    extra: dict[str, dict[str, Any]] = {}
    loss_fields: dict[str, str] = dict(connector.conn.options.get("loss_fields", DEFAULT_LOSS_FIELDS))
    ids = [d.source_id for d in deals]
    for chunk in chunks(ids, IDS_PER_QUERY):
        for row in connector.query(soql(
                "SELECT OpportunityId, StageName, CreatedDate FROM OpportunityHistory WHERE OpportunityId IN {} "
                "ORDER BY OpportunityId, CreatedDate, Id", list(chunk)), include_deleted=False):
            _add(entries, row["OpportunityId"], row.get("StageName"), row.get("CreatedDate"))
        for row in connector.query(soql(
                "SELECT OpportunityId, NewValue, CreatedDate FROM OpportunityFieldHistory WHERE Field = 'StageName' "
                "AND OpportunityId IN {} ORDER BY OpportunityId, CreatedDate, Id", list(chunk)),
                include_deleted=False):
            _add(entries, row["OpportunityId"], row.get("NewValue"), row.get("CreatedDate"))
        closed = [d.source_id for d in deals if d.source_id in set(chunk) and d.is_closed and not d.is_won]
        if closed and loss_fields:
            extra.update(_loss_fields(connector, closed, loss_fields))
    return HistoryBatch({deal_id: collapse(found) for deal_id, found in entries.items()}, extra,
                        connector.usage.calls - before)


def _add(entries: dict[str, list[StageEntry]], deal_id: Any, stage: Any, created: Any) -> None:
    if not stage or not deal_id:
        return
    at = parse_timestamp(created, field_name="OpportunityHistory.CreatedDate")
    if at is not None:
        entries[str(deal_id)].append(StageEntry(str(stage), at))


def _loss_fields(connector: SalesforceHost, ids: list[str], fields: dict[str, str]) -> dict[str, dict[str, Any]]:
    try:
        rows = connector.query(soql("SELECT Id, {:fields} FROM Opportunity WHERE Id IN {}", list(fields), ids),
                               include_deleted=False)
    except FatalError as exc:
        if "INVALID_FIELD" in str(exc):  # the org has no such fields: no loss reasons, not an error
            return {}
        raise
    return {str(r["Id"]): {key: r.get(name) for name, key in fields.items()} for r in rows}
