"""Experiment assignment: deterministic, stable and balanced; the file kind validates like the others."""

from __future__ import annotations

import random
import shutil
from collections import Counter
from pathlib import Path

import pytest

from crmsync.rules.experiments import HOLDOUT, ExperimentsFile, bucket, compile_experiments
from crmsync.rules.loader import RuleFileError, load_rules

RULES_DIR = Path(__file__).resolve().parents[2] / "config" / "rules"
POOLS = frozenset({"a", "b", "c"})


def _experiment(shares: list[str], holdout: str = "0", name: str = "exp") -> ExperimentsFile:
    return ExperimentsFile.model_validate({"experiments": [{
        "name": name, "object": "lead", "kind": "routing", "start": "2026-01-01", "stop": "2026-12-31",
        "planned_sample_size": 100, "holdout": holdout,
        "variants": [{"name": f"v{i}", "share": s, "pool": "abc"[i]} for i, s in enumerate(shares)]}]})


@pytest.mark.parametrize(("shares", "holdout"), [(["0.5", "0.5"], "0"), (["0.45", "0.45"], "0.1"),
                                                 (["0.2", "0.3", "0.4"], "0.1")])
def test_balanced_within_two_percent_over_10000_records(shares: list[str], holdout: str) -> None:
    (experiment,) = compile_experiments(_experiment(shares, holdout), POOLS)
    ids = [f"00Q{n:012d}" for n in range(10_000)]
    counts = Counter(experiment.group_of("crm", i) for i in ids)
    wanted = {f"v{i}": float(s) for i, s in enumerate(shares)} | ({HOLDOUT: float(holdout)} if float(holdout) else {})
    assert set(counts) == set(wanted)
    for group, share in wanted.items():
        assert abs(counts[group] / 10_000 - share) <= 0.02, (group, counts[group])


def test_assignment_is_stable_across_order_and_compilations() -> None:
    ids = [f"lead-{n}" for n in range(2_000)]
    (first,) = compile_experiments(_experiment(["0.45", "0.45"], "0.1"), POOLS)
    before = {i: first.group_of("crm", i) for i in ids}
    shuffled = list(ids)
    random.Random(3).shuffle(shuffled)
    (again,) = compile_experiments(_experiment(["0.45", "0.45"], "0.1"), POOLS)
    assert {i: again.group_of("crm", i) for i in shuffled} == before
    # the point is the sha256 of name and record id: a known value pins the hash
    assert bucket("exp", "crm", "lead-1") == int.from_bytes(
        __import__("hashlib").sha256(b"exp:crm:lead-1").digest()[:8], "big") / 2**64
    (renamed,) = compile_experiments(_experiment(["0.45", "0.45"], "0.1", name="exp2"), POOLS)
    moved = sum(renamed.group_of("crm", i) != before[i] for i in ids)
    assert moved > 500  # another experiment name reshuffles (independent split)


def _rules_with(tmp_path: Path, text: str) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    (rules / "experiments.yaml").write_text(text, encoding="utf-8")
    return rules


def test_shipped_experiments_file_loads() -> None:
    rule_set = load_rules(RULES_DIR)
    assert [e.name for e in rule_set.experiments] == ["lead_routing_fewest_open"]


def test_shares_must_add_up_and_pools_must_exist(tmp_path: Path) -> None:
    text = (RULES_DIR / "experiments.yaml").read_text(encoding="utf-8")
    with pytest.raises(RuleFileError) as bad_share:
        load_rules(_rules_with(tmp_path / "a", text.replace("share: 0.45\n        pool: overflow",
                                                             "share: 0.55\n        pool: overflow")))
    issue = bad_share.value.issues[0]
    assert issue.file.endswith("experiments.yaml") and issue.line is not None
    assert "add up to 1" in issue.message and issue.key == "experiments[0]"
    with pytest.raises(RuleFileError) as bad_pool:
        load_rules(_rules_with(tmp_path / "b", text.replace("pool: enterprise_desk", "pool: nowhere")))
    issue = bad_pool.value.issues[0]
    assert issue.key == "experiments[0].variants[1].pool" and "unknown routing pool 'nowhere'" in issue.message
    assert issue.line == text.splitlines().index("        pool: enterprise_desk") + 1
