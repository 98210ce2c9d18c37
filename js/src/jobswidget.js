// The jobs view's anywidget side (docs/jobs-view.md): a `bw.JobsView` model rendered
// as every job of the server, newest first, live.
//
// It is a view over a list watch (listwatch.js) on the model's source: the
// page's one stream (no second EventSource, the same recovery layers), or,
// where the page cannot reach the server (docs/batch-server.md), the kernel, which fetches
// the page of jobs and sets `kernel_jobs` when asked.

import { subscribeList } from "./connection.js";
import { createJobsView } from "./jobsview.js";
import { chooseSource } from "./kernel.js";
import { defaultTimers } from "./lifetime.js";
import { ACTIVE_REFRESH_MS, listQuery } from "./listwatch.js";
import {
  createMirror, onTraits, pageApi, SETTING_TRAITS, settingsOf, viewLifetime,
} from "./modelsync.js";
import { notifyControl, pageNotifier } from "./notify.js";

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
export const KERNEL_ACTIVE_REFRESH_MS = ACTIVE_REFRESH_MS;

/** @param {WidgetModel} model */
function queryOf(model) {
  return listQuery({
    status: model.get("status_filter") || "",
    limit: model.get("limit"),
    offset: model.get("offset"),
  });
}

/**
 * Render one jobs view of the model: a view over a list watch, on whichever
 * source the model's `transport` picks.
 * @param {RenderProps} props
 */
export function renderJobs(props) {
  const { model, el } = props;
  const controller = viewLifetime(props);
  const lifetime = controller.signal;
  const { page, api } = pageApi();
  const timers = defaultTimers();
  const notifier = pageNotifier();
  /** @type {ListSubscription | null} */
  let handle = null;

  /**
   * @param {"cancel" | "retry"} type
   * @param {string} jobId
   */
  const action = async (type, jobId) => {
    if (handle) await handle.act(type, jobId, lifetime);
  };
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

  chooseSource(model, {
    probe: (signal) => api.listJobs({ status: "", limit: 1, offset: 0 }, signal),
    page,
    api,
    message: (type, jobId) => ({ type, job_id: jobId }),
    timers,
    signal: lifetime,
  }).then((where) => {
    if (lifetime.aborted) return;
    view.setNote(where.note);
    handle = subscribeList(listener, {
      ...where.options,
      signal: lifetime,
      ...settingsOf(model),
      ...queryOf(model),
    });
  });
  return () => controller.abort();
}
