"""Python and the front end agree on names and defaults (the JS is read by node).

The widget's JS is its own program: nothing but this test ties its job states,
connection states, default timings and mirrored traits to Python's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from batch_widget.engine import DEFAULTS
from batch_widget.kernel.feed import OUTPUTS_SHOWN
from batch_widget.kernel.jobsview import JobsView
from batch_widget.kernel.widget import CONNECTION_STATES, BatchProgress
from batch_widget.protocol import ACTIVE_STATES, DELETED, TERMINAL_STATES, JobStatus, Snapshot
from batch_widget.server.events import COMPLETE, PROGRESS, event_name

JS_SRC = Path(__file__).resolve().parents[2] / "js" / "src"

_READ = """
const states = await import(process.argv[1] + "/states.js");
const widget = await import(process.argv[1] + "/widget.js");
const jobs = await import(process.argv[1] + "/jobswidget.js");
const view = await import(process.argv[1] + "/view.js");
console.log(JSON.stringify({
  active: states.ACTIVE_STATUSES,
  terminal: states.TERMINAL_STATUSES,
  connection: states.CONNECTION_STATES,
  deleted: states.DELETED,
  jobEvents: states.JOB_EVENTS,
  defaults: states.DEFAULTS,
  mirrored: widget.MIRRORED_TRAITS,
  jobsView: jobs.JOBS_VIEW,
  jobsSettings: jobs.JOBS_SETTING_TRAITS,
  jobsMirrored: jobs.JOBS_MIRRORED_TRAITS,
  outputsShown: view.OUTPUTS_SHOWN,
}));
"""


@pytest.fixture(scope="module")
def js() -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "node is needed to read the front end (install Node 20)"
    answer = subprocess.run(
        [node, "--input-type=module", "-e", _READ, JS_SRC.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Show node's own error (a syntax error, a missing export), not just its exit status.
    assert answer.returncode == 0, f"node could not read js/src:\n{answer.stderr}"
    values: dict[str, Any] = json.loads(answer.stdout)
    return values


def test_job_states_agree(js: dict[str, Any]) -> None:
    assert set(js["active"]) == {s.value for s in ACTIVE_STATES}
    assert set(js["terminal"]) == {s.value for s in TERMINAL_STATES}
    assert set(js["active"]) | set(js["terminal"]) == {s.value for s in JobStatus}


def test_the_stream_events_a_widget_listens_to_are_the_ones_the_server_sends(
    js: dict[str, Any],
) -> None:
    assert js["deleted"] == DELETED
    sent = {event_name({"status": status}) for status in [*JobStatus, DELETED]}
    assert sent == {PROGRESS, COMPLETE, DELETED}
    assert set(js["jobEvents"]) == sent


def test_connection_states_agree(js: dict[str, Any]) -> None:
    assert tuple(js["connection"]) == CONNECTION_STATES


def test_default_timings_agree(js: dict[str, Any]) -> None:
    traits = BatchProgress.class_traits()
    assert js["defaults"] == {
        "reconnectDelay": traits["reconnect_delay"].default_value,
        "watchdogInterval": traits["watchdog_interval"].default_value,
        "watchdogTimeout": traits["watchdog_timeout"].default_value,
    }
    # The stream's own retry hint (SSE `retry:`) and the widget's rebuild delay match.
    assert js["defaults"]["reconnectDelay"] == DEFAULTS.reconnect_delay


def test_every_mirrored_trait_is_a_synced_trait_of_the_widget(js: dict[str, Any]) -> None:
    traits = BatchProgress.class_traits(sync=True)
    assert set(js["mirrored"]) <= set(traits), set(js["mirrored"]) - set(traits)


def test_the_jobs_view_reads_and_reports_synced_traits_of_jobsview(js: dict[str, Any]) -> None:
    traits = JobsView.class_traits(sync=True)
    used = set(js["jobsSettings"]) | set(js["jobsMirrored"])
    assert used <= set(traits), used - set(traits)
    assert traits["_batch_view"].default_value == js["jobsView"]
    assert "_batch_view" not in BatchProgress.class_traits(), "a progress model renders as progress"


def test_the_kernel_sends_as_many_outputs_as_the_widget_shows(js: dict[str, Any]) -> None:
    assert js["outputsShown"] == OUTPUTS_SHOWN


def test_every_snapshot_field_is_in_the_front_end_s_snapshot_type() -> None:
    types = (JS_SRC / "types.js").read_text(encoding="utf-8")
    block = re.search(r"@typedef \{object\} Snapshot\n(.*?)\*/", types, re.S)
    assert block is not None, "types.js has no Snapshot typedef"
    fields = set(re.findall(r"@property \{[^}]*\} \[?(\w+)", block.group(1)))
    assert set(Snapshot.__annotations__) <= fields, set(Snapshot.__annotations__) - fields
