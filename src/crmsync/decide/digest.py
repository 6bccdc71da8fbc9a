"""The daily hygiene digest: open findings per owner, from the decision log, as a report file.

Findings are logged once per idempotency key (the rules runner never logs a key twice), so the
digest lists each problem once with the day it was first found. The report is written as
Markdown under ``<state dir>/digests/hygiene-YYYY-MM-DD.md`` and returned as rows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, select

from crmsync.logging import get_logger
from crmsync.model import now_utc
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.store import tables as t

log = get_logger("crmsync.decide.digest")


@dataclass(frozen=True)
class DigestRow:
    connection: str
    owner_id: str
    rule: str
    object_type: str
    source_id: str
    reason: str
    found_at: dt.datetime


def digest_rows(store: Store, *, since: dt.datetime) -> list[DigestRow]:
    decisions = t.decisions.c
    stmt = (select(decisions.connection, decisions.rule_name, decisions.object_type, decisions.source_id,
                   decisions.reason, decisions.fields, decisions.created_at)
            .where(and_(decisions.action == "finding", decisions.rule_kind.in_(("hygiene", "billing")),
                        decisions.created_at >= since))
            .order_by(decisions.connection, decisions.created_at))
    rows = []
    with store.engine.connect() as conn:
        for connection, rule, object_type, source_id, reason, fields, created in conn.execute(stmt):
            owner = str((fields or {}).get("owner_id") or "unassigned")
            rows.append(DigestRow(connection, owner, rule, object_type, source_id or "", reason or "", created))
    return rows


def render_markdown(rows: list[DigestRow], day: dt.date) -> str:
    by_owner: dict[tuple[str, str], list[DigestRow]] = defaultdict(list)
    for row in rows:
        by_owner[(row.connection, row.owner_id)].append(row)
    lines = [f"# Hygiene digest {day.isoformat()}", "", f"{len(rows)} findings for {len(by_owner)} owners.", ""]
    for (connection, owner), items in sorted(by_owner.items()):
        lines.append(f"## {connection} / owner {owner}: {len(items)}")
        for item in items:
            lines.append(f"- {item.rule}: {item.object_type} {item.source_id}: {item.reason}")
        lines.append("")
    return "\n".join(lines)


def run_digest(settings: Settings, store: Store, *, now: dt.datetime | None = None,
               directory: Path | None = None) -> Path:
    now = now or now_utc()
    rows = digest_rows(store, since=now - dt.timedelta(days=1))
    out_dir = directory or Path(".crmsync") / "digests"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"hygiene-{now.date().isoformat()}.md"
    path.write_text(render_markdown(rows, now.date()), encoding="utf-8")
    log.info("rules.digest_written", path=str(path), findings=len(rows))
    return path
