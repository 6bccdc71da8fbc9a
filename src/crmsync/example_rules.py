"""Where the shipped example rules are: the checkout's ``config/rules`` or the installed copy.

The demo and the sandbox's ready-made config point at these, by absolute path, so both work from
any working directory. A source checkout (editable install) uses ``<checkout>/config/rules``; a
wheel installs the same files as data under ``<prefix>/share/crmsync/rules`` (pyproject
``tool.setuptools.data-files``).
"""

from __future__ import annotations

import sys
from pathlib import Path


class ExampleRulesMissing(RuntimeError):
    """Neither a checkout nor an installed copy of the example rules was found."""


def example_rules_dir() -> Path:
    """The directory of the example rule files; raises ``ExampleRulesMissing`` naming where it looked."""
    candidates = (Path(__file__).resolve().parents[2] / "config" / "rules",
                  Path(sys.prefix) / "share" / "crmsync" / "rules")
    for candidate in candidates:
        if (candidate / "routing.yaml").is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ExampleRulesMissing(f"the example rules are not installed (looked in {looked}); "
                              "reinstall crmsync or pass a rules directory")
