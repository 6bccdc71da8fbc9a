"""The funnel rows as CSV (one line per funnel row)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from crmsync.csv_cells import safe_row
from crmsync.report.funnel import Funnel

COLUMNS = ("connection", "pipeline_id", "pipeline_name", "segment", "stage_id", "stage", "kind", "reached",
           "current", "lost_here", "conversion", "win_rate", "median_days", "stays", "censored")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def write_funnel_csv(funnels: Sequence[Funnel], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for f in funnels:
            for r in f.rows:
                writer.writerow(safe_row((f.connection, f.pipeline_id, f.pipeline_name, f.segment, r.stage_id, r.name, r.kind,
                                 r.reached, r.current, r.lost_here, _num(r.conversion), _num(r.win_rate),
                                 _num(r.median_days), r.stays, r.censored)))
    return path
