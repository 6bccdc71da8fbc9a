"""The generated ``to_record`` functions (``connectors.mapping_code``) against the step loop they
replaced (``mapping_oracle.reference_to_record``): the same record (``repr``: every field, its type,
``extra``'s key order) or the same error, for every connector's field tables, on layouts the
generator specialises and on the layout-free path; and Pipedrive's ``Reader`` against
``prepare`` + the step loop, custom-field name collisions included."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mapping_oracle import reference_to_record

from crmsync.connectors import converters as m
from crmsync.connectors import mapping_code
from crmsync.connectors.converters import as_date, as_decimal, as_timestamp
from crmsync.connectors.hubspot.mapping import MAPPINGS as HUBSPOT
from crmsync.connectors.mapping import FieldMap, ObjectMapping
from crmsync.connectors.pipedrive import mapping as pipedrive_mapping
from crmsync.connectors.pipedrive.mapping import MAPPINGS as PIPEDRIVE
from crmsync.connectors.pipedrive.mapping import Reader, prepare
from crmsync.connectors.salesforce.mapping import OBJECTS as SALESFORCE
from crmsync.connectors.salesforce.mapping import as_day_start
from crmsync.model import ModelError, ObjectType, utc

ALL: dict[str, ObjectMapping] = {
    **{f"hubspot.{k}": v for k, v in HUBSPOT.items()},
    **{f"pipedrive.{k}": v for k, v in PIPEDRIVE.items()},
    **{f"salesforce.{k}": spec.mapping for k, spec in SALESFORCE.items()},
}
# config overrides as a connection may add them: onto extra (with a converter) and onto a canonical
# field already mapped from another source (both then write it: the later non-None one wins)
OVERRIDDEN: dict[str, ObjectMapping] = {
    "pipedrive.deals+config": PIPEDRIVE["deals"].with_overrides(
        {"score_hash": "extra.score:decimal", "alt_title": "name", "due": "close_date:date"}),
    "salesforce.deals+config": SALESFORCE["deals"].mapping.with_overrides(
        {"Custom_Score__c": "extra.score:decimal", "Alt_Amount__c": "amount:decimal"}),
}

values = st.one_of(
    st.none(), st.just(""), st.text(max_size=6), st.integers(-3, 10**6), st.booleans(),
    st.sampled_from(["2024-02-29", "2024-02-30", "2024-02-29T10:00:00Z", "2024-02-29T10:00:00+01:00",
                     "2024-02-29T10:00:00.123Z", "2024-02-29 10:00:00", "1709200800000", "20240229",
                     "true", "false", "1", "0", "won", "lost", "open", "12.50", "1e3", "NaN", "abc",
                     "monthly", "annually"]),
    st.decimals(allow_nan=True, allow_infinity=True, places=2), st.floats(allow_nan=False, width=32),
    st.dictionaries(st.sampled_from(["id", "value", "probability", "isClosed", "name"]),
                    st.one_of(st.none(), st.integers(0, 9), st.text(max_size=3)), max_size=3),
    st.lists(st.integers(0, 5), max_size=2),
)
GOOD_STAMP = st.sampled_from(["2024-01-02T03:04:05Z", "2024-01-02T03:04:05.250Z", "2024-01-02T04:04:05+01:00",
                              "2024-01-02T03:04:05+0000", 1704164645000])
STAMP = st.one_of(GOOD_STAMP, st.sampled_from(["", None, "garbage", "2024-01-02T03:04:05"]))
# per converter, values it takes (a row is mostly valid, so records come out and are compared too)
VALID: dict[Any, st.SearchStrategy[Any]] = {
    m.as_str: st.one_of(st.none(), st.just(""), st.text(max_size=6), st.integers(0, 99)),
    m.as_id: st.one_of(st.none(), st.integers(0, 10**6), st.text("ab12", max_size=4),
                       st.fixed_dictionaries({"id": st.integers(1, 9)})),
    m.as_int: st.one_of(st.none(), st.integers(-5, 10**6), st.sampled_from(["12", "3.0", ""])),
    m.as_decimal: st.one_of(st.none(), st.integers(-5, 10**6), st.decimals(places=2, allow_nan=False,
                                                                           allow_infinity=False),
                            st.sampled_from(["12.50", "1e3", "", "0.1"])),
    m.as_bool: st.one_of(st.none(), st.booleans(), st.sampled_from(["true", "false", "1", "0", 0, 1])),
    m.as_timestamp: st.one_of(st.none(), GOOD_STAMP),
    m.as_date: st.one_of(st.none(), st.sampled_from(["2024-02-29", "2024-02-29T23:00:00-05:00", "", "2024-03-01"])),
}
VALID[m.as_percent] = VALID[m.as_decimal]
VALID[as_day_start] = VALID[m.as_date]
VALID[pipedrive_mapping._not] = VALID[m.as_bool]
OTHER = st.one_of(st.none(), st.text(max_size=6), st.integers(0, 99), st.sampled_from(["won", "lost", "open"]))


def value_for(convert: Any, dirty: bool) -> st.SearchStrategy[Any]:
    """A value the converter takes; in a dirty row, sometimes anything (a refusal must match too)."""
    valid = VALID.get(convert, OTHER)
    return st.one_of(valid, valid, valid, values) if dirty else valid


def source_keys(mapping: ObjectMapping) -> list[str]:
    keys = [mapping.id_field, mapping.modified_field, *(f.source for f in mapping.fields)]
    keys += [k for k in (mapping.created_field, mapping.deleted_field) if k]
    return list(dict.fromkeys(k.split(".", 1)[0] for k in keys))


@st.composite
def rows(draw: st.DrawFn, mapping: ObjectMapping) -> dict[str, Any]:
    """A native row: the mapped keys (some left out, some nested), a few unclaimed ones, shuffled."""
    converters = {f.source: f.convert for f in mapping.fields}
    if mapping.deleted_field:
        converters[mapping.deleted_field] = m.as_bool
    dirty = draw(st.sampled_from([False, False, True]))  # a third of the rows may hold bad values
    row: dict[str, Any] = {}
    for key in source_keys(mapping):
        if draw(st.sampled_from([False] * 9 + [True])):
            continue  # a key the answer lacks
        if key == mapping.id_field:
            row[key] = draw(st.one_of(st.integers(0, 99), st.sampled_from(["a1", "", None]) if dirty else st.just("a1")))
        elif key in (mapping.modified_field, mapping.created_field):
            row[key] = draw(st.one_of(GOOD_STAMP, STAMP) if dirty else GOOD_STAMP)
        elif any(f.source.startswith(key + ".") for f in mapping.fields):
            row[key] = draw(st.one_of(st.fixed_dictionaries({}, optional={
                f.source.split(".", 1)[1]: value_for(f.convert, dirty)
                for f in mapping.fields if f.source.startswith(key + ".")}), values))
        else:
            row[key] = draw(value_for(converters.get(key), dirty))
    for name in draw(st.lists(st.sampled_from(["zeta", "alpha", "status", "score", "Status", "attributes"]),
                              max_size=3, unique=True)):
        row[name] = draw(values)  # unclaimed keys, and names a mapped extra also uses
    order = draw(st.permutations(list(row)))
    return {key: row[key] for key in order}


def outcome(fn: Callable[[], Any]) -> tuple[str, str]:
    """The record's repr, or the error's type and message (any error: e.g. as_int lets a Decimal
    infinity's OverflowError through, which both must do alike)."""
    try:
        return "record", repr(fn())
    except Exception as exc:  # noqa: BLE001 - compared, not handled
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("name", sorted({**ALL, **OVERRIDDEN}))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_functions_map_as_the_step_loop_did(name: str, data: st.DataObject) -> None:
    mapping = {**ALL, **OVERRIDDEN}[name]
    row = data.draw(rows(mapping))
    expected = outcome(lambda: reference_to_record(mapping, "c", row))
    assert outcome(lambda: mapping.to_record("c", row)) == expected  # specialised to this row's layout
    assert outcome(lambda: mapping.compiled.generic()("c", row, None)) == expected  # layout-free
    event(f"{name}: {expected[0]}")  # hypothesis --hypothesis-show-statistics: records are compared too


def test_rows_of_one_layout_share_one_generated_function() -> None:
    mapping = ObjectMapping("stages", ObjectType.STAGE, "stages", "id", "updatedAt", (FieldMap("label", "name"),))
    for n in range(3):
        mapping.to_record("c", {"id": n + 1, "updatedAt": "2024-01-01T00:00:00Z", "label": f"s{n}"})
    mapping.to_record("c", {"label": "x", "id": 9, "updatedAt": "2024-01-01T00:00:00Z"})
    assert len(mapping.compiled._by_layout) == 2


def test_past_max_layouts_rows_take_the_layout_free_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mapping_code, "MAX_LAYOUTS", 2)
    mapping = ObjectMapping("stages", ObjectType.STAGE, "stages", "id", "updatedAt", (FieldMap("label", "name"),))
    for n in range(4):
        raw = {"id": n + 1, "updatedAt": "2024-01-01T00:00:00Z", "label": f"s{n}", f"k{n}": n}
        assert repr(mapping.to_record("c", raw)) == repr(reference_to_record(mapping, "c", raw))
    assert len(mapping.compiled._by_layout) == 2
    assert mapping.compiled._generic is not None


# --- the semantics the brief names, each on the generated code --------------------------------------
DEAL = {"id": 7, "update_time": "2026-01-02T03:04:05Z", "add_time": "2026-01-01T00:00:00Z", "title": "Big",
        "value": 1200, "status": "open", "is_deleted": False, "expected_close_date": "2026-03-01"}


@pytest.mark.parametrize(("field", "bad"), [("value", "lots"), ("expected_close_date", "2026-02-30"),
                                            ("update_time", "yesterday"), ("add_time", "2026-13-01T00:00:00Z"),
                                            ("probability", "high"), ("is_deleted", "maybe")])
def test_a_refused_value_names_its_field(field: str, bad: str) -> None:
    with pytest.raises(ModelError, match=rf"^{field}: "):
        PIPEDRIVE["deals"].to_record("pd", {**DEAL, field: bad})


def test_a_native_field_wins_over_a_mapped_extra_of_its_name_in_the_mapped_place() -> None:
    mapping = ObjectMapping("deals", ObjectType.DEAL, "deals", "id", "update_time", (
        FieldMap("title", "name"), FieldMap("stage_label", "extra.stage"), FieldMap("note", "extra.note")))
    raw = {"id": 1, "update_time": "2026-01-02T03:04:05Z", "zeta": 0, "stage": "native", "stage_label": "mapped",
           "note": "n"}
    extra = mapping.to_record("c", raw).extra
    assert list(extra) == ["stage", "note", "zeta"] and extra["stage"] == "native" and extra["note"] == "n"


def test_none_never_replaces_a_default() -> None:
    # the record's default (is_closed False, contact_ids []), the mapping's default (pipeline_id), a
    # value an earlier mapping of the same target gave (name)
    mapping = ObjectMapping("deals", ObjectType.DEAL, "deals", "id", "update_time", (
        FieldMap("title", "name"), FieldMap("label", "name"), FieldMap("closed", "is_closed", as_date),
        FieldMap("pipeline", "pipeline_id")), defaults={"pipeline_id": "default", "currency": None})
    deal = mapping.to_record("c", {"id": 1, "update_time": "2026-01-02T03:04:05Z", "title": "T", "label": None,
                                   "closed": None, "pipeline": ""})
    assert deal.name == "T" and deal.is_closed is False and deal.contact_ids == []  # type: ignore[attr-defined]
    assert deal.pipeline_id == "default" and deal.currency is None  # type: ignore[attr-defined]
    later = mapping.to_record("c", {"id": 1, "update_time": "2026-01-02T03:04:05Z", "title": "T", "label": "L"})
    assert later.name == "L"  # type: ignore[attr-defined]


def test_a_target_the_record_lacks_fails_only_when_it_has_a_value() -> None:
    mapping = ObjectMapping("stages", ObjectType.STAGE, "stages", "id", "updatedAt", (
        FieldMap("label", "name"), FieldMap("colour", "colour")))
    raw = {"id": 3, "updatedAt": "2024-01-01T00:00:00Z", "label": "Won"}
    assert mapping.to_record("c", raw).name == "Won"  # type: ignore[attr-defined]
    with pytest.raises(ModelError, match=r"^stages 3: .*unexpected keyword argument 'colour'"):
        mapping.to_record("c", {**raw, "colour": "red"})
    with pytest.raises(ModelError, match=r"^stages 3: .*missing 1 required keyword-only argument: 'name'"):
        mapping.to_record("c", {**raw, "label": ""})  # Stage.name has no default


def test_a_missing_id_or_stamp_is_refused_with_the_objects_name() -> None:
    with pytest.raises(ModelError, match=r"^deals: missing id$"):
        PIPEDRIVE["deals"].to_record("pd", {**DEAL, "id": ""})
    with pytest.raises(ModelError, match=r"^deals 7: missing update_time$"):
        PIPEDRIVE["deals"].to_record("pd", {**DEAL, "update_time": None})


def test_config_overrides_reach_the_generated_code() -> None:
    mapping = PIPEDRIVE["deals"].with_overrides({"title": "extra.headline", "score": "extra.score:decimal",
                                                 "closing": "close_date:timestamp"})
    deal = mapping.to_record("pd", {**DEAL, "score": "12.5", "closing": "2026-04-01T10:00:00Z"})
    assert deal.name is None and deal.extra["headline"] == "Big"  # type: ignore[attr-defined]
    assert deal.extra["score"] == Decimal("12.5")
    assert deal.close_date == dt.datetime(2026, 4, 1, 10, tzinfo=dt.UTC)  # type: ignore[attr-defined]
    with pytest.raises(ModelError, match=r"^score: "):
        mapping.to_record("pd", {**DEAL, "score": "twelve"})


def test_fast_paths_agree_with_their_converters() -> None:
    """The common cases written out in the generated code give what the converters give."""
    mapping = ObjectMapping("deals", ObjectType.DEAL, "deals", "id", "update_time", (
        FieldMap("a", "amount", as_decimal), FieldMap("d", "close_date", as_date),
        FieldMap("s", "stage_changed_at", as_timestamp)))
    for a, d, s in [(5, "2024-02-29", "2024-02-29T10:00:00Z"), (True, "2024-02-29T23:00:00-05:00", 1709200800000),
                    (Decimal("1.50"), "20240229", "2024-02-29T10:00:00+01:00")]:
        raw = {"id": 1, "update_time": "2026-01-02T03:04:05Z", "a": a, "d": d, "s": s}
        assert outcome(lambda raw=raw: mapping.to_record("c", raw)) == \
            outcome(lambda raw=raw: reference_to_record(mapping, "c", raw))


# --- Pipedrive: flatten folded into the generated code ----------------------------------------------
NAMES = {"h_type": "deal_type", "h_source": "lead_source", "h_title": "title", "h_a": "dup", "h_b": "dup",
         "h_score": "crmsync_score", "id": "ID"}
CUSTOM_KEYS = ["h_type", "h_source", "h_title", "h_a", "h_b", "h_score", "h_unnamed", "status", "dup"]


@st.composite
def pipedrive_rows(draw: st.DrawFn, mapping: ObjectMapping) -> dict[str, Any]:
    row = draw(rows(mapping))
    shape = draw(st.sampled_from(["dict", "dict", "dict", "none", "absent", "list"]))
    if shape == "dict":
        keys = draw(st.lists(st.sampled_from(CUSTOM_KEYS), unique=True, max_size=len(CUSTOM_KEYS)))
        row["custom_fields"] = {key: draw(values) for key in keys}
    elif shape == "none":
        row["custom_fields"] = None
    elif shape == "list":
        row["custom_fields"] = ["not", "a", "dict"]
    return row


@pytest.mark.parametrize("object_name", sorted(PIPEDRIVE))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_pipedrive_reader_maps_as_prepare_and_the_step_loop_did(object_name: str, data: st.DataObject) -> None:
    mapping = PIPEDRIVE[object_name].with_overrides({"crmsync_score": "extra.crmsync_score:decimal"}) \
        if object_name == "deals" else PIPEDRIVE[object_name]
    row = data.draw(pipedrive_rows(mapping))
    reader = Reader(object_name, mapping, NAMES)
    expected = outcome(lambda: reference_to_record(mapping, "pd", prepare(object_name, row, NAMES)))
    assert outcome(lambda: reader.to_record("pd", row)) == expected


def test_custom_field_names_colliding_with_native_keys_keep_their_hash_key() -> None:
    reader = Reader("deals", PIPEDRIVE["deals"], NAMES)
    raw: Mapping[str, Any] = {**DEAL, "custom_fields": {"h_title": "custom title", "h_a": "first", "h_b": "second",
                                                         "h_type": "New", "status": "custom status"}}
    deal = reader.to_record("pd", raw)
    assert deal.name == "Big" and deal.deal_type == "New"  # type: ignore[attr-defined]
    # "title" is native: the custom one keeps its hash key; the second "dup" too; a custom key that
    # is itself a native key replaces the native value (as flatten's dict assignment did)
    assert deal.extra["h_title"] == "custom title" and deal.extra["dup"] == "first" and deal.extra["h_b"] == "second"
    assert deal.extra["status"] == "custom status"
    assert repr(deal) == repr(reference_to_record(PIPEDRIVE["deals"], "pd", prepare("deals", raw, NAMES)))
    assert len(reader._by_layout) == 1  # the generated path, not the prepare fallback


def test_pipedrive_reader_past_max_layouts_takes_prepare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("crmsync.connectors.pipedrive.mapping.MAX_LAYOUTS", 1)
    reader = Reader("deals", PIPEDRIVE["deals"], NAMES)
    for n in range(3):
        raw = {**DEAL, "custom_fields": {f"h{n}": n, "h_type": "New"}}
        assert repr(reader.to_record("pd", raw)) == \
            repr(reference_to_record(PIPEDRIVE["deals"], "pd", prepare("deals", raw, NAMES)))
    assert len(reader._by_layout) == 1


def test_records_hold_utc_stamps_whatever_offset_the_crm_sent() -> None:
    """``model.utc`` returns a UTC datetime as it is and converts any other offset (the record's
    ``modified_at``/``created_at`` go through it); a naive one is refused."""
    aware = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert utc(aware) is aware
    shifted = utc(dt.datetime(2024, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert shifted == aware and shifted.tzinfo is dt.UTC
    deal = PIPEDRIVE["deals"].to_record("pd", {**DEAL, "update_time": "2024-01-02T04:04:05+01:00"})
    assert deal.modified_at.tzinfo is dt.UTC and deal.modified_at == aware
    with pytest.raises(ModelError, match="naive"):
        utc(dt.datetime(2024, 1, 2))
