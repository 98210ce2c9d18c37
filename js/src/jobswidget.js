// The jobs view's anywidget side (SPEC §13): a `bw.JobsView` model rendered
// as every job of the server, newest first, live.
//
// With the page's server it follows the page's one stream (connection.js
// `subscribeList`: no second EventSource, the same recovery layers). Where the
// page cannot reach the server (SPEC §12), the kernel fetches the page of jobs
// and sets `kernel_jobs`; the view asks it again every second while a job on
// it is moving, and every `watchdog_interval` otherwise.

import { subscribeList } from "./connection.js";
import { createJobsView } from "./jobsview.js";
import { chooseTransport } from "./kernel.js";
import { after, defaultTimers } from "./lifetime.js";
import { listQuery, newestOf } from "./listwatch.js";
import {
  act, createMirror, onTraits, pageApi, SETTING_TRAITS, settingsOf, tellKernel,
} from "./modelsync.js";
import { notifyControl, pageNotifier } from "./notify.js";
import { isActive } from "./states.js";

/** @typedef {import("./types.js").ListInfo} ListInfo */
/** @typedef {import("./types.js").ListQuery} ListQuery */
/** @typedef {import("./types.js").Snapshot} Snapshot */
/** @typedef {import("./types.js").Timers} Timers */
/** @typedef {import("./types.js").WidgetModel} WidgetModel */
/** @typedef {import("./types.js").RenderProps} RenderProps */
/** @typedef {import("./hub.js").ListSubscription} ListSubscription */

/** The model's `_batch_view` for a jobs view (a progress widget has none). */
export const JOBS_VIEW = "jobs";
/** Traits the browser reads from a `bw.JobsView` model (Python → browser). */
export const JOBS_SETTING_TRAITS = Object.freeze([
  "_batch_view", "status_filter", "limit", "offset", "reconnect_delay", "watchdog_interval",
  "watchdog_timeout", "debug", "transport", "kernel_jobs",
]);
/** Traits the browser reports back (browser → Python). */
export const JOBS_MIRRORED_TRAITS = Object.freeze(
  /** @type {const} */ (["total", "shown", "connection", "reconnects", "polls"]),
);

/** How often the view asks the kernel for the page while a job on it moves. */
export const KERNEL_ACTIVE_REFRESH_MS = 1000;

/** @param {WidgetModel} model */
function queryOf(model) {
  return listQuery({
    status: model.get("status_filter") || "",
    limit: model.get("limit"),
    offset: model.get("offset"),
  });
}

/**
 * A page of jobs through the kernel: the same interface as `subscribeList`.
 * @param {(info: ListInfo) => void} listener
 * @param {{
 *   model: WidgetModel,
 *   timers: Timers,
 *   signal: AbortSignal,
 *   watchdogInterval: number,
 *   now?: () => number,
 * }} options
 * @returns {ListSubscription}
 */
export function followListThroughKernel(listener, options) {
  const { model, timers } = options;
  const now = options.now || Date.now;
  const controller = new AbortController();
  const lifetime = controller.signal;
  options.signal.addEventListener("abort", () => controller.abort(), { once: true });
  let interval = options.watchdogInterval;
  /** @type {Snapshot[]} */
  let rows = [];
  let total = 0;
  let loaded = false;
  let polls = 0;
  /** @type {number | null} */
  let lastUpdate = null;
  /** @type {string | null} */
  let error = null;
  /** @type {(() => void) | null} */
  let cancelTimer = null;

  const tell = () =>
    listener({
      rows: rows.slice(),
      total,
      query: queryOf(model),
      loaded,
      connection: lifetime.aborted ? "closed" : "kernel",
      reconnects: 0,
      polls,
      lastUpdate,
      error,
    });

  const refresh = () => {
    if (lifetime.aborted) return;
    polls += 1;
    tellKernel(model, { type: "refresh" });
    schedule();
  };
  const schedule = () => {
    if (cancelTimer) cancelTimer();
    const active = rows.some((row) => isActive(row.status));
    cancelTimer = after(timers, active ? KERNEL_ACTIVE_REFRESH_MS : interval, refresh, lifetime);
  };

  const onJobs = () => {
    const answer = model.get("kernel_jobs") || {};
    rows = newestOf(rows, answer.jobs || []);
    total = Number(answer.total) || 0;
    error = answer.error || null;
    loaded = loaded || Array.isArray(answer.jobs);
    lastUpdate = now();
    schedule();
    tell();
  };
  onTraits(model, ["kernel_jobs"], onJobs, lifetime);
  if (model.get("kernel_jobs") && Array.isArray((model.get("kernel_jobs") || {}).jobs)) onJobs();
  refresh();
  tell();

  return Object.assign(() => controller.abort(), {
    update: (/** @type {{watchdogInterval?: number}} */ changes) => {
      if (changes.watchdogInterval) interval = changes.watchdogInterval;
    },
    poll: refresh,
    query: () => refresh(),
    offer: () => refresh(),
  });
}

/**
 * Render one jobs view of the model.
 * @param {RenderProps} props
 */
export function renderJobs({ model, el }) {
  const controller = new AbortController();
  const lifetime = controller.signal;
  const { page, api } = pageApi();
  const timers = defaultTimers();
  const notifier = pageNotifier();
  /** @type {"server" | "kernel" | null} */
  let mode = null;
  /** @type {ListSubscription | null} */
  let handle = null;

  /**
   * @param {"cancel" | "retry"} type
   * @param {string} jobId
   */
  const action = async (type, jobId) => mode === "kernel"
    ? tellKernel(model, { type, job_id: jobId })
    : act(api[type], jobId, lifetime, handle);
  const view = createJobsView(el, {
    actions: {
      cancel: (jobId) => action("cancel", jobId),
      retry: (jobId) => action("retry", jobId),
      page: (offset) => {
        model.set("offset", offset);
        model.save_changes();
      },
    },
    control: notifyControl(el.ownerDocument || globalThis.document, notifier, lifetime),
    signal: lifetime,
  });
  view.setNote("");
  view.setDebug(model.get("debug"));
  const mirror = createMirror(model, lifetime, JOBS_MIRRORED_TRAITS, {
    urgent: (values) => values.connection === "closed",
  });

  /** @param {ListInfo} info */
  const listener = (info) => {
    view.update(info);
    mirror.push({
      total: info.total,
      shown: info.rows.length,
      connection: info.connection,
      reconnects: info.reconnects,
      polls: info.polls,
    });
    for (const row of info.rows) notifier.observe(row);
  };
  const onQuery = () => {
    if (handle) handle.query(queryOf(model));
  };
  const onSettings = () => {
    view.setDebug(model.get("debug"));
    if (handle) handle.update(settingsOf(model));
  };
  onTraits(model, ["status_filter", "limit", "offset"], onQuery, lifetime);
  onTraits(model, SETTING_TRAITS, onSettings, lifetime);

  const probe = (/** @type {AbortSignal} */ signal) =>
    api.listJobs({ status: "", limit: 1, offset: 0 }, signal);
  chooseTransport(model.get("transport"), probe, { timers, signal: lifetime }).then((chosen) => {
    if (lifetime.aborted) return;
    mode = chosen;
    if (chosen === "kernel") {
      view.setNote("Through the kernel: the page cannot reach the server's job API.");
      handle = followListThroughKernel(listener, { model, timers, signal: lifetime, ...settingsOf(model) });
      return;
    }
    handle = subscribeList(listener, {
      baseUrl: page.baseUrl,
      token: page.token,
      api,
      signal: lifetime,
      ...settingsOf(model),
      ...queryOf(model),
    });
  });
  return () => controller.abort();
}
