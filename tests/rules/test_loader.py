from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crmsync.rules.loader import RuleFileError, RuleSetHolder, load_rules

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "rules"


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(EXAMPLES, target)
    return target


def test_example_rule_set_loads_with_about_fifty_rules() -> None:
    rs = load_rules(EXAMPLES, author="test")
    assert 40 <= rs.rule_count <= 70
    assert len(rs.hash) == 64 and rs.author == "test"
    assert set(rs.files) == {"scoring", "routing", "hygiene", "handoff", "renewal", "health", "experiments"}


def test_hash_ignores_comments_but_not_content(rules_dir: Path) -> None:
    before = load_rules(rules_dir).hash
    path = rules_dir / "hygiene.yaml"
    path.write_text("# a new comment\n" + path.read_text())
    assert load_rules(rules_dir).hash == before
    path.write_text(path.read_text().replace("days: 21", "days: 22"))
    assert load_rules(rules_dir).hash != before


def _break(path: Path, old: str, new: str) -> int:
    text = path.read_text()
    assert old in text
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, 1))
    return line


@pytest.mark.parametrize(
    ("file", "old", "new", "key", "expect"),
    [
        ("scoring.yaml", "{field: amount, gte: 50000}", "{field: amount, bigger: 50000}",
         "models[0].groups[0].rules[0].when.bigger", "unknown operator 'bigger'"),
        ("scoring.yaml", "points: 20, when: {field: amount, gte: 50000}", "points: twenty, when: {field: amount, gte: 50000}",
         "models[0].groups[0].rules[0].points", "decimal"),
        ("hygiene.yaml", "days: 45", "days: [45]", "rules[4].days", "valid number"),
        ("routing.yaml", "strategy: fewest_open", "strategy: random", "pools[3].strategy", "'round_robin'"),
        ("hygiene.yaml", "kind: close_date_past", "kind: close_date_past\n    colour: red", "rules[6].colour", "unknown key"),
        ("routing.yaml", "field: region", "field: regoin", "rules[3].territory.field", "unknown field 'regoin'"),
        ("routing.yaml", "pool: enterprise_desk", "pool: nowhere", "rules[2].pool", "unknown pool 'nowhere'"),
        # a stray brace before the last placeholder is a typo, like one after it
        ("hygiene.yaml", '"Complete MEDDIC for {name}"', '"Complete MEDDIC } for {name}"', "rules[1].task_subject",
         "unbalanced braces"),
    ],
)
def test_broken_file_keeps_old_set_and_names_file_line_key(
    rules_dir: Path, file: str, old: str, new: str, key: str, expect: str
) -> None:
    holder = RuleSetHolder(rules_dir)
    assert holder.reload() == []
    good = holder.rule_set
    line = _break(rules_dir / file, old, new)
    issues = holder.reload()
    assert issues, "the broken file must be reported"
    issue = issues[0]
    assert issue.file.endswith(file)
    assert issue.key == key
    assert expect in issue.message
    assert issue.line is not None and abs(issue.line - line) <= 1
    assert f"{file}:{issue.line}" in str(issue)
    assert holder.rule_set is good and not holder.changed


def test_yaml_syntax_error_names_the_line(rules_dir: Path) -> None:
    holder = RuleSetHolder(rules_dir)
    holder.reload()
    good = holder.rule_set
    path = rules_dir / "renewal.yaml"
    lines = path.read_text().splitlines()
    lines[6] = lines[6] + " ]]"
    path.write_text("\n".join(lines) + "\n")
    issues = holder.reload()
    assert len(issues) == 1 and issues[0].file.endswith("renewal.yaml")
    assert issues[0].line == 7 and "YAML syntax error" in issues[0].message
    assert holder.rule_set is good


def test_fixing_the_file_applies_a_new_version(rules_dir: Path) -> None:
    holder = RuleSetHolder(rules_dir)
    holder.reload()
    first = holder.rule_set.hash
    _break(rules_dir / "hygiene.yaml", "days: 21", "days: 28")
    assert holder.reload() == [] and holder.changed
    assert holder.rule_set.hash != first
    assert holder.reload() == [] and not holder.changed


def test_no_valid_set_yet_raises(tmp_path: Path) -> None:
    (tmp_path / "scoring.yaml").write_text("models: 3\n")
    holder = RuleSetHolder(tmp_path)
    assert holder.reload()
    with pytest.raises(RuleFileError):
        _ = holder.rule_set


def test_a_key_given_twice_is_refused_with_its_line(rules_dir: Path) -> None:
    holder = RuleSetHolder(rules_dir)
    holder.reload()
    good = holder.rule_set
    line = _break(rules_dir / "hygiene.yaml", "    severity: critical\n    task_subject: \"Complete",
                  "    severity: critical\n    severity: info\n    task_subject: \"Complete")
    issues = holder.reload()
    assert len(issues) == 1 and issues[0].file.endswith("hygiene.yaml")
    assert issues[0].line == line + 1 and "duplicate key 'severity'" in issues[0].message
    assert f"first given on line {line}" in issues[0].message
    assert holder.rule_set is good
