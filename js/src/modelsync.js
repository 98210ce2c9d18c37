// What both widgets (the progress widget and the jobs view) do with their
// anywidget model: read the page's API and timing settings, follow trait
// changes for as long as the view lives, mirror what they show back to Python,
// and talk to the kernel.

import { createApi } from "./api.js";
import { defaultTimers } from "./lifetime.js";
import { readCookie, readPageConfig } from "./page.js";

/** @typedef {import("./types.js").WidgetModel} WidgetModel */
/** @typedef {import("./types.js").ModelState} ModelState */
/** @typedef {import("./types.js").Timers} Timers */

/** Traits that carry a widget's timing settings and debug switch (docs/jobs-view.md). */
export const SETTING_TRAITS = Object.freeze(
  /** @type {const} */ (["reconnect_delay", "watchdog_interval", "watchdog_timeout", "debug"]),
);
/** Milliseconds between two saves of a widget's mirrored traits. */
export const SAVE_INTERVAL_MS = 250;

/** The page's server and a REST client for it (the page's own auth: cookie + XSRF, or token). */
export function pageApi() {
  const page = readPageConfig();
  const api = createApi({
    baseUrl: page.baseUrl,
    token: page.token,
    getXsrf: () => readCookie("_xsrf"),
  });
  return { page, api };
}

/**
 * A view's lifetime: aborted by anywidget's render signal, or by the cleanup
 * that `render` returns (which anywidget calls when the view is removed, and
 * which is all that older front ends and the tests call).
 * @param {{signal?: AbortSignal}} props the render props
 * @returns {AbortController}
 */
export function viewLifetime(props) {
  const controller = new AbortController();
  const { signal } = props;
  if (signal) {
    if (signal.aborted) controller.abort();
    else signal.addEventListener("abort", () => controller.abort(), { once: true });
  }
  return controller;
}

/**
 * The model's timing settings, as the connection layer takes them.
 * @param {WidgetModel} model
 */
export function settingsOf(model) {
  return {
    reconnectDelay: model.get("reconnect_delay"),
    watchdogInterval: model.get("watchdog_interval"),
    watchdogTimeout: model.get("watchdog_timeout"),
    debug: model.get("debug"),
  };
}

/**
 * Call `fn` when any of the traits `names` changes, until `signal` aborts.
 * @param {WidgetModel} model
 * @param {readonly string[]} names
 * @param {() => void} fn
 * @param {AbortSignal} signal
 */
export function onTraits(model, names, fn, signal) {
  for (const name of names) model.on(`change:${name}`, fn);
  signal.addEventListener("abort", () => {
    for (const name of names) model.off(`change:${name}`, fn);
  }, { once: true });
}

/**
 * Send `content` to the kernel (a custom message); a closed model drops it.
 * @param {WidgetModel} model
 * @param {object} content
 */
export function tellKernel(model, content) {
  try {
    model.send(content);
  } catch (error) {
    console.debug("batch_widget: could not send a message to the kernel", content, error);
  }
}

/**
 * Mirror values into the model's browser → Python traits `names`, saving at
 * most every 250 ms; values that `urgent` picks out are saved at once, so
 * Python never misses the end.
 * @template {keyof ModelState} N
 * @param {WidgetModel} model
 * @param {AbortSignal} signal
 * @param {readonly N[]} names
 * @param {object} [options]
 * @param {(values: Pick<ModelState, N>) => boolean} [options.urgent]
 * @param {Pick<Timers, "setTimeout" | "clearTimeout">} [options.timers]
 */
export function createMirror(model, signal, names, { urgent = () => false, timers = defaultTimers() } = {}) {
  /** @type {Partial<Pick<ModelState, N>> | null} */
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
      for (const name of names) {
        if (name in changes) model.set(name, /** @type {Pick<ModelState, N>} */ (changes)[name]);
      }
      model.save_changes();
    } catch (error) {
      // The model may already be closed (kernel gone, output cleared).
      console.debug("batch_widget: could not save widget state", error);
    }
  }

  signal.addEventListener("abort", () => timer !== null && timers.clearTimeout(timer), { once: true });

  return {
    /** @param {Pick<ModelState, N>} values */
    push(values) {
      /** @type {Partial<Pick<ModelState, N>>} */
      const changed = {};
      for (const name of names) {
        const current = pending && name in pending ? pending[name] : model.get(name);
        if (current !== values[name]) changed[name] = values[name];
      }
      if (Object.keys(changed).length === 0) return;
      pending = { ...pending, ...changed };
      if (urgent(values) || signal.aborted) {
        if (timer !== null) timers.clearTimeout(timer);
        save();
      } else if (timer === null) {
        const wait = Math.max(0, SAVE_INTERVAL_MS - (Date.now() - lastSave));
        timer = timers.setTimeout(save, wait);
      }
    },
  };
}
