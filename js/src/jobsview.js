// The jobs view's DOM (docs/jobs-view.md): every job of the server, newest first, one
// row per job with the data attributes of docs/jobs-view.md. Fed `ListInfo` objects by the
// connection layer; renders at most once per animation frame and keeps each
// row's elements across renders (a click never lands on a replaced button).

import {
  actionMessage, connectionText, element, fillBar, makeBar, renderLoop, viewContext,
} from "./dom.js";
import { canRetry, countsText, formatRate, whereText } from "./format.js";
import { isActive } from "./states.js";

/** @typedef {import("./types.js").ListInfo} ListInfo */
/** @typedef {import("./types.js").Snapshot} Snapshot */

/**
 * What the jobs view asks of its owner.
 * @typedef {object} JobsActions
 * @property {(jobId: string) => Promise<void>} cancel
 * @property {(jobId: string) => Promise<void>} retry
 * @property {(offset: number) => void} page show the page of jobs starting at `offset`
 */

/**
 * @typedef {object} JobsView
 * @property {HTMLElement} root
 * @property {(info: ListInfo) => void} update
 * @property {(debug: boolean) => void} setDebug
 * @property {(text: string) => void} setNote a line above the rows (how the list is kept current)
 * @property {() => void} flush render now (tests)
 */

/**
 * The elements of one row.
 * @typedef {object} Row
 * @property {HTMLElement} row
 * @property {HTMLElement} name
 * @property {HTMLElement} id
 * @property {HTMLElement} status
 * @property {{bar: HTMLElement, done: HTMLElement, failed: HTMLElement}} bar
 * @property {HTMLElement} counts
 * @property {HTMLElement} rate
 * @property {HTMLElement} executor
 * @property {HTMLElement} error the job's own error (a processor that cannot be imported, say)
 * @property {HTMLButtonElement} cancel
 * @property {HTMLButtonElement} retry
 * @property {HTMLElement} message
 */

/** @type {Record<string, string>} */
const POOLS = { thread: "threads", process: "processes", dask: "on Dask" };

/**
 * The pool a finished job ran on: "threads", "processes", "on Dask".
 * @param {string | undefined} executor
 */
export function poolText(executor) {
  return executor ? POOLS[executor] || executor : "";
}

/**
 * "1–50 of 230 jobs", "no jobs".
 * @param {ListInfo} info
 */
export function rangeText(info) {
  const { rows, total, query } = info;
  const what = query.status ? `${query.status} jobs` : "jobs";
  if (rows.length === 0) return total > 0 ? `none here of ${total} ${what}` : `no ${what}`;
  const first = query.offset + 1;
  return `${first}–${query.offset + rows.length} of ${Math.max(total, query.offset + rows.length)} ${what}`;
}

/**
 * Mount the jobs view in `el`.
 *
 * @param {HTMLElement} el the anywidget element
 * @param {object} options
 * @param {JobsActions} options.actions
 * @param {AbortSignal} options.signal unmounts the view when aborted
 * @param {HTMLElement} [options.control] put in the header (the notification control)
 * @param {(fn: () => void) => () => void} [options.frame] schedules a render; returns a cancel
 * @param {() => number} [options.now]
 * @param {Pick<import("./types.js").Timers, "setInterval" | "clearInterval">} [options.timers]
 * @returns {JobsView}
 */
export function createJobsView(el, options) {
  const { actions, signal } = options;
  const { frame, now, timers, doc } = viewContext(el, options);

  const root = element(doc, "div", "bw-jobs");
  const header = element(doc, "div", "bw-jobs-header");
  const title = element(doc, "span", "bw-jobs-title", "Jobs");
  const range = element(doc, "span", "bw-jobs-range", "");
  const badge = element(doc, "span", "bw-connection", "connecting");
  const newer = element(doc, "button", "bw-newer", "‹ newer");
  const older = element(doc, "button", "bw-older", "older ›");
  newer.setAttribute("type", "button");
  older.setAttribute("type", "button");
  header.append(title, range, badge);
  if (options.control) header.append(options.control);
  header.append(newer, older);
  const note = element(doc, "div", "bw-jobs-note", "");
  const list = element(doc, "div", "bw-jobs-list");
  list.setAttribute("role", "list");
  const empty = element(doc, "div", "bw-jobs-empty", "");
  const diagnostics = element(doc, "div", "bw-debug", "");
  root.append(header, note, list, empty, diagnostics);
  el.replaceChildren(root);

  const state = {
    /** @type {ListInfo | null} */
    info: null,
    debug: false,
    /** @type {Set<string>} rows with an action in flight */
    busy: new Set(),
    /** @type {Map<string, string>} the last failed action's message, per row */
    messages: new Map(),
  };
  /** @type {Map<string, Row>} */
  const rows = new Map();
  /** @type {string[]} the ids in the order they are shown */
  let order = [];
  const loop = renderLoop(() => render(), { frame, timers, signal });
  const schedule = loop.schedule;

  const pageBy = (/** @type {number} */ direction) => {
    const info = state.info;
    if (!info) return;
    const { offset, limit } = info.query;
    actions.page(Math.max(0, offset + direction * limit));
  };
  newer.addEventListener("click", () => pageBy(-1), { signal });
  older.addEventListener("click", () => pageBy(1), { signal });

  /**
   * @param {"cancel" | "retry"} kind
   * @param {string} jobId
   */
  async function act(kind, jobId) {
    if (state.busy.has(jobId)) return;
    state.busy.add(jobId);
    state.messages.delete(jobId);
    schedule();
    try {
      await actions[kind](jobId);
    } catch (caught) {
      state.messages.set(jobId, actionMessage(kind, caught));
    } finally {
      state.busy.delete(jobId);
      schedule();
    }
  }

  /**
   * @param {string} jobId
   * @returns {Row}
   */
  function makeRow(jobId) {
    const row = element(doc, "div", "bw-job-row");
    row.setAttribute("role", "listitem");
    row.setAttribute("data-job-id", jobId);
    const head = element(doc, "div", "bw-job-head");
    const name = element(doc, "span", "bw-name", "");
    const id = element(doc, "code", "bw-id", jobId);
    id.setAttribute("title", "the job id: bw.attach(id) shows this job in a notebook");
    const status = element(doc, "span", "bw-status", "");
    const buttons = element(doc, "span", "bw-job-actions");
    const cancel = element(doc, "button", "bw-cancel", "Cancel");
    const retry = element(doc, "button", "bw-retry", "Retry");
    cancel.setAttribute("type", "button");
    retry.setAttribute("type", "button");
    buttons.append(cancel, retry);
    head.append(name, id, status, buttons);
    const bar = makeBar(doc, "bw-bar bw-bar-small");
    const stats = element(doc, "div", "bw-stats");
    const counts = element(doc, "span", "bw-counts", "");
    const rate = element(doc, "span", "bw-rate", "");
    const executor = element(doc, "span", "bw-executor", "");
    stats.append(counts, rate, executor);
    const error = element(doc, "div", "bw-job-error", "");
    const message = element(doc, "div", "bw-message", "");
    message.setAttribute("role", "status");
    cancel.addEventListener("click", () => act("cancel", jobId), { signal });
    retry.addEventListener("click", () => act("retry", jobId), { signal });
    row.append(head, bar.bar, stats, error, message);
    return { row, name, id, status, bar, counts, rate, executor, error, cancel, retry, message };
  }

  /**
   * @param {Row} parts
   * @param {Snapshot} snapshot
   * @param {string} connection
   */
  function fillRow(parts, snapshot, connection) {
    const { row } = parts;
    row.setAttribute("data-status", snapshot.status);
    row.setAttribute("data-connection", connection);
    row.setAttribute("data-done", String(snapshot.done));
    row.setAttribute("data-failed", String(snapshot.failed));
    row.setAttribute("data-total", String(snapshot.total));
    row.setAttribute("data-version", String(snapshot.version));
    row.setAttribute("data-executor", snapshot.executor || "");
    parts.name.textContent = snapshot.name;
    parts.name.setAttribute("title", snapshot.processor || "");
    parts.status.textContent = snapshot.status;
    parts.status.className = `bw-status bw-status-${snapshot.status}`;
    fillBar(parts.bar, snapshot);
    parts.counts.textContent = countsText(snapshot);
    const active = isActive(snapshot.status);
    parts.rate.textContent = active && snapshot.rate ? formatRate(snapshot.rate) : "";
    parts.executor.textContent = whereText(snapshot) || poolText(snapshot.executor);
    parts.error.textContent = snapshot.error || "";
    parts.error.hidden = !snapshot.error;
    const busy = state.busy.has(snapshot.id);
    parts.cancel.hidden = !active;
    parts.retry.hidden = !canRetry(snapshot);
    parts.cancel.disabled = busy;
    parts.retry.disabled = busy;
    const message = state.messages.get(snapshot.id) || "";
    parts.message.textContent = message;
    parts.message.hidden = !message;
  }

  function render() {
    const info = state.info;
    const connection = info ? info.connection : "connecting";
    root.setAttribute("data-connection", connection);
    root.setAttribute("data-total", String(info ? info.total : 0));
    root.setAttribute("data-shown", String(info ? info.rows.length : 0));
    root.setAttribute("data-offset", String(info ? info.query.offset : 0));
    badge.textContent = info ? connectionText(info, now()) : "connecting";
    badge.className = `bw-connection bw-connection-${connection}`;
    badge.setAttribute("title", info && info.error ? `last fetch failed: ${info.error}` : "");
    range.textContent = info && info.loaded ? rangeText(info) : "loading…";
    const offset = info ? info.query.offset : 0;
    const limit = info ? info.query.limit : 0;
    newer.hidden = offset === 0;
    older.hidden = !info || offset + limit >= info.total;

    const shown = info ? info.rows : [];
    const ids = shown.map((snapshot) => snapshot.id);
    for (const id of [...rows.keys()]) {
      if (!ids.includes(id)) rows.delete(id);
    }
    for (const snapshot of shown) {
      let parts = rows.get(snapshot.id);
      if (!parts) {
        parts = makeRow(snapshot.id);
        rows.set(snapshot.id, parts);
      }
      fillRow(parts, snapshot, connection);
    }
    if (ids.length !== order.length || ids.some((id, at) => id !== order[at])) {
      list.replaceChildren(...ids.map((id) => /** @type {Row} */ (rows.get(id)).row));
      order = ids;
    }
    const loaded = Boolean(info && info.loaded);
    const failed = Boolean(info && info.error && !loaded);
    empty.hidden = shown.length > 0 || !(loaded || failed);
    empty.textContent = failed
      ? `Could not list the jobs: ${info && info.error}`
      : "No jobs yet: bw.submit(...) starts one, and it shows here at once.";
    diagnostics.hidden = !state.debug;
    diagnostics.textContent = info ? `reconnects ${info.reconnects} · polls ${info.polls}` : "";
  }

  render();
  return {
    root,
    /** @param {ListInfo} info */
    update(info) {
      if (signal.aborted) return;
      state.info = info;
      schedule();
    },
    /** @param {boolean} debug */
    setDebug(debug) {
      state.debug = Boolean(debug);
      schedule();
    },
    /** @param {string} text */
    setNote(text) {
      note.textContent = text;
      note.hidden = !text;
    },
    flush: loop.flush,
  };
}
