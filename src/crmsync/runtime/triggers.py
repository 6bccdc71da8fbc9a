"""Schedules from settings as APScheduler triggers (UTC), and "when is it next due" for both modes."""

from __future__ import annotations

import datetime as dt

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from crmsync.model import UTC
from crmsync.settings import ScheduleSettings

DEFAULT_INTERVAL_SECONDS = 300


def cron_trigger(expression: str) -> CronTrigger:
    """A five-field crontab expression, evaluated in UTC."""
    return CronTrigger.from_crontab(expression, timezone=UTC)


def sync_trigger(schedule: ScheduleSettings) -> BaseTrigger:
    """The incremental-sync trigger of a connection: ``cron`` wins over ``interval_seconds``."""
    if schedule.cron:
        return cron_trigger(schedule.cron)
    return IntervalTrigger(seconds=schedule.interval_seconds or DEFAULT_INTERVAL_SECONDS, timezone=UTC)


def next_due(schedule: ScheduleSettings, after: dt.datetime) -> dt.datetime:
    """The first time strictly after ``after`` the connection's sync is due again."""
    if schedule.cron:
        fire = cron_trigger(schedule.cron).get_next_fire_time(None, after + dt.timedelta(seconds=1))
        if fire is None:  # an expression that never fires again
            return after + dt.timedelta(days=3650)
        return fire.astimezone(UTC)
    return after + dt.timedelta(seconds=schedule.interval_seconds or DEFAULT_INTERVAL_SECONDS)
