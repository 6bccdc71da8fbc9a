"""What a rule decides: one ``Decision`` per action, with a reason and an idempotency key.

The idempotency key is built from the inputs that make the action unique (connection, record id,
stage, contract end...) and never from the rule set version, so re-running the same rules, or a
reworded rule set, does not create a second task, handoff or renewal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# actions
SET_FIELDS = "set_fields"
ASSIGN_OWNER = "assign_owner"
CREATE_TASK = "create_task"
CREATE_NOTE = "create_note"
CREATE_HANDOFF = "create_handoff"
CREATE_RENEWAL = "create_renewal"
CREATE_EXPANSION = "create_expansion"  # an expansion opportunity (a deal) for a customer near its plan limit
FINDING = "finding"
TASK_BUNDLED = "task_bundled"  # a finding listed in a bundled task instead of a task of its own (log only)
CLOSE_TASK = "close_task"  # complete a crmsync task in the CRM: its finding is resolved
ACTIONS = (SET_FIELDS, ASSIGN_OWNER, CREATE_TASK, CREATE_NOTE, CREATE_HANDOFF, CREATE_RENEWAL, FINDING, TASK_BUNDLED,
           CLOSE_TASK, CREATE_EXPANSION)


@dataclass(slots=True)
class Decision:
    rule_kind: str  # scoring | routing | hygiene | handoff | renewal
    rule_name: str
    object_type: str  # deal | lead
    connection: str
    source_id: str
    action: str
    fields: dict[str, Any]
    reason: str
    idempotency_key: str
    rule_set: str = field(default="", compare=False)  # hash of the rule set that decided (traceability)

    # not frozen: creating millions of decisions per full re-evaluation must stay cheap; treat as read-only
