"""The ``sequence`` rule kind, pure: which sequence, from which mailbox, once, one per kind, exits."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from crmsync.rules.decisions import FINDING
from crmsync.rules.sequence import (
    ENROL_SEQUENCE,
    EXIT_SEQUENCE,
    CompiledSequenceRules,
    Membership,
    Person,
    SequenceContext,
    SequenceRuleError,
    load_sequence_rules,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)
SEQ = {"inbound - warm follow-up": "1", "outbound - cold intro": "2", "outbound - enterprise": "3",
       "nurture - quarterly": "4"}
MAILBOXES = {"ana@acme.test": "11", "bo@acme.test": "12"}


@pytest.fixture(scope="module")
def rules() -> CompiledSequenceRules:
    loaded = load_sequence_rules(ROOT / "config" / "rules")
    assert loaded is not None
    return loaded


def ctx(known: frozenset[str] = frozenset()) -> SequenceContext:
    return SequenceContext(NOW, SEQ, MAILBOXES, known)


def lead(**kw: object) -> Person:
    base: dict[str, object] = {"connection": "sf", "object_type": "lead", "source_id": "L1", "email": "x@y.test",
                               "source": "Web", "status": "New", "employees": 50, "score": Decimal(60),
                               "owner_id": "O1", "owner_email": "ana@acme.test"}
    base.update(kw)
    return Person(**base)  # type: ignore[arg-type]


def test_warm_inbound_lead_enters_the_warm_sequence_from_its_owners_mailbox(rules: CompiledSequenceRules) -> None:
    (d,) = rules.evaluate(lead(), [], ctx())
    assert d.action == ENROL_SEQUENCE and d.rule_kind == "sequence" and d.rule_name == "inbound_warm"
    assert d.fields["sequence_id"] == "1" and d.fields["mailbox_id"] == "11"
    assert d.idempotency_key == "seq:sandbox-outreach:sf:lead:L1:1"
    assert "warm" in d.reason and "ana@acme.test" in d.reason and d.rule_set == rules.hash


@pytest.mark.parametrize(("employees", "sequence"), [(5000, "3"), (50, "2")])
def test_cold_leads_by_segment(rules: CompiledSequenceRules, employees: int, sequence: str) -> None:
    (d,) = rules.evaluate(lead(source="Outbound", employees=employees), [], ctx())
    assert d.fields["sequence_id"] == sequence
    assert ("segment enterprise" in d.reason) == (sequence == "3")


def test_enrolment_is_decided_once(rules: CompiledSequenceRules) -> None:
    (d,) = rules.evaluate(lead(), [], ctx())
    assert rules.evaluate(lead(), [], ctx(frozenset({d.idempotency_key}))) == []
    # and never again into the same sequence after it finished, even with the key forgotten
    done = Membership("1", "finished", "900", "first_touch")
    assert rules.evaluate(lead(), [done], ctx()) == []


def test_never_two_sequences_of_one_kind(rules: CompiledSequenceRules) -> None:
    other = Membership("2", "active", "901", "first_touch")
    assert rules.evaluate(lead(), [other], ctx()) == []
    queued = Membership("2", "pending", None, "first_touch")  # decided, not pushed yet
    assert rules.evaluate(lead(), [queued], ctx()) == []
    unrelated = Membership("4", "active", "902", None)  # a sequence no rule names: another kind
    assert [d.fields["sequence_id"] for d in rules.evaluate(lead(), [unrelated], ctx())] == ["1"]


def test_owner_without_a_mailbox_is_a_finding_not_someone_elses_mailbox(rules: CompiledSequenceRules) -> None:
    (d,) = rules.evaluate(lead(owner_email="nobody@acme.test"), [], ctx())
    assert d.action == FINDING and "no mailbox" in d.reason
    (d,) = rules.evaluate(lead(owner_id=None, owner_email=None), [], ctx())
    assert d.action == FINDING and "no owner" in d.reason


def test_no_enrolment_without_email_opted_out_or_skipped_status(rules: CompiledSequenceRules) -> None:
    assert rules.evaluate(lead(email=None), [], ctx()) == []
    assert rules.evaluate(lead(opted_out=True), [], ctx()) == []
    assert rules.evaluate(lead(status="Unqualified"), [], ctx()) == []


@pytest.mark.parametrize(("person", "member", "why"), [
    ({}, {"replied": True}, "reply"),
    ({}, {"meeting": True}, "meeting"),
    ({"status": "Working"}, {}, "stage_change"),
    ({"owner_id": "O2", "owner_email": "bo@acme.test"}, {}, "owner_change"),
    ({"opted_out": True}, {"replied": True}, "opt_out"),
])
def test_exits(rules: CompiledSequenceRules, person: dict[str, object], member: dict[str, object], why: str) -> None:
    m = Membership("1", "active", "900", "first_touch", enrolled_owner_id="O1", enrolled_status="New",
                   **member)  # type: ignore[arg-type]
    out = rules.evaluate(lead(**person), [m], ctx())
    exits = [d for d in out if d.action == EXIT_SEQUENCE]
    assert len(exits) == 1 and exits[0].fields["exit"] == why and exits[0].fields["state_id"] == "900"
    # once out, the person is not put into another sequence of that kind by the same pass for a reply;
    # "1" was theirs already, so nothing else of kind first_touch is chosen (first matching rule decides)
    assert not [d for d in out if d.action == ENROL_SEQUENCE]
    assert rules.evaluate(lead(**person), [m], ctx(frozenset({exits[0].idempotency_key}))) == [
        d for d in out if d.action != EXIT_SEQUENCE]


def test_someone_elses_enrolment_is_not_exited_on_owner_or_stage(rules: CompiledSequenceRules) -> None:
    theirs = Membership("1", "active", "900", "first_touch")  # enrolled in the tool by a rep
    assert rules.evaluate(lead(owner_id="O2", status="Working"), [theirs], ctx()) == []


def test_bad_file_names_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "sequence.yaml").write_text(
        "version: 1\nsequence:\n  tool: t\n  sequences:\n    - name: a\n      kind: k\n      sequence: S\n"
        "      when: {min_score: lots}\n", encoding="utf-8")
    with pytest.raises(SequenceRuleError) as err:
        load_sequence_rules(tmp_path)
    text = str(err.value)
    assert "sequence.yaml:8" in text and "min_score" in text
    assert load_sequence_rules(tmp_path / "missing") is None


def test_a_broken_file_keeps_the_last_good_rules(tmp_path: Path) -> None:
    from crmsync.rules.sequence import current_sequence_rules

    good = (ROOT / "config/rules/sequence.yaml").read_text(encoding="utf-8")
    (tmp_path / "sequence.yaml").write_text(good, encoding="utf-8")
    first, error = current_sequence_rules(tmp_path)
    assert first is not None and error is None
    (tmp_path / "sequence.yaml").write_text(good.replace("kind: first_touch", "kind: [oops]", 1), encoding="utf-8")
    kept, error = current_sequence_rules(tmp_path)
    assert kept is first and error is not None and "sequence.yaml" in error
