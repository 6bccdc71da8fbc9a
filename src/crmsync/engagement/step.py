"""The worker's sequence step: right after the rules of a CRM cycle, so a warm lead created in
the CRM is scored, routed and enrolled within that one cycle (webhook or poll).

Pull the engagement tool's objects (incremental), decide enrolments and exits for the leads the
cycle changed (and everyone already enrolled), and drain the tool's outbox.
"""

from __future__ import annotations

from typing import Any

from crmsync.connectors import build_connector
from crmsync.engagement.runner import run_sequences
from crmsync.engagement.sync import sync_engagement
from crmsync.logging import get_logger
from crmsync.rules.sequence import current_sequence_rules

log = get_logger("crmsync.sequences")


class SequenceStep:
    name = "sequence"

    def run(self, state: Any) -> None:
        from crmsync.sync.outbox import drain

        if not state.conn.schedule.rules_after_sync:
            state.outcomes[self.name] = "skipped: rules_after_sync is off"
            return
        rules, error = current_sequence_rules(state.settings.rules_dir)
        if error is not None:
            log.error("rules.reload_failed", errors=error.splitlines(), keeping=rules.hash if rules else None)
        if rules is None:
            if error is not None:
                raise RuntimeError(error)
            state.outcomes[self.name] = "skipped: no sequence.yaml"
            return
        if not rules.applies_to(state.conn.name):
            state.outcomes[self.name] = "skipped: not one of sequence.crm_connections"
            return
        tool_names = {c.name for c in state.settings.connections}
        if rules.tool not in tool_names:
            state.outcomes[self.name] = f"skipped: sequence.tool {rules.tool!r} is not a configured connection"
            return
        if state.stopping:
            state.outcomes[self.name] = "skipped: stop requested"
            return
        tool = state.settings.connection(rules.tool)
        connector = build_connector(tool)
        try:
            sync_engagement(state.store, connector, tool.objects)
            outcome = run_sequences(state.store, state.conn.name, rules, changed=state.changed)
            pushed = drain(state.store, connector, tool, stop_event=state.stop_event)
        finally:
            connector.close()
        state.counts["enrolled"] = outcome.enrolled
        state.counts["sequence_exits"] = outcome.exited
        state.counts["sequence_pushed"] = pushed.done
