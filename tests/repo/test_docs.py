"""What the docs and the command line tell a user about the settings, and that
the docs' links lead somewhere.

The configuration table in ``docs/configuration.md`` is ``python -m batch_widget
config --markdown``; both come from the ``BatchWidgetApp`` traits, so a new or
changed setting shows up in both or this test fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from batch_widget.server.app import BatchWidgetApp

#: The repository: the nearest folder up that holds pyproject.toml, so the file
#: may live in any folder of tests/.
ROOT = next(up for up in Path(__file__).resolve().parents if (up / "pyproject.toml").exists())
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
TABLE = re.compile(r"<!-- config-table:[^>]*-->\n(.*?)<!-- /config-table -->", re.S)


def run_cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "batch_widget", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def test_the_configuration_table_is_the_generated_one() -> None:
    found = TABLE.search(CONFIGURATION_DOC.read_text(encoding="utf-8"))
    assert found, "docs/configuration.md lost its config-table markers"
    assert found.group(1) == run_cli("config", "--markdown"), (
        "docs/configuration.md's table is stale: paste `python -m batch_widget config "
        "--markdown` between its config-table markers"
    )


def test_config_lists_every_setting_with_its_default_and_help() -> None:
    text = run_cli("config")
    settings = BatchWidgetApp.class_own_traits(config=True)
    assert len(settings) >= 20
    for name, trait in settings.items():
        block = re.search(
            rf"^--BatchWidgetApp\.{name}=<\w+>\n    Default: (.+)\n    (.+)$", text, re.M
        )
        assert block, f"{name} is missing from `python -m batch_widget config`"
        assert block.group(2) == " ".join(str(trait.help).split())
    assert "Default: 4\n    Workers per job" in text
    assert 'allowed_processors=<List>\n    Default: ["*"]' in text


def test_an_unknown_command_is_an_error_that_lists_the_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batch_widget", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 2
    assert "invalid choice: 'nope'" in done.stderr and "config" in done.stderr


#: ``[text](target)`` and ``![alt](target)``; the text may span lines.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.M)
#: A repository path in backticks, such as `tests/e2e/test_smoke.py`.
REPO_PATH = re.compile(r"`((?:batch_widget|benchmarks|docs|js|notebooks|scripts|tests)/[\w./-]*)`")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def slugs(doc: Path) -> set[str]:
    """The anchors GitHub gives a file's headings: lowercase, punctuation dropped,
    spaces as hyphens (a repeated heading's ``-1`` is not needed by any link yet)."""
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    return {
        re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-") for title in HEADING.findall(text)
    }


def broken_links(doc: Path) -> list[str]:
    """The relative links of one Markdown file whose file or heading does not exist."""
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in slugs(linked):
            broken.append(f"{target} (no such heading)")
    return broken


def test_every_relative_link_of_the_docs_leads_to_a_file_and_heading() -> None:
    found = {doc.relative_to(ROOT).as_posix(): broken_links(doc) for doc in doc_files()}
    assert len(found) >= 10, "README.md and docs/*.md were not found"
    assert not {doc: links for doc, links in found.items() if links}


def test_the_link_check_sees_a_broken_file_and_a_broken_heading(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "# A title: `x()`\n\n```\n# not a heading\n```\n", encoding="utf-8"
    )
    doc = tmp_path / "b.md"
    doc.write_text(
        "[ok](a.md#a-title-x) [gone](c.md) [wrong](a.md#not-a-heading)\n"
        "[web](https://example.org/x) [self](#here)\n\n## Here\n",
        encoding="utf-8",
    )
    assert broken_links(doc) == ["c.md (no such file)", "a.md#not-a-heading (no such heading)"]


def test_every_repository_path_the_docs_name_exists() -> None:
    """Files move (tests/ by part, for one); a doc naming the old place misleads."""
    missing = {
        doc.relative_to(ROOT).as_posix(): [
            path
            for path in REPO_PATH.findall(doc.read_text(encoding="utf-8"))
            if not (ROOT / path).exists()
        ]
        for doc in doc_files()
    }
    assert not {doc: paths for doc, paths in missing.items() if paths}
