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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from crmsync.connectors.base import FatalError
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
