"""The per-row parameter work of the upsert (``store.types.format_utc``, the generated row builder)
gives exactly what the generic forms give, and a refused value still names its field."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmsync.model import UTC, Deal, ModelError, ObjectType
from crmsync.store import Store
from crmsync.store.types import format_utc
from crmsync.store.upsert import PLANS, build_params

T0 = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(UTC)))
def test_format_utc_is_the_fixed_width_iso_text(value: dt.datetime) -> None:
    text = format_utc(value)
    assert text == value.isoformat(timespec="microseconds") and len(text) == 32


def test_format_utc_converts_other_offsets_and_refuses_naive() -> None:
    plus_two = dt.datetime(2025, 1, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_utc(plus_two) == "2025-01-01T12:00:00.000000+00:00"
    with pytest.raises(ModelError, match="naive"):
        format_utc(dt.datetime(2025, 1, 1))


def _generic_row(deal: Deal, synced: str, digest: str) -> tuple[object, ...]:
    """What the row builder must produce: each column's value through its converter, in order."""
    compiled = PLANS[ObjectType.DEAL].compiled["sqlite"]
    fields = [c for c in compiled.columns if c not in ("synced_at", "content_hash")]
    values = list(compiled.field_getter(deal))
    for i, conv in compiled.converters:
        if values[i] is not None:
            values[i] = conv(values[i])
    by_name = dict(zip(fields, values, strict=True))
    return tuple(synced if c == "synced_at" else digest if c == "content_hash" else by_name[c]
                 for c in compiled.columns)


def test_row_builder_matches_the_converters_column_by_column() -> None:
    deal = Deal(connection="c", source_object="deals", source_id="1", modified_at=T0, created_at=T0,
                name="Acme \u00e9", amount=Decimal("12.50"), currency="EUR", stage_changed_at=T0,
                close_date=dt.date(2025, 6, 30), contact_ids=["7", "8"], extra={"k": Decimal("1.5")})
    plan = PLANS[ObjectType.DEAL]
    (row,) = build_params(plan, [deal], "sqlite", T0)
    assert row == _generic_row(deal, format_utc(T0), plan.content_hash(deal))
    bare = Deal(connection="c", source_object="deals", source_id="2", modified_at=T0)
    (row,) = build_params(plan, [bare], "sqlite", T0)
    assert row == _generic_row(bare, format_utc(T0), plan.content_hash(bare))


def test_a_refused_value_still_names_its_field(store: Store) -> None:
    deal = Deal(connection="c", source_object="deals", source_id="1", modified_at=T0)
    deal.close_date = T0  # type: ignore[assignment]  # a datetime where a date belongs
    with pytest.raises(ModelError) as refused:
        build_params(PLANS[ObjectType.DEAL], [deal], store.dialect, T0)
    assert refused.value.field == "close_date"
    deal.close_date = None
    deal.stage_changed_at = dt.datetime(2025, 1, 1)  # naive
    with pytest.raises(ModelError, match="naive") as refused:
        store.upsert([deal])
    assert refused.value.field == "stage_changed_at"


def test_json_text_takes_non_string_keys_and_refuses_what_it_cannot_write() -> None:
    from crmsync.store.types import json_dumps

    assert json_dumps({"a": Decimal("1.50"), "d": dt.date(2025, 1, 2)}) == '{"a":"1.50","d":"2025-01-02"}'
    assert json_dumps({1: "x", "b": [1, 2]}) == '{"1":"x","b":[1,2]}'  # keys made text, as before
    with pytest.raises(TypeError):
        json_dumps({"x": object()})
