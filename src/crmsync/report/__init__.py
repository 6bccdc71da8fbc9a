"""crmsync.report: reports over the store (``crmsync report ...``).

``funnel``: stage-to-stage conversion, win rate and median days in stage per pipeline and segment,
from the deals, stages, accounts and stage events in the store (``crmsync.report.funnel`` holds the
pure maths; ``funnel_table``/``funnel_chart``/``funnel_csv`` render it).

``deals`` / ``losses`` (``deal_metrics``: the Rollup of streamed deal facts, ``deal_stream``;
``revenue`` builds the pages), ``lifecycle`` (``lifecycle``, ``lifecycle_data``, ``lifecycle_page``)
and ``billing`` (``billing_funnel``, ``billing_page``) write meeting-ready pages: ``page`` renders
one self-contained HTML file (charts from ``charts``, matplotlib imported lazily), PNGs and CSV.

The command group is ``crmsync.report.commands.report_app`` (mounted by ``crmsync.cli``); this
package's ``__init__`` imports nothing, so the report library does not depend on its CLI.
"""
