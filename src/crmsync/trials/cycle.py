"""The worker's rules step, before the live rules: experiments assign and write, shadow periods
evaluate. Both read the same records the live rules are about to see, at the same instant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from crmsync.errors import describe_error
from crmsync.logging import get_logger
from crmsync.model import Record
from crmsync.settings import Settings
from crmsync.store import Store

log = get_logger("crmsync.trials.cycle")


@dataclass
class TrialsOutcome:
    assigned: int = 0
    enqueued: int = 0
    shadow_evaluated: int = 0
    shadow_logged: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def before_live_rules(settings: Settings, store: Store, connection: str, changed: Sequence[tuple[str, str]],
                      now: dt.datetime) -> TrialsOutcome:
    """Experiments, then open shadow periods; a failure is logged and returned, never raised, so the
    live rules still run."""
    from crmsync.decide.runner import OBJECT_NAMES, build_context, current_rule_set, known_decision_keys
    from crmsync.sync.outbox import filter_echoes
    from crmsync.trials.experiments import run_experiments
    from crmsync.trials.shadow import run_shadow

    out = TrialsOutcome()
    try:
        live, _ = current_rule_set(settings, store)
    except Exception as exc:  # noqa: BLE001 - no rule set at all: the live step reports it
        out.errors.append(describe_error(exc))
        return out
    if live.experiments and changed:
        try:
            wanted = [(ot, sid) for ot, sid in dict.fromkeys(changed) if ot in OBJECT_NAMES]
            got = [store.get(ot, connection, sid) for ot, sid in wanted]
            records: list[Record] = filter_echoes(store, [r for r in got if r is not None and not r.deleted])
            ctx = build_context(store, [connection], now=now, known_keys=known_decision_keys(store, [connection]))
            run = run_experiments(store, live, records, ctx, connection)
            out.assigned = sum(sum(g.values()) for g in run.assigned.values())
            out.enqueued = run.enqueued
        except Exception as exc:  # noqa: BLE001 - recorded; the live rules still run
            out.errors.append(f"experiments: {describe_error(exc)}")
            log.error("experiments.failed", connection=connection, error=describe_error(exc))
    try:
        for shadow in run_shadow(store, live, connection, changed, now=now):
            out.shadow_evaluated += shadow.evaluated
            for side, n in shadow.logged.items():
                out.shadow_logged[side] = out.shadow_logged.get(side, 0) + n
    except Exception as exc:  # noqa: BLE001 - recorded; the live rules still run
        out.errors.append(f"shadow: {describe_error(exc)}")
        log.error("shadow.failed", connection=connection, error=describe_error(exc))
    return out
