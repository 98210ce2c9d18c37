// The kernel transport of SPEC §12: a job followed through the kernel.
//
// Where the page's Jupyter server cannot answer for the job (a batch server on
// another origin, a VS Code webview, a JupyterLab without the extension), the
// kernel follows the job and sets the model's `kernel_snapshot`; Cancel, Retry
// and the watchdog's refresh go to the kernel as custom messages. The version
// rule holds here too: a snapshot is shown only if it is newer. The watchdog
// still runs: no update for `watchdogTimeout` → ask the kernel for a fresh one.
//
// `chooseTransport` makes the `auto` choice: the page's server if it answers for
// the job within 2 s, else the kernel.

import { isNotFound } from "./api.js";
import { every } from "./lifetime.js";
import { tellKernel } from "./modelsync.js";
import { DEFAULTS, DELETED, isTerminal } from "./states.js";

/** @typedef {import("./types.js").Snapshot} Snapshot */
/** @typedef {import("./types.js").ConnectionInfo} ConnectionInfo */
/** @typedef {import("./types.js").Timers} Timers */
/** @typedef {import("./types.js").WidgetModel} WidgetModel */
/** @typedef {import("./hub.js").Subscription} Subscription */
/** @typedef {import("./hub.js").TimingOptions} TimingOptions */

/** How long the page's server gets to answer for the job before `auto` picks the kernel. */
export const AUTO_PROBE_MS = 2000;

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
 * Follow `jobId` through the kernel: the same interface as the hub's `subscribe`.
 * @param {string} jobId
 * @param {(info: ConnectionInfo) => void} listener
 * @param {TimingOptions & {
 *   model: WidgetModel & { send: (content: object) => void },
 *   timers: Timers,
 *   now?: () => number,
 *   signal: AbortSignal,
 * }} options
 * @returns {Subscription}
 */
export function followThroughKernel(jobId, listener, options) {
  const { model, timers, signal } = options;
  const now = options.now || Date.now;
  const controller = new AbortController();
  const lifetime = controller.signal;
  signal.addEventListener("abort", () => controller.abort(), { once: true });
  let settings = {
    watchdogInterval: options.watchdogInterval ?? DEFAULTS.watchdogInterval,
    watchdogTimeout: options.watchdogTimeout ?? DEFAULTS.watchdogTimeout,
  };
  /** @type {Snapshot | null} */
  let snapshot = null;
  let version = -Infinity;
  let deleted = false;
  let polls = 0;
  let lastUpdate = now();
  /** @type {number | null} */
  let shownAt = null;

  function emit() {
    if (lifetime.aborted) return;
    listener({
      jobId,
      snapshot,
      connection: deleted ? "closed" : "kernel",
      reconnects: 0,
      polls,
      lastUpdate: shownAt,
      error: null,
      deleted,
    });
  }

  /** @param {unknown} value */
  function apply(value) {
    if (deleted || !value || typeof value !== "object") return;
    const offered = /** @type {Snapshot} */ (value);
    if (offered.id !== jobId || !(offered.version > version)) return;
    lastUpdate = now();
    if (/** @type {string} */ (offered.status) === DELETED) {
      deleted = true;
      stopWatchdog();
    } else {
      snapshot = offered;
      version = offered.version;
      shownAt = lastUpdate;
    }
    emit();
  }

  function refresh() {
    if (deleted) return;
    polls += 1;
    tellKernel(model, { type: "refresh" });
    emit();
  }

  let stopWatchdog = () => {};
  function startWatchdog() {
    stopWatchdog();
    stopWatchdog = every(timers, settings.watchdogInterval, () => {
      if (deleted || (snapshot && isTerminal(snapshot.status))) return;
      if (now() - lastUpdate > settings.watchdogTimeout) {
        lastUpdate = now();
        refresh();
      }
    }, lifetime);
  }

  const onChange = () => apply(model.get("kernel_snapshot"));
  model.on("change:kernel_snapshot", onChange);
  lifetime.addEventListener("abort", () => model.off("change:kernel_snapshot", onChange), {
    once: true,
  });
  startWatchdog();
  apply(model.get("kernel_snapshot"));
  emit();

  return Object.assign(() => controller.abort(), {
    update: (/** @type {TimingOptions} */ changes) => {
      settings = { ...settings, ...changes };
      startWatchdog();
      emit();
    },
    poll: refresh,
    gone: () => {
      deleted = true;
      stopWatchdog();
      emit();
    },
    offer: apply,
  });
}
