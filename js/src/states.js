// Job states (SPEC §2), in one place for the connection layer, the view and
// the model mirror.

/** States a job is still moving in. */
export const ACTIVE_STATUSES = Object.freeze(["queued", "processing"]);

/** States a job ends in. */
export const TERMINAL_STATUSES = Object.freeze(["completed", "failed", "cancelled", "interrupted"]);

/** True when `status` is a terminal job state. */
export function isTerminal(status) {
  return TERMINAL_STATUSES.includes(status);
}

/** True when `status` is an active job state. */
export function isActive(status) {
  return ACTIVE_STATUSES.includes(status);
}
