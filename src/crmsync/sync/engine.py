"""The pull engine: pages from a connector into the store, one transaction per page.

A page's records, its quarantined rows, its deletions and the cursor to save after it are
committed together, so a crash or kill resumes at the last committed page and never loses or
doubles a record (upserts are idempotent). Backfills keep their own cursor, keyed by the
requested window, so an interrupted backfill resumes where it stopped; incremental cycles keep
theirs. The per-connection API budget is checked after every page: when spent, the run stops
cleanly with its checkpoint and the next run resumes.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from crmsync.connectors.base import BudgetExhausted, Connector, ConnectorError, Page
from crmsync.errors import describe_error, redact_values
from crmsync.logging import bind, get_logger, unbind
from crmsync.model import RECORD_TYPES, ModelError, ObjectType, Record, field_of, now_utc
from crmsync.readahead import ReadAhead
from crmsync.settings import ConnectionSettings
from crmsync.store import Store, Transaction
from crmsync.store.clean import clean_record
from crmsync.store.stage_events import record_stage_events
from crmsync.sync.budget import ApiBudget
from crmsync.sync.history import read_stage_histories
from crmsync.sync.page_group import PageGroup
from crmsync.sync.poison import Refused, write_isolating

log = get_logger("crmsync.sync")

OBJECT_TYPES: dict[str, ObjectType] = {
    "deals": ObjectType.DEAL, "leads": ObjectType.LEAD, "accounts": ObjectType.ACCOUNT,
    "contacts": ObjectType.CONTACT, "owners": ObjectType.OWNER, "pipelines": ObjectType.PIPELINE,
    "stages": ObjectType.STAGE, "line_items": ObjectType.LINE_ITEM, "products": ObjectType.PRODUCT,
    "price_book_entries": ObjectType.PRICE_BOOK_ENTRY, "tasks": ObjectType.TASK,
}
# Child kinds and the field naming their parent (``Page.complete_for_parents``).
CHILD_PARENT_FIELD: dict[ObjectType, str] = {ObjectType.LINE_ITEM: "deal_id"}
# A backfill reads ahead only while at least this many calls are left in its budget.
READ_AHEAD_MARGIN = 100
# A backfill commits every this many pages, or sooner when the group has been open this long.
BACKFILL_COMMIT_PAGES = 16
BACKFILL_COMMIT_SECONDS = 1.0
# Reference data first so deals find their owners and stages already stored.
PULL_ORDER = ("owners", "pipelines", "stages", "products", "price_book_entries", "accounts", "contacts",
              "leads", "deals", "line_items", "tasks")


@dataclass
class ObjectResult:
    connection: str
    object_name: str
    mode: str
    status: str = "ok"  # ok | stopped (budget or signal) | failed
    pages: int = 0
    records: int = 0
    deleted: int = 0
    quarantined: int = 0
    api_calls: int = 0
    changed: list[tuple[str, str]] = field(default_factory=list)  # (object_type, source_id) written
    source_count: int | None = None
    stored_count: int | None = None
    quarantined_open: int | None = None  # open quarantine entries of this object (completeness check)
    error: str | None = None

    @property
    def complete(self) -> bool | None:
        if self.source_count is None or self.stored_count is None:
            return None
        return self.source_count == self.stored_count

    @property
    def unaccounted(self) -> int | None:
        """Source records neither stored nor quarantined (None: not checked). Only these make a
        backfill fail: a quarantined record is kept, with its reason, for a person to fix."""
        if self.source_count is None or self.stored_count is None:
            return None
        return max(self.source_count - self.stored_count - (self.quarantined_open or 0), 0)

    def counts(self) -> dict[str, Any]:
        return {"pages": self.pages, "records": self.records, "deleted": self.deleted,
                "quarantined": self.quarantined, "api_calls": self.api_calls,
                "source_count": self.source_count, "stored_count": self.stored_count}


ProgressCallback = Callable[[ObjectResult, Page], None]


def backfill_cursor_name(object_name: str, since: dt.datetime | None, until: dt.datetime | None) -> str:
    lo = since.isoformat() if since else "-"
    hi = until.isoformat() if until else "-"
    return f"{object_name}@backfill[{lo},{hi}]"


class SyncEngine:
    """Runs pulls for one connection."""

    def __init__(self, store: Store, connector: Connector, conn: ConnectionSettings, *,
                 stop_event: threading.Event | None = None,
                 clock: Callable[[], dt.datetime] = now_utc) -> None:
        self.store = store
        self.connector = connector
        self.conn = conn
        self.stop_event = stop_event or threading.Event()
        self.clock = clock
        self.budget = ApiBudget(store, conn, clock=clock)

    # --- public entry points ----------------------------------------------------------------
    def sync(self, objects: Sequence[str] | None = None, *, dry_run: bool = False) -> list[ObjectResult]:
        """One incremental cycle over the connection's objects (``dry_run``: pull and count only)."""
        wanted = list(objects or self.conn.objects)
        results = []
        for name in sorted(wanted, key=lambda n: PULL_ORDER.index(n) if n in PULL_ORDER else len(PULL_ORDER)):
            result = self.run(name, mode="sync", dry_run=dry_run)
            results.append(result)
            if result.status == "stopped":
                break
        return results

    def backfill(self, object_name: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None,
                 dry_run: bool = False, progress: ProgressCallback | None = None) -> ObjectResult:
        return self.run(object_name, mode="backfill", since=since, until=until, dry_run=dry_run, progress=progress)

    def run(self, object_name: str, *, mode: str, since: dt.datetime | None = None,
            until: dt.datetime | None = None, dry_run: bool = False,
            progress: ProgressCallback | None = None) -> ObjectResult:
        if object_name not in OBJECT_TYPES:
            raise ValueError(f"unknown object {object_name!r} (expected one of {', '.join(OBJECT_TYPES)})")
        result = ObjectResult(self.conn.name, object_name, mode)
        cursor_name = object_name if mode == "sync" else backfill_cursor_name(object_name, since, until)
        run_id = None if dry_run else self.store.start_run(mode, self.conn.name, object_name)
        bind(connection=self.conn.name, object=object_name, run_id=run_id, mode=mode)
        try:
            self._pull(result, cursor_name, since=since, until=until, dry_run=dry_run, progress=progress)
            if mode == "backfill" and result.status == "ok":
                self._check_completeness(result, since, until)
        except BudgetExhausted as exc:
            result.status, result.error = "stopped", str(exc)
            log.warning("sync.budget_exhausted", reason=describe_error(exc, with_type=False), records=result.records)
        except ConnectorError as exc:
            result.status, result.error = "failed", describe_error(exc)
            log.error("sync.failed", error=result.error, records=result.records)
        except Exception as exc:
            result.status, result.error = "failed", describe_error(exc)
            log.error("sync.crashed", error=result.error, records=result.records)
            raise
        finally:
            if run_id is not None:
                self.store.finish_run(run_id, result.status, result.counts(), result.error)
            log.info("sync.finished", status=result.status, **result.counts())
            unbind("connection", "object", "run_id", "mode")
        return result

    # --- internals ----------------------------------------------------------------------------
    def _pull(self, result: ObjectResult, cursor_name: str, *, since: dt.datetime | None,
              until: dt.datetime | None, dry_run: bool, progress: ProgressCallback | None) -> None:
        saved = self.store.load_cursor(self.conn.name, cursor_name)
        if saved and saved.get("complete") and result.mode == "backfill":
            log.info("backfill.already_complete", cursor=cursor_name)
            return
        cursor = (saved or {}).get("connector") if saved else None
        self.budget.check()
        pages: Iterator[Page] = self.connector.pull(result.object_name, cursor, since=since, until=until,
                                                    backfill=result.mode == "backfill")
        if result.mode == "backfill" and self._may_read_ahead():
            pages = ReadAhead(pages, depth=int(self.conn.options.get("read_ahead_pages", 1)),
                              name=f"readahead-{self.conn.name}")
        object_type = OBJECT_TYPES[result.object_name]
        group = self._page_group(result.mode)
        try:
            for page in pages:
                self._apply(result, object_type, cursor_name, page, dry_run, group)
                if progress is not None:
                    progress(result, page)
                if page.done:
                    break
                if self.stop_event.is_set():
                    result.status = "stopped"
                    result.error = "stop requested; checkpoint saved"
                    break
                self.budget.check()
        finally:
            group.commit()  # the pages applied so far, whatever ended the pull
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def _page_group(self, mode: str) -> PageGroup:
        """Backfills commit every ``options.commit_pages`` pages (default 16) or ``commit_seconds``
        (default 1.0); incremental cycles commit every page (``sync.page_group``)."""
        options = self.conn.options
        pages = int(options.get("commit_pages", BACKFILL_COMMIT_PAGES)) if mode == "backfill" else 1
        seconds = float(options.get("commit_seconds", BACKFILL_COMMIT_SECONDS))
        return PageGroup(self.store, max_pages=pages, max_seconds=seconds)

    def _may_read_ahead(self) -> bool:
        """Backfills fetch the next page while one is written (``options.read_ahead``, default on),
        unless the API budget is near its end: a page read ahead spends calls before the budget
        check that would have stopped the run."""
        if not bool(self.conn.options.get("read_ahead", True)):
            return False
        allowance = self.budget.allowance()
        if allowance is not None and allowance - self.budget.used_today() < READ_AHEAD_MARGIN:
            return False
        remaining = self.budget.org_remaining
        return remaining is None or remaining - self.conn.budget.reserve_for_push >= READ_AHEAD_MARGIN

    def _apply(self, result: ObjectResult, object_type: ObjectType, cursor_name: str, page: Page,
               dry_run: bool, group: PageGroup) -> None:
        records, refused = _clean_all(r for r in page.records if _is_kind(r, object_type))
        result.pages += 1
        result.deleted += len(page.deleted_ids)
        result.api_calls += page.api_calls
        if dry_run:
            result.records += len(records)
            result.quarantined += len(page.quarantined) + len(refused)
            return
        checkpoint = {"connector": page.cursor, "complete": page.done and result.mode == "backfill",
                      "saved_at": self.clock().isoformat()}
        history = read_stage_histories(self.connector, self.conn, records) if object_type is ObjectType.DEAL \
            else None  # the CRM's own stage history, read before the transaction (network I/O)
        history_calls = history.api_calls if history is not None else 0
        result.api_calls += history_calls
        with group.page(last=page.done) as tx:
            histories = history.histories if history is not None else None
            refused += write_isolating(tx, records, lambda t_, rs: _write_records(t_, rs, histories))
            if len(refused) > 0:
                gone = {id(bad.record) for bad in refused}
                records = [r for r in records if id(r) not in gone]
            for bad in page.quarantined:
                tx.quarantine(self.conn.name, result.object_name, bad.source_id, bad.payload,
                              redact_values(bad.reason), field=field_of_reason(bad.reason))
            for rejected in refused:
                tx.quarantine(self.conn.name, result.object_name, rejected.record.source_id,
                              _payload(rejected.record), rejected.reason, field=rejected.field)
            if records:
                tx.resolve_quarantined_ids(self.conn.name, result.object_name, [r.source_id for r in records])
            if page.deleted_ids:
                for at, ids in _by_deletion_time(page, self.clock()).items():
                    tx.mark_deleted(object_type, self.conn.name, ids, at)
            if page.complete_for_parents and object_type in CHILD_PARENT_FIELD:
                present = {r.source_id for r in page.records} | {q.source_id for q in page.quarantined}
                stored = tx.child_ids(object_type, self.conn.name, CHILD_PARENT_FIELD[object_type],
                                      page.complete_for_parents)
                removed = sorted(stored - present)
                if removed:  # children removed from their parent go with the parent's sync
                    result.deleted += tx.mark_deleted(object_type, self.conn.name, removed, self.clock())
            tx.save_cursor(self.conn.name, cursor_name, checkpoint)
            self.budget.charge(tx, page.api_calls + history_calls)
        result.records += len(records)
        result.quarantined += len(page.quarantined) + len(refused)
        if refused:
            log.warning("sync.records_quarantined", count=len(refused),
                        fields=sorted({bad.field or "?" for bad in refused}))
        result.changed.extend((object_type.value, r.source_id) for r in records)
        if len(result.changed) > 100_000:  # keep memory bounded on huge backfills
            del result.changed[:-100_000]
        self.budget.observe(self.connector.usage)
        if result.mode == "backfill" and page.done and not self.store.load_cursor(self.conn.name, result.object_name):
            # A finished backfill hands over to incremental sync from its high-water mark.
            with self.store.transaction() as tx:
                tx.save_cursor(self.conn.name, result.object_name,
                               {"connector": page.cursor, "complete": False, "saved_at": self.clock().isoformat()})

    def _check_completeness(self, result: ObjectResult, since: dt.datetime | None,
                            until: dt.datetime | None) -> None:
        try:
            self._count_both(result, since, until)
        except (ConnectorError, ValueError, NotImplementedError) as exc:
            # The pull itself succeeded; a source that cannot count leaves the check undecided.
            result.source_count = result.stored_count = None
            log.warning("backfill.completeness_unchecked", reason=f"{type(exc).__name__}: {exc}")
            return
        if not result.complete:
            result.quarantined_open = self.store.quarantine_count(self.conn.name, object_name=result.object_name)
        level = log.info if result.complete else log.warning
        level("backfill.completeness", source=result.source_count, stored=result.stored_count,
              quarantined=result.quarantined_open or 0, unaccounted=result.unaccounted, complete=result.complete)

    def _count_both(self, result: ObjectResult, since: dt.datetime | None, until: dt.datetime | None) -> None:
        if since is not None or until is not None:
            result.source_count = self.connector.count(result.object_name, since=since, until=until)
            result.stored_count = _count_in_window(self.store, OBJECT_TYPES[result.object_name], self.conn.name,
                                                   since, until)
        else:
            result.source_count = self.connector.count(result.object_name)
            result.stored_count = self.store.count(OBJECT_TYPES[result.object_name], self.conn.name)

    def sweep_deletes(self, object_name: str, *, confirm: bool = False) -> int:
        """Hard-delete reconciliation: stored ids the source no longer lists are marked deleted.

        Trust but verify: when the source's list would delete more than
        ``schedule.delete_sweep_max_share`` of what the store holds, nothing is marked and
        ``SweepRefused`` says how to confirm (``confirm=True``) if those records really were deleted.
        """
        object_type = OBJECT_TYPES[object_name]
        run_id = self.store.start_run("sweep", self.conn.name, object_name)
        live: set[str] = set()
        try:
            for chunk in self.connector.list_ids(object_name):
                live.update(chunk)
            stored = self.store.source_ids(object_type, self.conn.name)
            gone = sorted(stored - live)
            counts = {"live": len(live), "stored": len(stored), "deleted": 0, "would_delete": len(gone)}
            share = self.conn.schedule.delete_sweep_max_share
            if gone and not confirm and len(gone) > share * len(stored):
                message = (f"{self.conn.name}/{object_name}: the delete sweep would mark {len(gone)} of "
                           f"{len(stored)} stored records deleted ({len(gone) / len(stored):.0%}), more than "
                           f"schedule.delete_sweep_max_share ({share:.0%}); nothing was marked. If they really "
                           f"were deleted in the CRM: crmsync sweep --connection {self.conn.name} "
                           f"--object {object_name} --confirm")
                self.store.finish_run(run_id, "stopped", counts, message)
                log.warning("sweep.refused", object=object_name, stored=len(stored), would_delete=len(gone),
                            max_share=share)
                raise SweepRefused(message)
            if gone:
                with self.store.transaction() as tx:
                    # No deletion time is known, and a record can come back with the very stamp
                    # it had (a Pipedrive deal restored within 30 days brings its products back
                    # unchanged): leave modified_at alone so the next pull that lists it revives it.
                    tx.mark_deleted(object_type, self.conn.name, gone, None)
            self.store.finish_run(run_id, "ok", {**counts, "deleted": len(gone)})
            return len(gone)
        except SweepRefused:
            raise
        except Exception as exc:
            self.store.finish_run(run_id, "failed", {"live": len(live)}, describe_error(exc))
            raise


class SweepRefused(Exception):
    """A delete sweep would mark too large a share of the store deleted; it waits for a confirmation."""


def _by_deletion_time(page: Page, fallback: dt.datetime) -> dict[dt.datetime, list[str]]:
    """The page's deleted ids grouped by when they were deleted: the CRM's own time where the
    connector knows it (``Page.deleted_at``), else ``fallback`` (this machine's clock). The store
    moves a deleted record's ``modified_at`` up to that time; with this machine's clock ahead of the
    CRM's, a record restored in the CRM soon after would carry an older stamp than its deletion and
    stay deleted in the store for good."""
    groups: dict[dt.datetime, list[str]] = {}
    for source_id in page.deleted_ids:
        groups.setdefault(page.deleted_at.get(source_id, fallback), []).append(source_id)
    return groups


def _is_kind(record: Record, object_type: ObjectType) -> bool:
    return RECORD_TYPES[object_type] is type(record)


def _clean_all(records: Iterable[Record]) -> tuple[list[Record], list[Refused]]:
    """Records as both stores take them (``store.clean``); the ones neither should take, refused."""
    kept: list[Record] = []
    refused: list[Refused] = []
    for record in records:
        try:
            clean_record(record)
        except ModelError as exc:
            refused.append(Refused(record, describe_error(exc), field_of(exc)))
            continue
        kept.append(record)
    return kept, refused


def _write_records(tx: Transaction, records: Sequence[Record],
                   histories: Mapping[str, Sequence[Any]] | None = None) -> None:
    if records[0].object_type is ObjectType.DEAL:  # stage history (the CRM's, else against the stored stages)
        record_stage_events(tx.conn, records, histories)
    tx.upsert(records)


def _payload(record: Record) -> dict[str, Any]:
    """A refused canonical record as its quarantine payload (JSON-safe: values as text where needed)."""
    return orjson.loads(orjson.dumps(record.as_dict(), default=str, option=orjson.OPT_NON_STR_KEYS))


def field_of_reason(reason: str) -> str | None:
    return field_of(ModelError(reason))


def _count_in_window(store: Store, object_type: ObjectType, connection: str, since: dt.datetime | None,
                     until: dt.datetime | None) -> int:
    count = 0
    for record in store.iter_records(object_type, connection=connection, modified_since=since):
        if until is None or record.modified_at < until:
            count += 1
    return count

