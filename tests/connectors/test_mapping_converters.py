"""``ObjectMapping.to_record`` skips the converter call for a missing value when the converter would
give None anyway (``NONE_TO_NONE``); converters that give something else for None still run."""

from __future__ import annotations

import datetime as dt

import pytest

from crmsync.connectors.converters import CONVERTERS, NONE_TO_NONE
from crmsync.connectors.pipedrive.mapping import DEALS


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_every_skipped_converter_gives_none_for_none(name: str) -> None:
    convert = CONVERTERS[name]
    assert convert in NONE_TO_NONE and convert(None, name) is None


def test_missing_values_map_as_the_converters_would() -> None:
    raw = {"id": 7, "update_time": "2026-01-02T03:04:05Z", "add_time": None, "title": None, "value": None,
           "status": None, "person_id": None, "expected_close_date": None, "probability": None}
    deal = DEALS.to_record("pd", raw)
    # _is_closed / _is_won / _id_list are not in NONE_TO_NONE: they still ran and gave their values
    assert deal.is_closed is False and deal.is_won is False and deal.contact_ids == []
    assert deal.amount is None and deal.close_date is None and deal.probability is None and deal.name is None
    assert deal.extra["status"] is None  # an extra target keeps the missing value
    assert deal.modified_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC) and deal.created_at is None
