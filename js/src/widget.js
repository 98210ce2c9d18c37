// The anywidget entry point: wires the page config, the shared connection
// hub, the view and the model mirror together. See SPEC §8.

import { subscribe } from "./connection.js";
import { JOBS_VIEW, renderJobs } from "./jobswidget.js";
import { chooseTransport, followThroughKernel } from "./kernel.js";
import { defaultTimers } from "./lifetime.js";
import {
  act, createMirror, onTraits, pageApi, SETTING_TRAITS, settingsOf, tellKernel,
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
/** @typedef {"status" | "total" | "done" | "failed" | "version" | "connection" | "reconnects" | "polls"} MirroredTrait */
/** @typedef {Pick<ModelState, MirroredTrait>} Mirrored */

/** Traits the browser reports back to Python (SPEC §8, browser → Python). */
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
 * Render one progress widget. anywidget's render props are `model`, `el` and
 * `experimental`, with no AbortSignal: the view's lifetime is a controller it
 * owns, aborted by the cleanup it returns (anywidget calls it when the view is
 * removed). Every timer, listener, fetch and subscription hangs off it.
 * @param {RenderProps} props
 */
function renderProgress({ model, el }) {
  const controller = new AbortController();
  const lifetime = controller.signal;

  const { page, api } = pageApi();
  /** @type {Subscription | null} */
  let handle = null;
  const timers = defaultTimers();
  /** Where updates come from, once chosen (SPEC §12 `transport`). @type {"server" | "kernel" | null} */
  let mode = null;
  /** @returns {NonNullable<import("./types.js").ModelState["kernel_extras"]>} */
  const extras = () => model.get("kernel_extras") || {};

  /** @type {import("./view.js").Actions} */
  const actions = {
    cancel: async (jobId) => (mode === "kernel"
      ? tellKernel(model, { type: "cancel" })
      : act(api.cancel, jobId, lifetime, handle)),
    retry: async (jobId) => (mode === "kernel"
      ? tellKernel(model, { type: "retry" })
      : act(api.retry, jobId, lifetime, handle)),
    failedItems: async (jobId, limit) =>
      mode === "kernel"
        ? extras().failed_items || { items: [], total: 0 }
        : api.getFailedItems(jobId, limit, lifetime),
    outputs: async (jobId, limit) => {
      if (mode !== "kernel") return api.getOutputs(jobId, limit, lifetime);
      const outputs = extras().outputs || []; // the kernel sends only the first ones
      return { outputs, total: extras().outputs_total ?? outputs.length };
    },
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
    if (!jobId || mode === null) handle = null;
    else if (mode === "kernel") {
      handle = followThroughKernel(jobId, listener, { model, timers, signal: lifetime, ...settingsOf(model) });
    } else {
      handle = subscribe(jobId, listener, {
        baseUrl: page.baseUrl,
        token: page.token,
        api,
        signal: lifetime,
        ...settingsOf(model),
      });
    }
    if (previous) previous();
  }

  const onSettings = () => {
    view.setDebug(model.get("debug"));
    if (handle) handle.update(settingsOf(model));
  };
  onTraits(model, ["job_id"], follow, lifetime);
  onTraits(model, SETTING_TRAITS, onSettings, lifetime);

  // Never awaited here: the choice (at most 2 s) happens while the view says "connecting".
  chooseTransport(model.get("transport"), (signal) => api.getJob(model.get("job_id"), signal), {
    timers,
    signal: lifetime,
  }).then((chosen) => {
    if (lifetime.aborted) return;
    mode = chosen;
    // The kernel may stop following the job.
    if (chosen === "server") tellKernel(model, { type: "transport", value: "server" });
    follow();
  });
  return () => controller.abort();
}

export default { initialize, render };
