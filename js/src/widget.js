// The anywidget entry point: wires the page config, the source of updates
// (chosen once: the page's shared hub or the kernel), the view and the model
// mirror together. See docs/jobs-view.md.

import { subscribe } from "./connection.js";
import { JOBS_VIEW, renderJobs } from "./jobswidget.js";
import { chooseSource } from "./kernel.js";
import { defaultTimers } from "./lifetime.js";
import {
  createMirror, onTraits, pageApi, SETTING_TRAITS, settingsOf, viewLifetime,
} from "./modelsync.js";
import { notifyControl, pageNotifier } from "./notify.js";
import { isTerminal } from "./states.js";
import { createView } from "./view.js";

/** @typedef {import("./types.js").ConnectionInfo} ConnectionInfo */
/** @typedef {import("./types.js").ModelState} ModelState */
/** @typedef {import("./types.js").WidgetModel} WidgetModel */
/** @typedef {import("./types.js").RenderProps} RenderProps */
/** @typedef {import("./types.js").Snapshot} Snapshot */
/** @typedef {import("./connection.js").Subscription} Subscription */
/** @typedef {import("./kernel.js").Chosen} Chosen */
/** @typedef {"status" | "total" | "done" | "failed" | "version" | "connection" | "reconnects" | "polls"} MirroredTrait */
/** @typedef {Pick<ModelState, MirroredTrait>} Mirrored */

/** Traits the browser reports back to Python (docs/jobs-view.md, browser → Python). */
export const MIRRORED_TRAITS = Object.freeze(/** @type {MirroredTrait[]} */ ([
  "status",
  "total",
  "done",
  "failed",
  "version",
  "connection",
  "reconnects",
  "polls",
]));

/**
 * @param {ConnectionInfo} info
 * @returns {Mirrored}
 */
function mirroredValues(info) {
  const snapshot = info.snapshot;
  return {
    status: (snapshot && snapshot.status) || "",
    total: (snapshot && snapshot.total) || 0,
    done: (snapshot && snapshot.done) || 0,
    failed: (snapshot && snapshot.failed) || 0,
    version: (snapshot && snapshot.version) || 0,
    connection: info.connection,
    reconnects: info.reconnects,
    polls: info.polls,
  };
}

function initialize() {
  // Nothing to set up per model, and nothing to await: the network starts in render.
  return () => {};
}

/**
 * Render one view of the model: the jobs view for a `bw.JobsView` model, the
 * progress widget otherwise.
 * @param {RenderProps} props
 */
function render(props) {
  return props.model.get("_batch_view") === JOBS_VIEW ? renderJobs(props) : renderProgress(props);
}

/**
 * Render one progress widget: a view over the job's watch, on whichever source
 * the model's `transport` picks (the page's shared stream, or the kernel). Every
 * timer, listener, fetch and subscription hangs off the view's lifetime (see
 * `viewLifetime`).
 * @param {RenderProps} props
 */
function renderProgress(props) {
  const { model, el } = props;
  const controller = viewLifetime(props);
  const lifetime = controller.signal;

  const { page, api } = pageApi();
  /** @type {Subscription | null} */
  let handle = null;
  const timers = defaultTimers();
  /** Where the job is followed, once chosen (docs/batch-server.md `transport`). @type {Chosen | null} */
  let chosen = null;
  const following = () => {
    if (!handle) throw new Error("no job is followed");
    return handle;
  };

  /** @type {import("./view.js").Actions} */
  const actions = {
    cancel: async (jobId) => following().act("cancel", jobId, lifetime),
    retry: async (jobId) => following().act("retry", jobId, lifetime),
    failedItems: async (jobId, limit) => following().failedItems(jobId, limit ?? 20, lifetime),
    outputs: async (jobId, limit) => following().outputs(jobId, limit ?? 20, lifetime),
    gone: () => {
      if (handle) handle.gone();
    },
  };
  const notifier = pageNotifier();
  const view = createView(el, {
    actions,
    control: notifyControl(el.ownerDocument || globalThis.document, notifier, lifetime),
    fileHref: api.fileHref,
    downloadHref: api.downloadHref,
    signal: lifetime,
  });
  const mirror = createMirror(model, lifetime, MIRRORED_TRAITS, {
    urgent: (values) => isTerminal(values.status) || values.connection === "closed",
  });
  view.setDebug(model.get("debug"));

  let generation = 0;
  function follow() {
    const previous = handle;
    const jobId = model.get("job_id");
    generation += 1;
    const mine = generation;
    /** @param {ConnectionInfo} info */
    const listener = (info) => {
      if (mine !== generation) return; // the old job's farewell after job_id changed
      view.update(info);
      mirror.push(mirroredValues(info));
      notifier.observe(info.snapshot);
    };
    // Subscribe before releasing the old job, so the shared stream stays up.
    handle = jobId && chosen
      ? subscribe(jobId, listener, { ...chosen.options, signal: lifetime, ...settingsOf(model) })
      : null;
    if (previous) previous();
  }

  const onSettings = () => {
    view.setDebug(model.get("debug"));
    if (handle) handle.update(settingsOf(model));
  };
  onTraits(model, ["job_id"], follow, lifetime);
  onTraits(model, SETTING_TRAITS, onSettings, lifetime);

  // Never awaited here: the choice (at most 2 s) happens while the view says "connecting".
  chooseSource(model, {
    probe: (signal) => api.getJob(model.get("job_id"), signal),
    page,
    api,
    announce: true, // the kernel may stop following the job
    timers,
    signal: lifetime,
  }).then((where) => {
    if (lifetime.aborted) return;
    chosen = where;
    follow();
  });
  return () => controller.abort();
}

export default { initialize, render };
