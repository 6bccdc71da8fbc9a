"""Tables of the workflow trials (migration 0008): shadow periods and what they decided, and
experiment assignments.

* ``shadow_periods``: a rule-set version (``rule_set_versions``) evaluated beside the live set
  between ``starts_at`` and ``ends_at`` (UTC). ``stopped_at`` ends it early.
* ``shadow_decisions``: the decisions both sides made during a period (``side`` live | shadow),
  each idempotency key once per side; never turned into outbox rows.
* ``shadow_records``: every record a period evaluated, with its owner and score when first seen
  (what a side that decided nothing leaves in place).
* ``experiment_assignments``: the variant (or ``holdout``) a lead or deal was put in, once.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, UniqueConstraint
from sqlmodel import SQLModel

from crmsync.store.types import JSONDoc, UTCDateTime

# the store's one metadata (``store.tables.metadata`` is the same object; importing it would be a cycle)
metadata = SQLModel.metadata

_ID = BigInteger().with_variant(Integer(), "sqlite")

shadow_periods = Table(
    "shadow_periods", metadata,
    Column("id", Integer(), primary_key=True),
    Column("version_id", Integer(), nullable=False),
    Column("rule_set_hash", String(), nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("created_by", String(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("note", Text(), nullable=True),
    Column("stopped_at", UTCDateTime(), nullable=True),
)

shadow_decisions = Table(
    "shadow_decisions", metadata,
    Column("id", _ID, primary_key=True),
    Column("period_id", Integer(), nullable=False),
    Column("side", String(), nullable=False),  # live | shadow
    Column("connection", String(), nullable=False),
    Column("object_type", String(), nullable=False),
    Column("source_id", String(), nullable=False),
    Column("rule_kind", String(), nullable=False),
    Column("rule_name", String(), nullable=False),
    Column("action", String(), nullable=False),
    Column("fields", JSONDoc(), nullable=False),
    Column("reason", Text(), nullable=True),
    Column("idempotency_key", String(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("period_id", "side", "idempotency_key", name="uq_shadow_decisions_key"),
    Index("ix_shadow_decisions_record", "period_id", "connection", "object_type", "source_id"),
)

shadow_records = Table(
    "shadow_records", metadata,
    Column("period_id", Integer(), primary_key=True),
    Column("connection", String(), primary_key=True),
    Column("object_type", String(), primary_key=True),
    Column("source_id", String(), primary_key=True),
    Column("base", JSONDoc(), nullable=False),  # owner_id, score, grade when first evaluated
    Column("first_evaluated_at", UTCDateTime(), nullable=False),
    Column("last_evaluated_at", UTCDateTime(), nullable=False),
)

experiment_assignments = Table(
    "experiment_assignments", metadata,
    Column("experiment", String(), primary_key=True),
    Column("connection", String(), primary_key=True),
    Column("object_type", String(), primary_key=True),
    Column("source_id", String(), primary_key=True),
    Column("variant", String(), nullable=False),  # a variant's name, or "holdout"
    Column("assigned_at", UTCDateTime(), nullable=False),
    Column("rule_set_hash", String(), nullable=True),
    Index("ix_experiment_assignments_variant", "experiment", "variant"),
)

WORKFLOW_TABLES = (shadow_periods, shadow_decisions, shadow_records, experiment_assignments)
