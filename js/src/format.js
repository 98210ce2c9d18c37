// How the widgets word a job: durations, rates, counts, where it runs, and
// whether Retry has something to do. Pure functions, shared by every view.

import { isTerminal } from "./states.js";

/** @typedef {import("./types.js").Snapshot} Snapshot */

/**
 * "4 s", "2 min 05 s", "1 h 02 min".
 * @param {number | null | undefined} seconds
 */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "—";
  const total = Math.max(0, Math.round(Number(seconds)));
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${String(total % 60).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/**
 * "1.5 items/s", or "—" when unknown.
 * @param {number | null | undefined} rate
 */
export function formatRate(rate) {
  if (rate === null || rate === undefined || !Number.isFinite(Number(rate))) return "—";
  const value = Number(rate);
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} items/s`;
}

/**
 * The counts line: "4 done · 2 failed · 6 pending (1 retrying) of 12". Items of a finished
 * job that did not run will not run by themselves: they read "not run".
 * @param {Snapshot} snapshot
 */
export function countsText(snapshot) {
  const { done, failed, pending, total } = snapshot;
  const terminal = isTerminal(snapshot.status);
  const rest = terminal ? "not run" : "pending";
  const retrying = !terminal && snapshot.retrying ? ` (${snapshot.retrying} retrying)` : "";
  return `${done} done · ${failed} failed · ${pending} ${rest}${retrying} of ${total}`;
}

/**
 * Where the job runs: "on Dask · 4 workers", "on 2 processes", "on 4 threads"
 * while it runs; "on Dask" after; "" when the server does not say.
 * @param {Snapshot} snapshot
 */
export function whereText(snapshot) {
  const { executor, workers } = snapshot;
  const count = typeof workers === "number" && !isTerminal(snapshot.status) ? workers : null;
  const many = (/** @type {number} */ n, /** @type {string} */ one, /** @type {string} */ more) =>
    `${n} ${n === 1 ? one : more}`;
  if (executor === "dask") return count === null ? "on Dask" : `on Dask · ${many(count, "worker", "workers")}`;
  if (count === null) return "";
  if (executor === "process") return `on ${many(count, "process", "processes")}`;
  return `on ${many(count, "thread", "threads")}`;
}

/**
 * Whether Retry has something to do for this snapshot (docs/http-api.md `retry`).
 * @param {Snapshot | null | undefined} snapshot
 */
export function canRetry(snapshot) {
  // The server's rule: a finished job with items not done; otherwise it answers
  // 409 "nothing to retry", so the button would only lead to an error.
  if (!snapshot || !isTerminal(snapshot.status)) return false;
  if (snapshot.done >= snapshot.total) return false;
  return snapshot.status !== "completed" || snapshot.failed > 0;
}

/** @param {string | null | undefined} value */
export function parseTime(value) {
  if (!value) return null;
  const time = Date.parse(value);
  return Number.isNaN(time) ? null : time;
}

