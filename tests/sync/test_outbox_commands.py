"""``crmsync outbox list | retry | drop`` over a real store file."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from crmsync.cli import app
from crmsync.store import OutboxItem, Store
from crmsync.sync import outbox


def _setup(tmp_path: Path) -> tuple[Path, Store, list[int]]:
    db = tmp_path / "cli.db"
    config = tmp_path / "crmsync.yaml"
    config.write_text(f"store:\n  url: sqlite:///{db}\nconnections: []\n", encoding="utf-8")
    store = Store.open(f"sqlite:///{db}")
    store.upgrade()
    for n in range(3):
        store.enqueue(OutboxItem(connection="hs", object_name="deals", operation="update", source_id=str(n),
                                 fields={"owner_id": "7"}, idempotency_key=f"k{n}"))
    items = store.outbox_items()
    ids = [i.id for i in items if i.id is not None]
    store.update_outbox(ids[0], "failed", attempts=6, last_error="refused: field(s) owner_id not writable")
    store.update_outbox(ids[1], "parked", attempts=1, last_error="conflict: changed since decision")
    return config, store, ids


def test_list_filters_and_shows_errors(tmp_path: Path) -> None:
    config, _, _ = _setup(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["outbox", "list", "-c", str(config), "--status", "failed"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "refused: field(s) owner_id" in res.output and "conflict" not in res.output
    res = runner.invoke(app, ["outbox", "list", "-c", str(config), "--status", "nope"])
    assert res.exit_code != 0


def test_retry_and_drop(tmp_path: Path) -> None:
    config, store, ids = _setup(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["outbox", "retry", str(ids[0]), "-c", str(config)])
    assert res.exit_code == 0, res.output
    item = outbox.get_item(store, ids[0])
    assert item is not None and item.status == "pending" and item.attempts == 0
    assert item.last_error and "refused" in item.last_error  # kept for the record
    res = runner.invoke(app, ["outbox", "retry", str(ids[2]), "-c", str(config)])  # pending: not retriable
    assert res.exit_code == 1
    res = runner.invoke(app, ["outbox", "drop", str(ids[1]), "-c", str(config)])
    assert res.exit_code == 0, res.output
    assert store.outbox_counts() == {"pending": 2, "dropped": 1}
    store.update_outbox(ids[2], "failed", last_error="x")
    res = runner.invoke(app, ["outbox", "retry", "--all-failed", "-c", str(config)])
    assert res.exit_code == 0 and "1 failed item(s)" in res.output
    res = runner.invoke(app, ["outbox", "drop", "999", "-c", str(config)])
    assert res.exit_code == 1
