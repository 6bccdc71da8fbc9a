"""Charts of the report pages (matplotlib, Agg, imported inside each function so that the report
maths and the CLI load without it). Each returns PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

BLUE, GREEN, GREY, PURPLE, RED = "#4C72B0", "#55A868", "#B0B6C0", "#8172B2", "#C44E52"


def _figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _png(fig: Any) -> bytes:
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def conversion_bars(labels: Sequence[str], rates: Sequence[float | None], highlight: int | None) -> bytes:
    """Stage-to-stage conversion, the weakest step in red."""
    fig, ax = _figure(9, 3.4)
    values = [(r or 0.0) * 100 for r in rates]
    colours = [RED if i == highlight else BLUE for i in range(len(values))]
    ax.bar(range(len(values)), values, color=colours)
    ax.set_xticks(range(len(values)), labels=[label.replace(" \u2192 ", "\n\u2192 ") for label in labels],
                  fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("conversion to next step (%)")
    for x, v in enumerate(values):
        ax.text(x, v + 2, f"{v:.0f}%", ha="center", fontsize=8)
    return _png(fig)


def trend_lines(quarters: Sequence[str], series: Mapping[str, Sequence[float | None]]) -> bytes:
    """Rates per created quarter, one line per series (percent)."""
    fig, ax = _figure(9, 3.4)
    palette = [BLUE, GREEN, PURPLE, RED, GREY]
    for n, (name, values) in enumerate(series.items()):
        points = [(i, v * 100) for i, v in enumerate(values) if v is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name,
                    color=palette[n % len(palette)])
    ax.set_xticks(range(len(quarters)), labels=quarters, fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("win rate (%)")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return _png(fig)


def stage_days(labels: Sequence[str], medians: Sequence[float | None], p75: Sequence[float | None]) -> bytes:
    """Median and 75th percentile days in stage."""
    fig, ax = _figure(9, 3.4)
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], [m or 0.0 for m in medians], width=0.4, color=BLUE, label="median")
    ax.bar([x + 0.2 for x in xs], [p or 0.0 for p in p75], width=0.4, color=GREY, label="75th percentile")
    ax.set_xticks(list(xs), labels=labels, fontsize=8)
    ax.set_ylabel("days in stage (completed stays)")
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def stacked_reasons(groups: Sequence[str], reasons: Sequence[str], counts: Sequence[Sequence[int]]) -> bytes:
    """Lost deals per group, stacked by reason (counts[g][r])."""
    fig, ax = _figure(9, 3.6)
    palette = [BLUE, GREEN, PURPLE, RED, GREY, "#DD8452", "#937860", "#DA8BC3"]
    bottoms = [0] * len(groups)
    for r, reason in enumerate(reasons):
        values = [counts[g][r] for g in range(len(groups))]
        ax.bar(range(len(groups)), values, bottom=bottoms, label=reason, color=palette[r % len(palette)])
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.set_xticks(range(len(groups)), labels=groups, fontsize=8)
    ax.set_ylabel("lost deals")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    return _png(fig)


def retention_bars(cohorts: Sequence[str], grr: Sequence[float | None], nrr: Sequence[float | None]) -> bytes:
    """Gross and net revenue retention per cohort (percent), 100% marked."""
    fig, ax = _figure(9, 3.4)
    xs = range(len(cohorts))
    ax.bar([x - 0.2 for x in xs], [(g or 0.0) * 100 for g in grr], width=0.4, color=GREY, label="GRR")
    ax.bar([x + 0.2 for x in xs], [(n or 0.0) * 100 for n in nrr], width=0.4, color=GREEN, label="NRR")
    ax.axhline(100, color=RED, linewidth=0.8, linestyle="--")
    ax.set_xticks(list(xs), labels=cohorts, fontsize=8)
    ax.set_ylabel("revenue retention (%)")
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)
