"""Shared values of the report tests (imported by conftest and the test modules)."""

from __future__ import annotations

import datetime as dt

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
OBJECTS = ["owners", "pipelines", "stages", "accounts", "deals"]
