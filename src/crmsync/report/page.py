"""A meeting-ready report page: findings (one sentence each), a few charts, tables, footnotes.

``render_html`` writes one self-contained HTML document (inline CSS, charts as base64 PNG, no
script, nothing fetched); ``write_csv`` writes every table into one CSV (a ``table`` column says
which); ``write_pngs`` writes the charts as PNG files.
"""

from __future__ import annotations

import base64
import csv
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Chart:
    question: str  # the one question the chart answers
    finding: str  # the sentence that states the answer
    png: bytes


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass
class ReportPage:
    title: str
    subtitle: str
    findings: list[str] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)


_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2330;line-height:1.45;padding:0 1rem}
h1{font-size:1.7rem;margin-bottom:.2rem}.sub{color:#5b6372;margin-top:0}
h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d8dce3;padding-bottom:.3rem}
ul.findings li{margin:.35rem 0;font-size:1.02rem}
figure{margin:1.2rem 0;padding:0}figure img{max-width:100%;border:1px solid #e3e6ec;border-radius:4px}
figcaption{font-weight:600;margin-bottom:.4rem}figcaption span{display:block;font-weight:400;color:#38404d}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.9rem}
th,td{padding:.3rem .7rem;border-bottom:1px solid #e3e6ec;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f5f8}
.note{color:#5b6372;font-size:.85rem}ol.footnotes{color:#38404d;font-size:.88rem}
"""


def render_html(page: ReportPage) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(page.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{e(page.title)}</h1>", f'<p class="sub">{e(page.subtitle)}</p>']
    if page.findings:
        parts.append('<h2>Findings</h2><ul class="findings">')
        parts += [f"<li>{e(text)}</li>" for text in page.findings]
        parts.append("</ul>")
    for chart in page.charts:
        data = base64.b64encode(chart.png).decode("ascii")
        parts.append(f"<figure><figcaption>{e(chart.question)}<span>{e(chart.finding)}</span></figcaption>"
                     f'<img alt="{e(chart.question)}" src="data:image/png;base64,{data}"></figure>')
    for table in page.tables:
        parts.append(f"<h2>{e(table.title)}</h2><table><thead><tr>")
        parts += [f"<th>{e(c)}</th>" for c in table.columns]
        parts.append("</tr></thead><tbody>")
        for row in table.rows:
            parts.append("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>")
        parts.append("</tbody></table>")
        if table.note:
            parts.append(f'<p class="note">{e(table.note)}</p>')
    if page.footnotes:
        parts.append('<h2>Data notes</h2><ol class="footnotes">')
        parts += [f"<li>{e(text)}</li>" for text in page.footnotes]
        parts.append("</ol>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(page: ReportPage, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(page), encoding="utf-8")
    return path


def write_csv(tables: Sequence[Table], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for table in tables:
            writer.writerow(("table", *table.columns))
            for row in table.rows:
                writer.writerow((table.title, *row))
    return path


def write_pngs(charts: Sequence[Chart], path: Path) -> list[Path]:
    """The first chart at ``path``, the others beside it as ``<stem>-2.png``, ``<stem>-3.png``..."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for n, chart in enumerate(charts, start=1):
        target = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix or '.png'}")
        target.write_bytes(chart.png)
        written.append(target)
    return written
