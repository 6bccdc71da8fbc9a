"""A backfill's pages share commits (``sync.page_group``): what a commit holds, and what a failure keeps."""

from __future__ import annotations

import pytest

from crmsync.settings import ConnectionSettings
from crmsync.store import Store
from crmsync.sync.page_group import PageGroup

NS = "page-group-test"


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stored(store: Store, n: int) -> list[int]:
    """Which of pages 0..n-1 another connection sees (each page writes its own key)."""
    return [i for i in range(n) if store.get_state(NS, f"page-{i}") is not None]


def write_page(group: PageGroup, i: int, *, last: bool = False) -> None:
    with group.page(last=last) as tx:
        tx.set_state(NS, f"page-{i}", {"n": i})


def test_pages_are_committed_in_groups_of_max_pages(store: Store) -> None:
    group = PageGroup(store, max_pages=3, max_seconds=60, monotonic=Ticks())
    for i in range(2):
        write_page(group, i)
    assert stored(store, 5) == []  # still in the open group
    write_page(group, 2)
    assert stored(store, 5) == [0, 1, 2]
    write_page(group, 3)
    assert stored(store, 5) == [0, 1, 2]
    group.commit()
    assert stored(store, 5) == [0, 1, 2, 3]


def test_the_last_page_and_the_clock_commit_early(store: Store) -> None:
    ticks = Ticks()
    group = PageGroup(store, max_pages=10, max_seconds=1.0, monotonic=ticks)
    write_page(group, 0)
    ticks.now = 1.0  # the group has been open as long as allowed
    write_page(group, 1)
    assert stored(store, 4) == [0, 1]
    write_page(group, 2, last=True)
    assert stored(store, 4) == [0, 1, 2]


def test_a_failing_page_is_rolled_back_alone_and_the_pages_before_it_are_kept(store: Store) -> None:
    group = PageGroup(store, max_pages=4, max_seconds=60, monotonic=Ticks())
    write_page(group, 0)
    write_page(group, 1)
    with pytest.raises(ValueError, match="bad page"), group.page() as tx:
        tx.set_state(NS, "page-2", {"n": 2})
        raise ValueError("bad page")
    assert stored(store, 4) == [0, 1]
    write_page(group, 3)  # the next page opens a new group
    group.commit()
    assert stored(store, 4) == [0, 1, 3]


def test_a_group_of_one_commits_every_page_and_rolls_back_a_failing_one(store: Store) -> None:
    group = PageGroup(store, max_pages=1, max_seconds=60, monotonic=Ticks())
    write_page(group, 0)
    assert stored(store, 2) == [0]
    with pytest.raises(RuntimeError), group.page() as tx:
        tx.set_state(NS, "page-1", {"n": 1})
        raise RuntimeError("lost")
    assert stored(store, 2) == [0]


@pytest.mark.parametrize(("options", "message"), [
    ({"commit_pages": 0}, "options.commit_pages: expected a whole number above 0, got 0"),
    ({"commit_pages": 2.5}, "options.commit_pages: expected a whole number above 0, got 2.5"),
    ({"commit_seconds": "soon"}, "options.commit_seconds: expected a number above 0, got 'soon'"),
])
def test_commit_options_are_checked_when_the_config_is_read(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        ConnectionSettings.model_validate({"name": "pd", "kind": "pipedrive", "options": options})
