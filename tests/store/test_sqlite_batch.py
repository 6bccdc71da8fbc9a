"""Many rows in one SQLite statement (``store.sqlite_batch``), cut at the build's parameter limit."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine

from crmsync.store import sqlite_batch

UPSERT = ("INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v "
          "WHERE excluded.v >= t.v")


def test_a_batch_is_cut_into_statements_within_the_parameter_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_batch, "_variable_limit", lambda: 7)  # 3 rows of 2 parameters a statement
    params = [(f"k{i}", i) for i in range(8)]
    cut = list(sqlite_batch.statements(UPSERT, params))
    assert [sql.count("(?, ?)") for sql, _ in cut] == [3, 3, 2]
    assert [flat for _, flat in cut][2] == ("k6", 6, "k7", 7)


def test_batches_are_cut_into_a_few_fixed_sizes_so_few_statements_are_prepared() -> None:
    params = [(f"k{i}", i) for i in range(1_337)]
    sizes = [sql.count("(?, ?)") for sql, _ in sqlite_batch.statements(UPSERT, params)]
    assert sizes == [500, 500, 256, 64, 16, 1]
    assert [sql.count("(?, ?)") for sql, _ in sqlite_batch.statements(UPSERT, params[:500])] == [500]  # a page
    seen = {n for total in range(1, 3_000) for n in sqlite_batch._sizes(total, sqlite_batch.MAX_ROWS)}
    assert len(seen) <= 12


def test_rows_changed_count_inserts_and_updates_but_not_refused_updates(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/batch.db")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
        assert sqlite_batch.execute_rows(conn, UPSERT, [("a", 1), ("b", 1)]) == 2
        # a newer a, an older b (the WHERE refuses it), a new c
        assert sqlite_batch.execute_rows(conn, UPSERT, [("a", 2), ("b", 0), ("c", 1)]) == 2
        assert dict(conn.exec_driver_sql("SELECT k, v FROM t").fetchall()) == {"a": 2, "b": 1, "c": 1}


def test_a_bad_row_fails_its_whole_statement(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/batch.db")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
        conn.commit()
        with pytest.raises(Exception, match="NOT NULL") as caught:
            sqlite_batch.execute_rows(conn, UPSERT, [("a", 1), ("b", None)])
        assert isinstance(caught.value.__cause__ or caught.value, sqlite3.IntegrityError)


def test_the_statement_must_have_one_values_tuple() -> None:
    with pytest.raises(RuntimeError, match="cannot find"):
        sqlite_batch.multi_row_sql("INSERT INTO t (k) SELECT 1", 1, 2)
