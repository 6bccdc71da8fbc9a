"""The one cursor rule (connectors.cursor and connectors.server_time), table-tested."""

from __future__ import annotations

import pytest

from crmsync.connectors.cursor import StampRule, lower, next_start, settle_seconds
from crmsync.connectors.server_time import ReadTimes, server_read_time

SECONDS = StampRule(unit_s=1.0, settle_s=2.0)  # Pipedrive-like
MILLIS = StampRule(unit_s=0.001, settle_s=120.0)  # HubSpot-like


@pytest.mark.parametrize(("rule", "stamp", "read_at", "settled"), [
    (SECONDS, 100, 100.4, False),  # read inside its own second
    (SECONDS, 100, 101.5, False),  # the second is over, the settle time is not
    (SECONDS, 100, 103.0, True),  # one unit plus settle_s after the stamp
    (SECONDS, 100, None, False),  # no server time known: never settled
    (MILLIS, 1_000.0, 1_120.0, False),
    (MILLIS, 1_000.0, 1_120.001, True),
    (StampRule(1.0, 0.0), 100, 101.0, True),  # settle 0: the unit alone
])
def test_settled(rule: StampRule, stamp: float, read_at: float | None, settled: bool) -> None:
    assert rule.is_settled(stamp, read_at) is settled
    assert rule.remember(stamp, read_at) is settled


@pytest.mark.parametrize(("newest", "read_at", "floor"), [
    (None, 200.0, None),  # an empty page moves nothing
    (150, 200.0, None),  # everything read was settled
    (197, 200.0, None),  # 197 + 1 + 2 <= 200: settled
    (198, 200.0, 197),  # open: restart at the boundary rounded down to the unit
    (199, 200.4, 197),
    (150, None, 150),  # no server time: the newest stamp itself stays open
    (196.7, 199.6, 196.0),  # open by a tenth of a second: the boundary 196.6 rounds down to 196
])
def test_reached_open(newest: float | None, read_at: float | None, floor: float | None) -> None:
    assert SECONDS.reached_open(newest, read_at) == floor


@pytest.mark.parametrize(("watermark", "open_floor", "start"), [
    (None, None, None),
    (100, None, 100),  # settled: resume at the watermark (closed bound)
    (100, 97, 97),  # an open region below the watermark: restart there
    (100, 120, 100),  # a floor above the watermark never moves the start up
    (None, 50, 50),
])
def test_next_start(watermark: float | None, open_floor: float | None, start: float | None) -> None:
    assert next_start(watermark, open_floor) == start


def test_lower_and_settle_option() -> None:
    assert lower(None, None) is None and lower(3, None) == 3 and lower(None, 4) == 4 and lower(5, 2) == 2
    assert settle_seconds({}, 300.0) == 300.0
    assert settle_seconds({"lookback_seconds": 5}, 300.0) == 5.0  # the older name
    assert settle_seconds({"settle_seconds": 7, "lookback_seconds": 5}, 300.0) == 7.0
    assert settle_seconds({"settle_seconds": -3}, 300.0) == 0.0
    with pytest.raises(ValueError):
        StampRule(0, 1)


@pytest.mark.parametrize(("date", "rtt", "sent", "read_at"), [
    ("Thu, 03 Dec 2026 07:00:00 GMT", 0.25, 0.0, 1796281200.0 - 0.25),  # Date minus the round trip
    ("Thu, 03 Dec 2026 07:00:00 GMT", -1.0, 0.0, 1796281200.0),  # a negative round trip counts as 0
    (None, 0.1, 123.5, 123.5),  # no Date: the client's send time
    ("not a date", 0.1, 123.5, 123.5),
])
def test_server_read_time(date: str | None, rtt: float, sent: float, read_at: float) -> None:
    assert server_read_time(date, rtt, sent) == pytest.approx(read_at)


def test_read_times_keep_the_earliest_per_thread() -> None:
    times = ReadTimes()
    times.start()
    times.note("Thu, 03 Dec 2026 07:00:05 GMT", 0.0, 0.0)
    times.note("Thu, 03 Dec 2026 07:00:01 GMT", 0.0, 0.0)
    assert times.earliest() == 1796281201.0
    assert times.server_now() > 1796281201.0 - 1e9  # an estimate on the server's clock
    times.start()
    assert times.earliest() is None
