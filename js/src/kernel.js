// The kernel transport of docs/batch-server.md: the kernel's channel as a Source, and the
// `auto` choice between it and the page's server.
//
// Where the page's Jupyter server cannot answer for the job (a batch server on
// another origin, a VS Code webview, a JupyterLab without the extension), the
// kernel follows the job and sets the model's `kernel_snapshot` (a jobs view's
// `kernel_jobs`); polls, Cancel and Retry go to the kernel as custom messages.
// The version rule and the watchdog are the watches' (watch.js, listwatch.js),
// as for the page's stream.
//
// `chooseTransport` makes the `auto` choice: the page's server if it answers for
// the job within 2 s, else the kernel.

import { isNotFound } from "./api.js";
import { onTraits, tellKernel } from "./modelsync.js";
import { DELETED } from "./states.js";

/** @typedef {import("./types.js").Snapshot} Snapshot */
/** @typedef {import("./types.js").Timers} Timers */
/** @typedef {import("./types.js").WidgetModel} WidgetModel */
/** @typedef {import("./types.js").Api} Api */
/** @typedef {import("./source.js").Source} Source */
/** @typedef {import("./source.js").SourceHost} SourceHost */
/** @typedef {import("./source.js").PageOptions} PageOptions */
/** @typedef {(type: "cancel" | "retry", jobId: string) => object} ActionMessage */

/** How long the page's server gets to answer for the job before `auto` picks the kernel. */
export const AUTO_PROBE_MS = 2000;

/** What a jobs view says when it follows the server through the kernel. */
export const KERNEL_NOTE = "Through the kernel: the page cannot reach the server's job API.";

/**
 * Pick where updates come from: "server" or "kernel".
 * @param {string} transport the model's `transport` trait
 * @param {(signal: AbortSignal) => Promise<unknown>} probe asks the page's server for the job
 * @param {{ timers: Pick<Timers, "setTimeout" | "clearTimeout">, signal: AbortSignal }} options
 * @returns {Promise<"server" | "kernel">}
 */
export async function chooseTransport(transport, probe, { timers, signal }) {
  if (transport === "server" || transport === "kernel") return transport;
  const controller = new AbortController();
  const stop = () => controller.abort();
  signal.addEventListener("abort", stop, { once: true });
  const timer = timers.setTimeout(stop, AUTO_PROBE_MS);
  try {
    await probe(controller.signal);
    return "server";
  } catch (error) {
    // batch_widget's own JSON 404 answers for the job: it is gone, and the stream says so.
    if (isNotFound(error) && /** @type {{json?: boolean}} */ (error).json) return "server";
    return "kernel"; // Jupyter's 404 page (no extension there), refused, or too slow
  } finally {
    timers.clearTimeout(timer);
    signal.removeEventListener("abort", stop);
  }
}

/**
 * Where a widget's updates come from, once chosen: the options that
 * `subscribe`/`subscribeList` (connection.js) take to follow it there.
 * @typedef {object} Chosen
 * @property {string} note what a view says about it ("" for the page's server)
 * @property {{source: Source} | PageOptions} options
 */

/**
 * Make the model's `transport` choice and return where to follow the job(s).
 * @param {WidgetModel} model
 * @param {{
 *   probe: (signal: AbortSignal) => Promise<unknown>,
 *   page: {baseUrl: string, token: string},
 *   api: Api,
 *   message?: ActionMessage,
 *   announce?: boolean,
 *   timers: Pick<Timers, "setTimeout" | "clearTimeout">,
 *   signal: AbortSignal,
 * }} options `message` words Cancel/Retry for the kernel; `announce` tells the
 *   kernel when the page's server was chosen (so it may stop following the job)
 * @returns {Promise<Chosen>}
 */
export async function chooseSource(model, options) {
  const { page, api, signal } = options;
  const chosen = await chooseTransport(model.get("transport"), options.probe, options);
  if (chosen === "kernel") {
    return { note: KERNEL_NOTE, options: { source: new KernelSource(model, options.message) } };
  }
  if (options.announce && !signal.aborted) {
    tellKernel(model, { type: "transport", value: "server" });
  }
  return { note: "", options: { baseUrl: page.baseUrl, token: page.token, api } };
}

/** The kernel's channel through the model: a Source (see source.js). */
export class KernelSource {
  /**
   * @param {WidgetModel} model
   * @param {ActionMessage} [message] the custom message for Cancel or Retry
   */
  constructor(model, message = (type) => ({ type })) {
    this.model = model;
    this.message = message;
    this.url = "kernel";
    /** The kernel sends a page of jobs when asked, not each job's events. */
    this.listsOnRequest = true;
    /** Nothing to catch up on when a job is followed: the kernel sends it. */
    this.isOpen = false;
    /** @type {"kernel"} */
    this.phase = "kernel";
    /** @type {SourceHost | null} */
    this.host = null;
  }

  /** @param {SourceHost} host */
  start(host) {
    this.host = host;
    const { model } = this;
    const onSnapshot = () => this.deliverSnapshot(model.get("kernel_snapshot"));
    const onJobs = () => this.deliverPage(model.get("kernel_jobs"));
    onTraits(model, ["kernel_snapshot"], onSnapshot, host.signal);
    onTraits(model, ["kernel_jobs"], onJobs, host.signal);
    // What the kernel sent before this view existed.
    onSnapshot();
    const jobs = model.get("kernel_jobs");
    if (jobs && Array.isArray(jobs.jobs)) onJobs();
  }

  /** @param {unknown} value */
  deliverSnapshot(value) {
    if (!this.host || this.host.signal.aborted || !value || typeof value !== "object") return;
    const snapshot = /** @type {Snapshot} */ (value);
    if (typeof snapshot.id !== "string") return;
    const type = /** @type {string} */ (snapshot.status) === DELETED ? DELETED : "progress";
    this.host.events.onSnapshot(type, snapshot);
  }

  /** @param {import("./types.js").ModelState["kernel_jobs"]} value */
  deliverPage(value) {
    if (!this.host || this.host.signal.aborted || !value) return;
    const { jobs, total, error } = value;
    this.host.events.onPage({ jobs, total, error });
  }

  /** @returns {"kernel"} */
  connection() {
    return "kernel";
  }

  restartIfMute() {
    return false;
  }

  downTooLong() {
    return false;
  }

  /** A poll through the kernel: ask it to send the job again; the answer is a snapshot. */
  fetchJob() {
    tellKernel(this.model, { type: "refresh" });
    return Promise.resolve(null);
  }

  /** A poll of the page through the kernel: the answer is a `kernel_jobs` page. */
  fetchList() {
    tellKernel(this.model, { type: "refresh" });
    return Promise.resolve(null);
  }

  /**
   * @param {"cancel" | "retry"} type
   * @param {string} jobId
   */
  act(type, jobId) {
    tellKernel(this.model, this.message(type, jobId));
    return Promise.resolve(null);
  }

  /** A finished job's failed items, as the kernel sent them. */
  failedItems() {
    return Promise.resolve(this.extras().failed_items || { items: [], total: 0 });
  }

  /** The kernel sends only the first outputs, and their total. */
  outputs() {
    const extras = this.extras();
    const outputs = extras.outputs || [];
    return Promise.resolve({ outputs, total: extras.outputs_total ?? outputs.length });
  }

  /** @returns {NonNullable<import("./types.js").ModelState["kernel_extras"]>} */
  extras() {
    return this.model.get("kernel_extras") || {};
  }
}
