// The anywidget entry point: wires the page config, the shared connection
// hub, the view and the model mirror together. See SPEC §8.

import { createApi } from "./api.js";
import { defaultTimers } from "./lifetime.js";
import { subscribe } from "./connection.js";
import { JOBS_VIEW, renderJobs } from "./jobswidget.js";
import { chooseTransport, followThroughKernel } from "./kernel.js";
import { notifyControl, pageNotifier } from "./notify.js";
import { readCookie, readPageConfig } from "./page.js";
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
const SAVE_INTERVAL_MS = 250;

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

/**
 * Mirror connection info into the model, saving at most every 250 ms; a
 * terminal job or a closed connection is saved at once so Python never
 * misses the end.
 * @param {WidgetModel} model
 * @param {AbortSignal} signal
 * @param {Pick<import("./types.js").Timers, "setTimeout" | "clearTimeout">} [timers]
 */
export function createMirror(model, signal, timers = defaultTimers()) {
  /** @type {Partial<Mirrored> | null} */
  let pending = null;
  /** @type {unknown} */
  let timer = null;
  let lastSave = -Infinity;

  function save() {
    timer = null;
    if (!pending) return;
    const changes = pending;
    pending = null;
    lastSave = Date.now();
    try {
      for (const name of MIRRORED_TRAITS) {
        if (name in changes) model.set(name, /** @type {Mirrored} */ (changes)[name]);
      }
      model.save_changes();
    } catch (error) {
      // The model may already be closed (kernel gone, output cleared).
      console.debug("batch_widget: could not save widget state", error);
    }
  }

  signal.addEventListener("abort", () => timer !== null && timers.clearTimeout(timer), { once: true });

  return {
    /** @param {ConnectionInfo} info */
    push(info) {
      const values = mirroredValues(info);
      /** @type {Partial<Record<MirroredTrait, unknown>>} */
      const changed = {};
      for (const name of MIRRORED_TRAITS) {
        const current = pending && name in pending ? pending[name] : model.get(name);
        if (current !== values[name]) changed[name] = values[name];
      }
      if (Object.keys(changed).length === 0) return;
      pending = { ...pending, .../** @type {Partial<Mirrored>} */ (changed) };
      const urgent = isTerminal(values.status) || values.connection === "closed";
      if (urgent || signal.aborted) {
        if (timer !== null) timers.clearTimeout(timer);
        save();
      } else if (timer === null) {
        const wait = Math.max(0, SAVE_INTERVAL_MS - (Date.now() - lastSave));
        timer = timers.setTimeout(save, wait);
      }
    },
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

  const page = readPageConfig();
  const api = createApi({
    baseUrl: page.baseUrl,
    token: page.token,
    getXsrf: () => readCookie("_xsrf"),
  });
  /** @type {Subscription | null} */
  let handle = null;
  const timers = defaultTimers();
  /** Where updates come from, once chosen (SPEC §12 `transport`). @type {"server" | "kernel" | null} */
  let mode = null;
  /** @param {string} type */
  const tellKernel = (type) => model.send({ type });
  /** @returns {NonNullable<import("./types.js").ModelState["kernel_extras"]>} */
  const extras = () => model.get("kernel_extras") || {};

  // Apply the answer to Cancel/Retry; on a refusal (e.g. 409: the job already
  // ended) poll at once, since the refusal means the widget shows a stale state.
  /**
   * @param {(jobId: string, signal?: AbortSignal) => Promise<Snapshot>} call
   * @param {string} jobId
   */
  async function act(call, jobId) {
    /** @type {Snapshot} */
    let snapshot;
    try {
      snapshot = await call(jobId, lifetime);
    } catch (error) {
      if (handle) handle.poll();
      throw error;
    }
    if (handle) handle.offer(snapshot);
  }
  /** @type {import("./view.js").Actions} */
  const actions = {
    cancel: async (jobId) => (mode === "kernel" ? tellKernel("cancel") : act(api.cancel, jobId)),
    retry: async (jobId) => (mode === "kernel" ? tellKernel("retry") : act(api.retry, jobId)),
    failedItems: async (jobId, limit) =>
      mode === "kernel"
        ? extras().failed_items || { items: [], total: 0 }
        : api.getFailedItems(jobId, limit, lifetime),
    outputs: async (jobId) =>
      mode === "kernel" ? { outputs: extras().outputs || [] } : api.getOutputs(jobId, lifetime),
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
  const mirror = createMirror(model, lifetime);
  view.setDebug(model.get("debug"));

  function settings() {
    return {
      reconnectDelay: model.get("reconnect_delay"),
      watchdogInterval: model.get("watchdog_interval"),
      watchdogTimeout: model.get("watchdog_timeout"),
      debug: model.get("debug"),
    };
  }

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
      mirror.push(info);
      notifier.observe(info.snapshot);
    };
    // Subscribe before releasing the old job, so the shared stream stays up.
    if (!jobId || mode === null) handle = null;
    else if (mode === "kernel") {
      handle = followThroughKernel(jobId, listener, { model, timers, signal: lifetime, ...settings() });
    } else {
      handle = subscribe(jobId, listener, {
        baseUrl: page.baseUrl,
        token: page.token,
        api,
        signal: lifetime,
        ...settings(),
      });
    }
    if (previous) previous();
  }

  const onSettings = () => {
    view.setDebug(model.get("debug"));
    if (handle) handle.update(settings());
  };
  const names = ["reconnect_delay", "watchdog_interval", "watchdog_timeout", "debug"];
  model.on("change:job_id", follow);
  for (const name of names) model.on(`change:${name}`, onSettings);
  lifetime.addEventListener(
    "abort",
    () => {
      model.off("change:job_id", follow);
      for (const name of names) model.off(`change:${name}`, onSettings);
    },
    { once: true },
  );

  // Never awaited here: the choice (at most 2 s) happens while the view says "connecting".
  chooseTransport(model.get("transport"), (signal) => api.getJob(model.get("job_id"), signal), {
    timers,
    signal: lifetime,
  }).then((chosen) => {
    if (lifetime.aborted) return;
    mode = chosen;
    if (chosen === "server") {
      try {
        model.send({ type: "transport", value: "server" }); // the kernel may stop following
      } catch (error) {
        console.debug("batch_widget: could not tell the kernel", error);
      }
    }
    follow();
  });
  return () => controller.abort();
}

export default { initialize, render };
