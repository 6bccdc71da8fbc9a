"""Randomized store-equals-truth, per CRM: random interleavings of user edits and sync cycles.

Hypothesis draws a world size, a settle time and a list of operations (``truth_harness``):
creates, edits (several inside one timestamp unit), soft and hard deletes, restores, account
changes and line-item changes, with sync cycles at random page sizes, injected faults (429, 500,
timeouts, truncated bodies), in-process kills after k committed pages and edits landing between
two pages. After the edits stop the CRM's clock runs past the settle time, quiet cycles and the
hard-delete sweeps run, and the store must equal the simulator's truth field by field.

CI runs a quick, derandomized profile (``CRMSYNC_TRUTH_EXAMPLES`` examples per CRM, default 5);
``bench/bench_truth_suite.py`` runs the long one. Shrunk failing cases are kept below as
regression tests that replay them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from truth_harness import (
    CRMS,
    Scenario,
    describe,
    run_scenario,
    scenarios,
    sqlite_store,
    truncate_all,
)

from crmsync.sandbox.core import LocalCA
from crmsync.store import Store

EXAMPLES = int(os.environ.get("CRMSYNC_TRUTH_EXAMPLES", "5"))
StoreFactory = Callable[[], AbstractContextManager[Store]]


@pytest.fixture(scope="session")
def truth_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA.create(tmp_path_factory.mktemp("truth-ca"))


@pytest.fixture(scope="session")
def fresh_store(tmp_path_factory: pytest.TempPathFactory, _session_pg_store: Store | None) -> StoreFactory:
    """A new, empty store per example: a SQLite file, or the session's PostgreSQL database truncated."""
    directory = Path(tmp_path_factory.mktemp("truth-stores"))

    @contextmanager
    def make() -> Iterator[Store]:
        if _session_pg_store is not None:
            truncate_all(_session_pg_store)
            yield _session_pg_store
            return
        with sqlite_store(directory) as store:
            yield store

    return make


def check(scenario: Scenario, fresh_store: StoreFactory, ca: LocalCA) -> None:
    with fresh_store() as store:
        problems = run_scenario(scenario, store, ca)
    assert not problems, describe(scenario, problems)


@pytest.mark.parametrize("crm", CRMS)
def test_store_equals_truth_after_random_interleavings(crm: str, fresh_store: StoreFactory,
                                                        truth_ca: LocalCA) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(scenario=scenarios(crm))
    def interleavings(scenario: Scenario) -> None:
        check(scenario, fresh_store, truth_ca)

    interleavings()
