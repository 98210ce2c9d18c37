// The widget's DOM (docs/jobs-view.md). Knows nothing of EventSource or URLs beyond
// the injected `actions`: it is fed `info` objects from the connection layer
// and renders at most once per animation frame.

import { isNotFound } from "./api.js";
import {
  actionMessage, connectionText, element, fillBar, makeBar, renderLoop, viewContext,
} from "./dom.js";
import { canRetry, countsText, formatDuration, formatRate, parseTime, whereText } from "./format.js";
import { DELETED, isActive, isTerminal } from "./states.js";

export { canRetry, countsText, formatDuration, formatRate, whereText };

/** @typedef {import("./types.js").ConnectionInfo} ConnectionInfo */
/** @typedef {import("./types.js").Snapshot} Snapshot */
/** @typedef {import("./types.js").ItemsPage} ItemsPage */
/** @typedef {import("./types.js").OutputsAnswer} OutputsAnswer */

/**
 * The calls the view makes for the job it shows (each takes the job id).
 * @typedef {object} Actions
 * @property {(jobId: string) => Promise<void>} cancel
 * @property {(jobId: string) => Promise<void>} retry
 * @property {(jobId: string, limit?: number) => Promise<ItemsPage>} failedItems
 * @property {(jobId: string, limit?: number) => Promise<OutputsAnswer>} outputs the first
 *   page of outputs (of up to `limit` items) and the job's total
 * @property {(jobId: string) => void} gone a fetch for the job answered 404: it was deleted
 */

/**
 * @typedef {object} View
 * @property {HTMLElement} root
 * @property {(info: ConnectionInfo) => void} update
 * @property {(debug: boolean) => void} setDebug
 * @property {() => void} flush render now (tests; the terminal state before a snapshot)
 */

const FAILED_ITEMS_LIMIT = 20;
const FAILED_REFRESH_MS = 3000;
/** Outputs listed; the rest is counted ("and 99,980 more"). The kernel sends as many. */
export const OUTPUTS_SHOWN = 20;
/** What the widget says once a job's item logs reached its log limit (docs/jobs-view.md). */
export const LOGS_CUT_TEXT = "item logs were cut: the job reached its log limit";


/**
 * Mount the view in `el`.
 *
 * @param {HTMLElement} el the anywidget element
 * @param {object} options
 * @param {Actions} options.actions async calls for the job shown
 * @param {(path: string) => string} options.fileHref link that opens an output file in JupyterLab
 * @param {(path: string) => string} [options.downloadHref] link that downloads it
 * @param {AbortSignal} options.signal unmounts the view when aborted
 * @param {HTMLElement} [options.control] shown beside Cancel while the job runs (the notification control)
 * @param {(fn: () => void) => () => void} [options.frame] schedules a render; returns a cancel
 * @param {() => number} [options.now]
 * @param {Pick<import("./types.js").Timers, "setInterval" | "clearInterval">} [options.timers]
 * @returns {View}
 */
export function createView(el, options) {
  const { actions, fileHref, downloadHref, signal } = options;
  const { frame, now, timers, doc } = viewContext(el, options);

  const root = element(doc, "div", "bw-progress");
  const header = element(doc, "div", "bw-header");
  const name = element(doc, "span", "bw-name", "");
  const jobIdLabel = element(doc, "code", "bw-id", "");
  jobIdLabel.setAttribute("title", "the job id: bw.attach(id) finds the job again from any kernel");
  const status = element(doc, "span", "bw-status", "");
  const badge = element(doc, "span", "bw-connection", "");
  header.append(name, jobIdLabel, status, badge);

  const bar = makeBar(doc, "bw-bar");

  const stats = element(doc, "div", "bw-stats");
  const counts = element(doc, "span", "bw-counts", "");
  const rate = element(doc, "span", "bw-rate", "");
  const eta = element(doc, "span", "bw-eta", "");
  const elapsed = element(doc, "span", "bw-elapsed", "");
  const where = element(doc, "span", "bw-where", "");
  stats.append(counts, rate, eta, elapsed, where);

  const jobError = element(doc, "div", "bw-job-error", "");
  const logsCut = element(doc, "div", "bw-logs-cut", LOGS_CUT_TEXT);
  logsCut.setAttribute("title", "later items' logs were not kept (max_job_log_bytes)");
  logsCut.hidden = true;
  const controls = element(doc, "div", "bw-actions");
  const cancel = element(doc, "button", "bw-cancel", "Cancel");
  const retry = element(doc, "button", "bw-retry", "Retry");
  cancel.setAttribute("type", "button");
  retry.setAttribute("type", "button");
  const message = element(doc, "span", "bw-message", "");
  message.setAttribute("role", "status");
  const controlSlot = element(doc, "span", "bw-control");
  if (options.control) controlSlot.append(options.control);
  controls.append(cancel, retry, controlSlot, message);

  const diagnostics = element(doc, "div", "bw-debug", "");
  const failures = element(doc, "div", "bw-failures");
  const outputs = element(doc, "div", "bw-outputs");
  root.append(header, bar.bar, stats, jobError, logsCut, controls, diagnostics, failures, outputs);
  el.replaceChildren(root);

  const state = {
    /** @type {ConnectionInfo | null} */
    info: null,
    debug: false,
    message: "",
    busy: false,
    /** @type {ItemsPage | null} the last fetch */
    failedItems: null,
    /** @type {string | null} `${jobId}:${failed}:${finished_at}` of the last fetch */
    failedFetchedFor: null,
    failedFetchedAt: -Infinity,
    failedInflight: false,
    /** @type {OutputsAnswer | null} the first page of outputs, with the total */
    outputs: null,
    /** @type {string | null} */
    outputsFetchedFor: null,
    outputsInflight: false,
  };
  // The tick also retries a failed fetch of failed items or outputs.
  const loop = renderLoop(() => render(), { frame, timers, signal, tick: () => refreshDetails() });
  const schedule = loop.schedule;

  /** @param {"cancel" | "retry"} kind */
  async function act(kind) {
    const info = state.info;
    if (!info || state.busy) return;
    state.busy = true;
    state.message = "";
    schedule();
    try {
      await actions[kind](info.jobId);
      state.message = "";
    } catch (caught) {
      state.message = actionMessage(kind, caught);
    } finally {
      state.busy = false;
      schedule();
    }
  }
  cancel.addEventListener("click", () => act("cancel"), { signal });
  retry.addEventListener("click", () => act("retry"), { signal });

  function refreshDetails() {
    const info = state.info;
    const snapshot = info && info.snapshot;
    if (!info || !snapshot || signal.aborted || info.deleted) return;
    // A run's end (finished_at) is part of the key: a Retry that fails as many
    // items as before still fetches the new list.
    const key = `${info.jobId}:${snapshot.failed}:${snapshot.finished_at}`;
    const terminal = isTerminal(snapshot.status);
    if (snapshot.failed > 0 && state.failedFetchedFor !== key && !state.failedInflight) {
      if (terminal || now() - state.failedFetchedAt >= FAILED_REFRESH_MS) {
        state.failedInflight = true;
        state.failedFetchedAt = now();
        Promise.resolve()
          .then(() => actions.failedItems(info.jobId, FAILED_ITEMS_LIMIT))
          .then(
            (answer) => {
              state.failedItems = answer;
              state.failedFetchedFor = key;
            },
            (error) => {
              if (isNotFound(error)) {
                state.failedFetchedFor = key; // gone: never ask again
                actions.gone(info.jobId);
              } else {
                state.failedFetchedFor = null; // try again on the next tick
              }
            },
          )
          .finally(() => {
            state.failedInflight = false;
            schedule();
          });
      }
    }
    if (snapshot.failed === 0) {
      state.failedItems = null;
      state.failedFetchedFor = null;
    }
    const outputsKey = `${info.jobId}:${snapshot.status}:${snapshot.finished_at}`;
    if (terminal && state.outputsFetchedFor !== outputsKey && !state.outputsInflight) {
      state.outputsInflight = true;
      state.outputsFetchedFor = outputsKey;
      Promise.resolve()
        .then(() => actions.outputs(info.jobId, OUTPUTS_SHOWN))
        .then(
          (answer) => {
            state.outputs = answer && Array.isArray(answer.outputs) ? answer : { outputs: [] };
          },
          (error) => {
            if (isNotFound(error)) actions.gone(info.jobId);
            else state.outputsFetchedFor = null;
          },
        )
        .finally(() => {
          state.outputsInflight = false;
          schedule();
        });
    }
    if (!terminal) state.outputs = null;
  }

  function renderFailures() {
    const answer = state.failedItems;
    if (!answer || !answer.items || answer.items.length === 0) {
      failures.hidden = true;
      failures.replaceChildren();
      return;
    }
    failures.hidden = false;
    const title = element(doc, "div", "bw-section-title", `Failed items (${answer.total ?? answer.items.length})`);
    const list = element(doc, "ul", "bw-failure-list");
    for (const item of answer.items) {
      const row = element(doc, "li", "bw-failure");
      row.setAttribute("data-index", String(item.index));
      const input = typeof item.input === "string" ? item.input : JSON.stringify(item.input);
      row.append(
        element(doc, "span", "bw-failure-index", `#${item.index}`),
        element(doc, "code", "bw-failure-input", input),
        element(doc, "span", "bw-failure-error", item.error || "failed"),
      );
      if (item.traceback) row.setAttribute("title", item.traceback);
      if (item.log) {
        // What the item printed and logged, collapsed until asked for.
        const log = element(doc, "details", "bw-failure-log");
        log.append(element(doc, "summary", "", "output"), element(doc, "pre", "", item.log));
        row.append(log);
      }
      list.append(row);
    }
    failures.replaceChildren(title, list);
  }

  function renderOutputs() {
    const answer = state.outputs;
    if (!answer || answer.outputs.length === 0) {
      outputs.hidden = true;
      outputs.replaceChildren();
      return;
    }
    outputs.hidden = false;
    // The server answers a page (of items, each with its outputs): show the first few.
    const paths = answer.outputs.slice(0, OUTPUTS_SHOWN);
    const total = Math.max(Number(answer.total) || 0, answer.outputs.length);
    const title = element(doc, "div", "bw-section-title", `Outputs (${countText(total)})`);
    const list = element(doc, "ul", "bw-output-list");
    for (const path of paths) {
      const link = element(doc, "a", "bw-output", path);
      link.setAttribute("href", fileHref(path));
      link.setAttribute("target", "_blank");
      link.setAttribute("rel", "noopener");
      const row = element(doc, "li");
      row.append(link);
      if (downloadHref) {
        const download = element(doc, "a", "bw-download", "download");
        download.setAttribute("href", downloadHref(path));
        download.setAttribute("download", path.split("/").pop() || path);
        download.setAttribute("title", `download ${path}`);
        row.append(download);
      }
      list.append(row);
    }
    const rest = total - paths.length;
    if (rest > 0) {
      const more = element(doc, "div", "bw-outputs-more", `and ${countText(rest)} more`);
      more.setAttribute("title", "job.outputs() in the kernel lists every one");
      outputs.replaceChildren(title, list, more);
    } else {
      outputs.replaceChildren(title, list);
    }
  }

  function render() {
    const info = state.info;
    const snapshot = info ? info.snapshot : null;
    const deleted = Boolean(info && info.deleted);
    const connection = info ? info.connection : "connecting";
    const jobStatus = deleted ? DELETED : snapshot ? snapshot.status : "";
    root.setAttribute("data-job-id", info ? info.jobId : "");
    root.setAttribute("data-status", jobStatus);
    root.setAttribute("data-connection", connection);
    root.setAttribute("data-done", String(snapshot ? snapshot.done : 0));
    root.setAttribute("data-failed", String(snapshot ? snapshot.failed : 0));
    root.setAttribute("data-total", String(snapshot ? snapshot.total : 0));
    root.setAttribute("data-version", String(snapshot ? snapshot.version : 0));
    root.setAttribute("data-executor", snapshot && snapshot.executor ? snapshot.executor : "");

    name.textContent = snapshot ? snapshot.name : "";
    jobIdLabel.textContent = info ? info.jobId : "";
    status.textContent = jobStatus || "loading…";
    status.className = `bw-status bw-status-${jobStatus || "unknown"}`;
    badge.textContent = info ? connectionText(info, now()) : "connecting";
    badge.className = `bw-connection bw-connection-${connection}`;
    badge.setAttribute("title", info && info.error ? `last poll failed: ${info.error}` : "");

    fillBar(bar, snapshot);

    counts.textContent = snapshot ? countsText(snapshot) : "";
    const active = isActive(jobStatus);
    // No rate until an item of this run has ended (right after Retry, say).
    rate.textContent = active && snapshot && snapshot.rate ? formatRate(snapshot.rate) : "";
    eta.textContent =
      active && snapshot && snapshot.eta !== null ? `ETA ${formatDuration(snapshot.eta)}` : "";
    const started = snapshot ? parseTime(snapshot.started_at) : null;
    const finished = snapshot ? parseTime(snapshot.finished_at) : null;
    elapsed.textContent =
      started === null ? "" : `elapsed ${formatDuration(((finished ?? now()) - started) / 1000)}`;
    where.textContent = snapshot ? whereText(snapshot) : "";

    const errorText = deleted
      ? "This job is not on the server any more: it was deleted." +
        (snapshot ? " What is shown is its last known state." : "")
      : snapshot && snapshot.error
        ? snapshot.error
        : "";
    jobError.textContent = errorText;
    jobError.hidden = !errorText;
    logsCut.hidden = !(snapshot && snapshot.logs_cut === true);
    cancel.hidden = deleted || !active;
    controlSlot.hidden = deleted || !active;
    retry.hidden = deleted || !canRetry(snapshot);
    cancel.disabled = state.busy;
    retry.disabled = state.busy;
    message.textContent = state.message;

    diagnostics.hidden = !state.debug;
    diagnostics.textContent = info
      ? `reconnects ${info.reconnects} · polls ${info.polls} · v${snapshot ? snapshot.version : "—"}`
      : "";
    renderFailures();
    renderOutputs();
  }

  render();
  return {
    root,
    /** @param {ConnectionInfo} info */
    update(info) {
      if (signal.aborted) return;
      state.info = info;
      refreshDetails();
      schedule();
    },
    /** @param {boolean} debug */
    setDebug(debug) {
      state.debug = Boolean(debug);
      schedule();
    },
    /** Render now (tests; the terminal state before a snapshot is taken). */
    flush: loop.flush,
  };
}

/**
 * A count with thousands separators, the same in every locale: "99,980".
 * @param {number} count
 */
function countText(count) {
  return String(Math.round(count)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
