"""Findings become stored decisions and CRM tasks for the deal owner (through the outbox).

The task's idempotency key is built from the finding (check, deal, line) and the phase
(``before_close`` / ``after_close``), so re-running the checks never creates a second task.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from crmsync.billing.checks import Finding
from crmsync.model import Deal


def task_fields(deal: Deal, finding: Finding, *, phase: str, due: dt.date) -> dict[str, Any]:
    return {
        "subject": f"[billing] {finding.check}: {finding.reason}"[:255],
        "owner_id": deal.owner_id, "deal_id": deal.source_id, "due_date": due.isoformat(),
        # Only canonical task fields go to the CRM; the money at stake and the phase are in the body.
        "body": (f"{finding.reason}\nMoney at stake: {finding.money_at_stake} {finding.currency or ''}".rstrip()
                 + f"\nPhase: {phase.replace('_', ' ')}\nCheck: {finding.check}"),
        "crmsync_key": f"billing:{phase}:{finding.key}",
    }


def phase_of(deal: Deal) -> str:
    return "after_close" if deal.is_closed else "before_close"


def record_findings(store: Any, deal: Deal, findings: Sequence[Finding], *, today: dt.date,
                    run_id: int | None = None) -> int:
    """Log each finding as a decision and enqueue one CRM task per finding; returns tasks enqueued."""
    from crmsync.store import OutboxItem

    phase = phase_of(deal)
    enqueued = 0
    with store.transaction() as tx:
        for f in findings:
            fields = task_fields(deal, f, phase=phase, due=today + dt.timedelta(days=2))
            queued = bool(tx.enqueue(OutboxItem(connection=deal.connection, object_name="tasks",
                                                operation="create", fields=fields,
                                                idempotency_key=fields["crmsync_key"])))
            if not queued:
                continue  # found and reported before: once per finding, not every cycle
            enqueued += 1
            tx.log_decision(rule_kind="billing", rule_name=f.check, connection=deal.connection, object_type="deal",
                            source_id=deal.source_id, action="finding", run_id=run_id, reason=f.reason,
                            fields={"money_at_stake": str(f.money_at_stake), "currency": f.currency,
                                    "line_id": f.line_id, "severity": f.severity})
    return enqueued
