"""``python -m batch_widget``: what a user can ask the package from a shell.

``python -m batch_widget config`` lists every setting of the server extension
(``c.BatchWidgetApp.<name>`` in ``jupyter_server_config.py``, or
``--BatchWidgetApp.<name>=`` on the ``jupyter lab`` / ``jupyter server``
command line) with its default and help. ``jupyter server --help-all`` cannot
show them: Jupyter prints its help before it loads any extension.
``--markdown`` prints the same as the table in docs/configuration.md.

``python -m batch_widget serve`` (also ``batch-widget serve``) runs the batch
server: the same API on 127.0.0.1, for kernels with no Jupyter server that has
the extension (VS Code, Colab, scripts). Kernels start it by themselves.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["config_markdown", "config_text", "main"]

#: Defaults that depend on the machine, as the docs state them.
_DEFAULT_LABELS = {
    "db_url": "sqlite:///<jupyter data dir>/batch_widget/jobs.sqlite",
    "broadcaster_class": "the built-in one",
    "manager_class": "the built-in one",
}


def _traits() -> list[tuple[str, Any]]:
    from batch_widget.server.app import BatchWidgetApp

    own = BatchWidgetApp.class_own_traits(config=True)
    # In the order the class declares them: the common ones first.
    return [(name, own[name]) for name in vars(BatchWidgetApp) if name in own]


def _default(name: str, trait: Any) -> str:
    if name in _DEFAULT_LABELS:
        return _DEFAULT_LABELS[name]
    value = trait.default()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    if value == "":
        return '""'
    return str(value)


def _help(trait: Any) -> str:
    return " ".join(str(trait.help).split())


def config_text() -> str:
    """Every setting as ``--BatchWidgetApp.<name>=<default>`` and its help."""
    lines = [
        "batch_widget settings: c.BatchWidgetApp.<name> = ... in jupyter_server_config.py,",
        "or --BatchWidgetApp.<name>=... on the jupyter lab / jupyter server command line.",
        "",
    ]
    for name, trait in _traits():
        lines.append(f"--BatchWidgetApp.{name}=<{type(trait).__name__}>")
        lines.append(f"    Default: {_default(name, trait)}")
        lines.append(f"    {_help(trait)}")
    return "\n".join(lines) + "\n"


def config_markdown() -> str:
    """Every setting as docs/configuration.md's Markdown table."""
    rows = ["| name | default | meaning |", "|---|---|---|"]
    for name, trait in _traits():
        help_text = _help(trait).replace("|", "\\|")
        rows.append(f"| `{name}` | `{_default(name, trait)}` | {help_text} |")
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m batch_widget",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="list the server extension's settings")
    config.add_argument(
        "--markdown",
        action="store_true",
        help="print them as docs/configuration.md's Markdown table",
    )
    commands.add_parser(
        "serve", add_help=False, help="run the batch server (--help for its options)"
    )
    args, rest = parser.parse_known_args(argv)
    if args.command == "serve":
        from batch_widget.server.standalone import main as serve

        return serve(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "config":
        sys.stdout.write(config_markdown() if args.markdown else config_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
