"""What the README and the command line tell a user about the settings.

The configuration table in the README is ``python -m batch_widget config
--markdown``; both come from the ``BatchWidgetApp`` traits, so a new or changed
setting shows up in both or this test fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from batch_widget.server.app import BatchWidgetApp

ROOT = Path(__file__).resolve().parents[1]
TABLE = re.compile(r"<!-- config-table:[^>]*-->\n(.*?)<!-- /config-table -->", re.S)


def run_cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "batch_widget", *args], capture_output=True,
                          text=True, timeout=60, check=True, cwd=ROOT)
    return done.stdout


def test_the_readme_configuration_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = TABLE.search(readme)
    assert found, "the README lost its config-table markers"
    assert found.group(1) == run_cli("config", "--markdown"), (
        "README.md's configuration table is stale: paste `python -m batch_widget config "
        "--markdown` between its config-table markers")


def test_config_lists_every_setting_with_its_default_and_help() -> None:
    text = run_cli("config")
    settings = BatchWidgetApp.class_own_traits(config=True)
    assert len(settings) >= 20
    for name, trait in settings.items():
        block = re.search(rf"^--BatchWidgetApp\.{name}=<\w+>\n    Default: (.+)\n    (.+)$",
                          text, re.M)
        assert block, f"{name} is missing from `python -m batch_widget config`"
        assert block.group(2) == " ".join(str(trait.help).split())
    assert "Default: 4\n    Workers per job" in text
    assert 'allowed_processors=<List>\n    Default: ["*"]' in text


def test_an_unknown_command_is_an_error_that_lists_the_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "batch_widget", "nope"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 2
    assert "invalid choice: 'nope'" in done.stderr and "config" in done.stderr
