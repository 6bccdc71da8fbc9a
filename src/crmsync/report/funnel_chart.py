"""The funnel chart (matplotlib, Agg): one row of two panels per funnel.

Left: horizontal bars of deals reaching each stage (won row in green) labelled with the count and
the conversion to the next row. Right: median days in stage over completed stays, labelled with
the number of stays (stages with none say so).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.axes import Axes  # noqa: E402

from crmsync.report.funnel import Funnel  # noqa: E402
from crmsync.report.funnel_table import funnel_title, pct  # noqa: E402

OPEN_COLOUR = "#4C72B0"
WON_COLOUR = "#55A868"
DAYS_COLOUR = "#8172B2"
MAX_FUNNELS = 12  # rows in one image; more would be unreadable


def _reached_panel(ax: Axes, funnel: Funnel) -> None:
    rows = funnel.rows
    labels = [r.name for r in rows]
    values = [r.reached for r in rows]
    colours = [WON_COLOUR if r.kind == "won" else OPEN_COLOUR for r in rows]
    positions = list(range(len(rows)))
    ax.barh(positions, values, color=colours)
    ax.set_yticks(positions, labels=labels)
    ax.invert_yaxis()
    top = max(values, default=0) or 1
    ax.set_xlim(0, top * 1.45)
    for y, row in zip(positions, rows, strict=True):
        text = f"{row.reached}"
        if row.conversion is not None:
            text += f"  \u2192 {pct(row.conversion)}"
        ax.text(row.reached + top * 0.01, y, text, va="center", fontsize=8)
    ax.set_xlabel("deals reaching the stage (label: conversion to the next)")
    ax.set_title(f"{funnel_title(funnel)}\n{funnel.deals} deals, win rate {pct(funnel.win_rate)}", fontsize=9,
                 loc="left")


def _days_panel(ax: Axes, funnel: Funnel) -> None:
    rows = [r for r in funnel.rows if r.kind == "open"]
    positions = list(range(len(rows)))
    values = [r.median_days or 0.0 for r in rows]
    ax.barh(positions, values, color=DAYS_COLOUR)
    ax.set_yticks(positions, labels=[r.name for r in rows])
    ax.invert_yaxis()
    top = max(values, default=0.0) or 1.0
    ax.set_xlim(0, top * 1.5)
    for y, row in zip(positions, rows, strict=True):
        if row.median_days is None:
            text = f"no completed stay ({row.censored} running)"
        else:
            text = f"{row.median_days:.1f} d  (n={row.stays}, {row.censored} running)"
        ax.text((row.median_days or 0.0) + top * 0.01, y, text, va="center", fontsize=8)
    ax.set_xlabel("median days in stage (completed stays; running stays censored, left out)")
    ax.set_title("median days in stage", fontsize=9, loc="left")


def render_funnel_chart(funnels: Sequence[Funnel], path: Path) -> Path:
    """Draw ``funnels`` (the first ``MAX_FUNNELS``) into a PNG at ``path``; returns the path."""
    shown = list(funnels[:MAX_FUNNELS])
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(len(shown), 1)
    height = max(3.2, max((len(f.rows) for f in shown), default=4) * 0.42 + 1.4)
    fig, axes = plt.subplots(n, 2, figsize=(14, height * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1.1, 1.0]})
    try:
        if not shown:
            axes[0][0].text(0.5, 0.5, "no deals to report", ha="center", va="center")
            axes[0][0].set_axis_off()
            axes[0][1].set_axis_off()
        for (left, right), funnel in zip(axes, shown, strict=False):
            _reached_panel(left, funnel)
            _days_panel(right, funnel)
        if len(funnels) > MAX_FUNNELS:
            fig.suptitle(f"first {MAX_FUNNELS} of {len(funnels)} funnels (narrow with --pipeline/--segment)",
                         fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path
