"""Rule files cannot take the worker down: whatever a file holds, the last good set keeps running,
the error names the file, and ``crmsync rules validate`` answers with a clear line (no traceback)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from crmsync.rules.loader import MAX_EXPANDED_NODES, MAX_NESTING, MAX_RULE_FILE_BYTES, RuleSetHolder

CRMSYNC = str(Path(sys.executable).parent / "crmsync")
EXAMPLE_RULES = Path(__file__).resolve().parents[2] / "config" / "rules"


def _bad_encoding(path: Path) -> None:
    path.write_bytes(path.read_bytes() + "\n# naïve comment in Latin-1\n".encode("latin-1"))


def _deep_nesting(path: Path) -> None:
    path.write_text("models: " + "[" * 3000 + "]" * 3000 + "\n")


def _block_nesting(path: Path) -> None:
    path.write_text("".join(f"{'  ' * n}k{n}:\n" for n in range(300)) + "  " * 300 + "leaf: 1\n")


def _alias_bomb(path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    path.write_text("\n".join(lines) + "\nmodels: *a9\n")


def _fifty_megabytes(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.seek(0, 2)
        handle.truncate(50 * 1024 * 1024)  # sparse: 50 MB by size, written in no time


def _not_a_mapping(path: Path) -> None:
    path.write_text("- just\n- a list\n")


HOSTILE: dict[str, tuple[Callable[[Path], None], str]] = {
    "bad_encoding": (_bad_encoding, "not UTF-8"),
    "flow_nesting_3000": (_deep_nesting, f"more than {MAX_NESTING} levels"),
    "block_nesting_300": (_block_nesting, f"more than {MAX_NESTING} levels"),
    "alias_bomb": (_alias_bomb, f"more than {MAX_EXPANDED_NODES:,} values"),
    "fifty_megabytes": (_fifty_megabytes, f"at most {MAX_RULE_FILE_BYTES:,}"),
    "not_a_mapping": (_not_a_mapping, "expected a mapping"),
}


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(EXAMPLE_RULES, target)
    return target


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_rule_file_keeps_the_last_good_set_and_names_the_file(rules_dir: Path, case: str) -> None:
    holder = RuleSetHolder(rules_dir)
    assert holder.reload() == []
    good = holder.rule_set.hash
    plant, expected = HOSTILE[case]
    scoring = rules_dir / "scoring.yaml"
    plant(scoring)

    issues = holder.reload()

    assert issues and all(i.file == str(scoring) for i in issues)
    assert any(expected in i.message for i in issues), issues
    assert holder.rule_set.hash == good  # the last good set keeps running

    result = subprocess.run([CRMSYNC, "rules", "validate", "--rules-dir", str(rules_dir)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert str(scoring) in result.stdout.replace("\n", "") and expected in result.stdout.replace("\n", " ")
