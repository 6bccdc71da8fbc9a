"""CSV exports never hand a spreadsheet a formula: CRM text starting with = + - @ is written as text."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from crmsync.billing.reports import DriftRow, write_csv
from crmsync.csv_cells import safe_cell


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                                  "\t=1", "\r=1"])
def test_formula_like_text_gets_an_apostrophe(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["Acme deal", "-12.50", "+3", "42", Decimal("-7.25"), 5, None, ""])
def test_plain_text_and_numbers_are_unchanged(value: object) -> None:
    assert safe_cell(value) == value


def test_drift_export_writes_crm_text_as_text(tmp_path: Path) -> None:
    out = tmp_path / "drift.csv"
    write_csv([DriftRow("amount_mismatch", "deal 7", "=cmd|'/C calc'!A0", "@evil", Decimal("-12.50"), "EUR",
                        "-1+1 is not the plan")], out)
    [row] = list(csv.DictReader(out.open(encoding="utf-8")))
    assert row["crm_value"] == "'=cmd|'/C calc'!A0" and row["billing_value"] == "'@evil"
    assert row["reason"] == "'-1+1 is not the plan"
    assert row["money_at_stake"] == "-12.50" and row["subject"] == "deal 7"
