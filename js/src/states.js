// The names and defaults the front end shares with Python: job states
// (docs/http-api.md), connection states and default timings (docs/jobs-view.md). tests/test_js_contract.py
// checks them against batch_widget.protocol and the BatchProgress traits.

/** @typedef {import("./types.js").JobStatus} JobStatus */
/** @typedef {import("./types.js").ConnectionState} ConnectionState */

/** States a job is still moving in. */
export const ACTIVE_STATUSES = Object.freeze(/** @type {JobStatus[]} */ (["queued", "processing"]));

/** States a job ends in. */
export const TERMINAL_STATUSES = Object.freeze(
  /** @type {JobStatus[]} */ (["completed", "failed", "cancelled", "interrupted"]),
);

/**
 * What a widget shows once its job is gone from the server (deleted, announced
 * by a `deleted` event or found by a 404): not a job state, the end of the job.
 */
export const DELETED = "deleted";

/** The SSE event types that carry a job's snapshot (docs/http-api.md) or announce its deletion. */
export const JOB_EVENTS = Object.freeze(["progress", "complete", DELETED]);

/** The connection states a widget reports (docs/jobs-view.md): an explicit union, not booleans. */
export const CONNECTION_STATES = Object.freeze(
  /** @type {ConnectionState[]} */ (["connecting", "live", "reconnecting", "polling", "closed", "kernel"]),
);

/** Defaults of the widget's timing traits, in milliseconds (docs/jobs-view.md). */
export const DEFAULTS = Object.freeze({
  reconnectDelay: 5000,
  watchdogInterval: 15000,
  watchdogTimeout: 60000,
});

/**
 * True when `status` is a terminal job state.
 * @param {string | null | undefined} status
 */
export function isTerminal(status) {
  return TERMINAL_STATUSES.some((s) => s === status);
}

/**
 * True when `status` is an active job state.
 * @param {string | null | undefined} status
 */
export function isActive(status) {
  return ACTIVE_STATUSES.some((s) => s === status);
}
