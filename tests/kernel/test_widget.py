"""The BatchProgress traits (SPEC §8) and its bundled front end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import traitlets

from batch_widget.kernel.widget import CONNECTION_STATES, BatchProgress

STATIC = Path(__file__).resolve().parents[2] / "batch_widget" / "static"

SYNCED = {
    "job_id",
    "reconnect_delay",
    "watchdog_interval",
    "watchdog_timeout",
    "debug",
    "status",
    "total",
    "done",
    "failed",
    "version",
    "connection",
    "reconnects",
    "polls",
    "transport",  # SPEC §12
    "kernel_snapshot",
    "kernel_extras",
}


def test_defaults_match_the_spec() -> None:
    widget = BatchProgress(job_id="job-1")
    assert widget.job_id == "job-1"
    assert (widget.reconnect_delay, widget.watchdog_interval, widget.watchdog_timeout) == (
        5000,
        15000,
        60000,
    )
    assert (widget.status, widget.total, widget.done, widget.failed, widget.version) == (
        "",
        0,
        0,
        0,
        0,
    )
    assert widget.connection == "connecting"
    assert (widget.reconnects, widget.polls) == (0, 0)
    assert widget.debug is False


def test_settings_can_be_given() -> None:
    widget = BatchProgress(job_id="j", reconnect_delay=100, watchdog_interval=200, debug=True)
    assert (widget.reconnect_delay, widget.watchdog_interval, widget.debug) == (100, 200, True)


@pytest.mark.parametrize("job_id", ["", "   ", None, 3])
def test_job_id_must_be_a_non_empty_string(job_id: object) -> None:
    with pytest.raises(traitlets.TraitError, match="job_id"):
        BatchProgress(job_id=job_id)  # type: ignore[arg-type]  # wrong on purpose


@pytest.mark.parametrize("name", ["reconnect_delay", "watchdog_interval", "watchdog_timeout"])
@pytest.mark.parametrize("value", [0, -1])
def test_delays_must_be_positive(name: str, value: int) -> None:
    with pytest.raises(traitlets.TraitError, match=f"{name} must be a positive"):
        BatchProgress(job_id="j", **{name: value})
    widget = BatchProgress(job_id="j")
    with pytest.raises(traitlets.TraitError, match=name):
        setattr(widget, name, value)


def test_transport_accepts_only_the_spec_values() -> None:
    widget = BatchProgress(job_id="j")
    assert widget.transport == "auto"
    for value in ("server", "kernel", "auto"):
        widget.transport = value
    with pytest.raises(traitlets.TraitError):
        widget.transport = "websocket"


def test_connection_accepts_only_the_spec_states() -> None:
    assert CONNECTION_STATES == (
        "connecting",
        "live",
        "reconnecting",
        "polling",
        "closed",
        "kernel",
    )  # SPEC §8, §12
    widget = BatchProgress(job_id="j")
    for state in CONNECTION_STATES:
        widget.connection = state
    with pytest.raises(traitlets.TraitError):
        widget.connection = "online"


def test_the_traits_are_synced() -> None:
    state = BatchProgress(job_id="x").get_state()
    assert set(state) >= SYNCED
    assert state["job_id"] == "x"
    assert state["connection"] == "connecting"


def test_no_credential_in_any_trait() -> None:
    names = BatchProgress(job_id="x").trait_names()
    suspicious = [n for n in names if re.search(r"token|passw|auth|secret|cookie|xsrf", n, re.I)]
    assert suspicious == []


def test_browser_updates_reach_python() -> None:
    widget = BatchProgress(job_id="x")
    widget.set_state({"status": "completed", "done": 3, "total": 3, "version": 9, "polls": 2})
    assert (widget.status, widget.done, widget.total, widget.version, widget.polls) == (
        "completed",
        3,
        3,
        9,
        2,
    )


def test_esm_is_a_bundled_es_module_with_a_default_export() -> None:
    # anywidget turns the `_esm` Path into its file's contents at class creation.
    path = STATIC / "widget.js"
    assert path.is_file()
    assert str(BatchProgress._esm) == path.read_text(encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    assert text.strip()
    assert re.search(r"export\s*\{[^}]*\bas default\b|export default", text)
    assert "bw-progress" in text
    assert (STATIC / "widget.css").read_text(encoding="utf-8").strip()


def test_widget_state_carries_the_bundle() -> None:
    state = BatchProgress(job_id="x").get_state()
    assert "export" in state["_esm"]
    assert ".bw-progress" in state["_css"]


def test_the_kernel_side_does_not_import_jupyter_server() -> None:
    code = (
        "import sys, batch_widget.kernel.widget as w; w.BatchProgress(job_id='x'); "
        "print('jupyter_server' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "False"
