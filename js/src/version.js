// The version rule of docs/internals.md, in one place: a snapshot of a job is shown only
// if its version is newer than the one shown, whichever way it came (a stream
// event, a poll, the answer to an action, a page of the job list, the kernel).

/** @typedef {import("./types.js").Snapshot} Snapshot */

/**
 * True when `offered` may replace `shown` (nothing shown yet: any version may).
 * A version that is not a number is never newer.
 * @param {Pick<Snapshot, "version">} offered
 * @param {Pick<Snapshot, "version"> | null | undefined} shown
 */
export function isNewer(offered, shown) {
  return Number(offered.version) > (shown ? Number(shown.version) : -Infinity);
}
