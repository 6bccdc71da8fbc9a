"""The ``sequence`` rule kind: which outreach sequence a lead or contact enters, and when it leaves.

Pure: a ``Person`` (the CRM record with its routed owner and score), the ``Membership``s it has in
the engagement tool, and a ``SequenceContext`` (sequence and mailbox ids by name and email, the keys
already decided) go in; ``Decision``s come out, each with a reason, logged like every rule.

- **Which sequence**: rules in file order, grouped by ``kind`` (inbound, outbound, nurture, ...); for
  each kind the first rule whose ``when`` matches (warm or cold, source, segment, score range)
  picks the sequence. Warm = the record's source is one of ``warm_sources``.
- **From which mailbox**: the routed owner's (the owner's email matched to the tool's mailboxes);
  an owner without a mailbox is a finding, not an enrolment from someone else's mailbox.
- **Exactly once per person and sequence**: the idempotency key is (tool, CRM connection, object,
  record id, sequence id), never the rule-set hash; a person who was ever in that sequence (even
  finished) is not enrolled in it again; the connector also looks up before it creates.
- **One per kind**: a person with an active (or still queued) membership of a kind enters no other
  sequence of that kind.
- **Exits**: an active membership is finished on reply, meeting booked, stage (status) change since
  enrolment, opt-out, or owner change since enrolment (each can be switched off with ``exit_on``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crmsync.rules.decisions import FINDING, Decision

ENROL_SEQUENCE = "enrol_sequence"
EXIT_SEQUENCE = "exit_sequence"
ExitReason = Literal["reply", "meeting", "stage_change", "opt_out", "owner_change"]
EXIT_ORDER: tuple[ExitReason, ...] = ("opt_out", "reply", "meeting", "stage_change", "owner_change")
ACTIVE = frozenset({"active", "paused", "pending"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class When(_Strict):
    warm: bool | None = None
    sources: list[str] | None = None
    segments: list[str] | None = None
    min_score: Decimal | None = None
    max_score: Decimal | None = None


class SequenceRuleSpec(_Strict):
    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    sequence: str = Field(min_length=1)  # the sequence's name in the engagement tool
    when: When = Field(default_factory=When)


class SequenceSpec(_Strict):
    tool: str = Field(min_length=1)  # the engagement connection (kind outreach)
    crm_connections: list[str] = Field(default_factory=list)  # empty: every CRM connection
    objects: list[Literal["lead"]] = Field(default=["lead"])  # contacts: not yet
    warm_sources: list[str] = Field(default_factory=list)
    # segment by employee count: the largest threshold the record reaches
    segments: dict[str, int] = Field(default_factory=lambda: {"enterprise": 1000, "midmarket": 200, "smb": 0})
    skip_statuses: list[str] = Field(default_factory=list)
    exit_on: list[ExitReason] = Field(default_factory=lambda: list(EXIT_ORDER))
    meeting_outcomes: list[str] = Field(default_factory=lambda: ["Meeting Booked"])
    sequences: list[SequenceRuleSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> SequenceSpec:
        names = [r.name for r in self.sequences]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"sequence rule names must be unique; repeated: {', '.join(dup)}")
        return self


class SequenceFile(_Strict):
    version: Literal[1] = 1
    sequence: SequenceSpec


@dataclass(frozen=True, slots=True)
class Person:
    connection: str
    object_type: str  # lead | contact
    source_id: str
    email: str | None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    source: str | None = None
    status: str | None = None
    employees: int | None = None
    segment: str | None = None  # an account's segment wins over the employee thresholds
    score: Decimal | None = None
    owner_id: str | None = None
    owner_email: str | None = None
    opted_out: bool = False


@dataclass(frozen=True, slots=True)
class Membership:
    sequence_id: str
    state: str  # active | paused | pending (queued, not pushed yet) | finished | ...
    state_id: str | None = None
    kind: str | None = None  # the rule kind of its sequence (None: a sequence no rule names)
    replied: bool = False
    meeting: bool = False
    enrolled_owner_id: str | None = None  # as crmsync enrolled it (None: enrolled by someone else)
    enrolled_status: str | None = None


@dataclass(slots=True)
class SequenceContext:
    now: dt.datetime
    sequence_ids: Mapping[str, str]  # sequence name (lower case) -> id in the tool
    mailbox_ids: Mapping[str, str]  # mailbox email (lower case) -> id
    known_keys: Container[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class CompiledSequenceRules:
    spec: SequenceSpec
    hash: str

    @property
    def tool(self) -> str:
        return self.spec.tool

    def applies_to(self, connection: str) -> bool:
        return not self.spec.crm_connections or connection in self.spec.crm_connections

    def kind_of(self, sequence_name: str | None) -> str | None:
        wanted = (sequence_name or "").strip().lower()
        return next((r.kind for r in self.spec.sequences if r.sequence.strip().lower() == wanted), None)

    # --- evaluation -------------------------------------------------------------------------------
    def is_warm(self, person: Person) -> bool:
        warm = {s.lower() for s in self.spec.warm_sources}
        return (person.source or "").lower() in warm

    def segment_of(self, person: Person) -> str | None:
        if person.segment:
            return person.segment.lower()
        if person.employees is None:
            return None
        reached = [(n, name) for name, n in self.spec.segments.items() if person.employees >= n]
        return max(reached)[1].lower() if reached else None

    def _matches(self, rule: SequenceRuleSpec, person: Person, warm: bool) -> tuple[bool, str]:
        w, why = rule.when, []
        if w.warm is not None:
            if w.warm != warm:
                return False, ""
            why.append("warm" if warm else "cold")
        if w.sources is not None:
            if (person.source or "").lower() not in {s.lower() for s in w.sources}:
                return False, ""
            why.append(f"source {person.source}")
        if w.segments is not None:
            seg = self.segment_of(person)
            if seg not in {s.lower() for s in w.segments}:
                return False, ""
            why.append(f"segment {seg}")
        if w.min_score is not None or w.max_score is not None:
            if person.score is None:
                return False, ""
            if w.min_score is not None and person.score < w.min_score:
                return False, ""
            if w.max_score is not None and person.score > w.max_score:
                return False, ""
            bounds = " and ".join(b for b in (f">= {w.min_score}" if w.min_score is not None else "",
                                              f"<= {w.max_score}" if w.max_score is not None else "") if b)
            why.append(f"score {person.score} {bounds}")
        return True, ", ".join(why) or "always"

    def evaluate(self, person: Person, memberships: Sequence[Membership], ctx: SequenceContext) -> list[Decision]:
        out: list[Decision] = []
        pkey = f"{self.tool}:{person.connection}:{person.object_type}:{person.source_id}"
        busy: set[str] = set()
        for m in memberships:
            if m.state not in ACTIVE:
                continue
            reason = self._exit_reason(person, m)
            if reason is not None and m.state_id is not None:
                key = f"seqexit:{pkey}:{m.sequence_id}:{m.state_id}"
                if key not in ctx.known_keys:
                    out.append(self._decision(person, "exit", EXIT_SEQUENCE, {
                        "tool": self.tool, "state_id": m.state_id, "sequence_id": m.sequence_id, "exit": reason[0]},
                        f"exit sequence {m.sequence_id} (state {m.state_id}): {reason[1]}", key))
                continue
            if m.kind is not None:
                busy.add(m.kind)
        if not person.email:
            return out
        if person.opted_out or (person.status or "") in self.spec.skip_statuses:
            return out
        ever = {m.sequence_id for m in memberships}
        warm = self.is_warm(person)
        for rule in self.spec.sequences:
            if rule.kind in busy:
                continue
            ok, why = self._matches(rule, person, warm)
            if not ok:
                continue
            busy.add(rule.kind)  # the first matching rule of a kind decides for the kind
            sequence_id = ctx.sequence_ids.get(rule.sequence.strip().lower())
            if sequence_id is None:
                self._finding(out, person, rule, ctx, f"sequence {rule.sequence!r} does not exist in {self.tool}")
                continue
            if sequence_id in ever:
                continue  # once per person and sequence, even after it finished
            mailbox = ctx.mailbox_ids.get((person.owner_email or "").lower()) if person.owner_email else None
            if mailbox is None:
                owner = person.owner_email or person.owner_id or "no owner"
                self._finding(out, person, rule, ctx, f"the routed owner ({owner}) has no mailbox in {self.tool}")
                continue
            key = f"seq:{pkey}:{sequence_id}"
            if key in ctx.known_keys:
                continue
            fields = {"tool": self.tool, "sequence_id": sequence_id, "sequence": rule.sequence, "kind": rule.kind,
                      "mailbox_id": mailbox, "owner_id": person.owner_id, "owner_email": person.owner_email,
                      "status": person.status, "email": person.email, "first_name": person.first_name,
                      "last_name": person.last_name, "company": person.company, "title": person.title}
            out.append(self._decision(person, rule.name, ENROL_SEQUENCE, fields,
                                      f"{why} -> sequence {rule.sequence!r} (kind {rule.kind}) from the routed "
                                      f"owner's mailbox {person.owner_email} (mailbox {mailbox})", key))
        return out

    def _exit_reason(self, person: Person, m: Membership) -> tuple[ExitReason, str] | None:
        on = set(self.spec.exit_on)
        checks: dict[ExitReason, tuple[bool, str]] = {
            "opt_out": (person.opted_out, "the person opted out"),
            "reply": (m.replied, "the person replied"),
            "meeting": (m.meeting, "a meeting was booked"),
            "stage_change": (m.enrolled_owner_id is not None and (person.status or None) != (m.enrolled_status or None),
                             f"status changed from {m.enrolled_status!r} to {person.status!r} since enrolment"),
            "owner_change": (m.enrolled_owner_id is not None and person.owner_id != m.enrolled_owner_id,
                             f"owner changed from {m.enrolled_owner_id} to {person.owner_id} since enrolment"),
        }
        for reason in EXIT_ORDER:
            hit, text = checks[reason]
            if reason in on and hit:
                return reason, text
        return None

    def _finding(self, out: list[Decision], person: Person, rule: SequenceRuleSpec, ctx: SequenceContext,
                 text: str) -> None:
        key = f"seqskip:{self.tool}:{person.connection}:{person.object_type}:{person.source_id}:{rule.name}:" \
              f"{ctx.now.date().isoformat()}"
        if key not in ctx.known_keys:
            out.append(self._decision(person, rule.name, FINDING, {"finding": "sequence_not_enrolled"},
                                      f"not enrolled by {rule.name}: {text}", key))

    def _decision(self, person: Person, name: str, action: str, fields: Mapping[str, object], reason: str,
                  key: str) -> Decision:
        return Decision("sequence", name, person.object_type, person.connection, person.source_id, action,
                        dict(fields), reason, key, self.hash)


class SequenceRuleError(ValueError):
    """``sequence.yaml`` is invalid; the message names the file, line and key."""


def load_sequence_rules(directory: str | Path) -> CompiledSequenceRules | None:
    """``sequence.yaml`` of a rule directory, compiled; None when the directory has none."""
    from crmsync.rules.loader import RuleFileError, _pydantic_issues, parse_yaml, read_rule_file

    path = Path(directory) / "sequence.yaml"
    if not path.exists():
        return None
    try:
        data, lines = parse_yaml(read_rule_file(path), str(path))
    except RuleFileError as exc:
        raise SequenceRuleError(str(exc)) from None
    if not isinstance(data, dict):
        raise SequenceRuleError(f"{path}:1: expected a mapping at the top of the file")
    try:
        spec = SequenceFile.model_validate(data)
    except ValidationError as exc:
        raise SequenceRuleError("\n".join(str(i) for i in _pydantic_issues(exc, str(path), lines))) from None
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return CompiledSequenceRules(spec.sequence, digest)


_last_good: dict[str, CompiledSequenceRules] = {}


def current_sequence_rules(directory: str | Path) -> tuple[CompiledSequenceRules | None, str | None]:
    """The directory's sequence rules and the reload error, if any: a broken ``sequence.yaml`` leaves the
    last good version of this process running (like every rule file), or none if there never was one."""
    key = str(Path(directory).resolve())
    try:
        rules = load_sequence_rules(directory)
    except SequenceRuleError as exc:
        return _last_good.get(key), str(exc)
    if rules is None:
        _last_good.pop(key, None)
    else:
        _last_good[key] = rules
    return rules, None
