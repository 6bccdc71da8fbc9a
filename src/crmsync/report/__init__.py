"""crmsync.report: reports over the store (``crmsync report ...``).

``funnel``: stage-to-stage conversion, win rate and median days in stage per pipeline and segment,
from the deals, stages, accounts and stage events in the store (``crmsync.report.funnel`` holds the
pure maths; ``funnel_table``/``funnel_chart``/``funnel_csv`` render it).
"""

from __future__ import annotations

from crmsync.report.commands import report_app

__all__ = ["report_app"]
