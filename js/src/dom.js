// DOM helpers the views share: making elements, scheduling a render per
// animation frame, filling a progress bar, and wording a refused action.

import { defaultTimers } from "./lifetime.js";

/** @typedef {import("./types.js").Snapshot} Snapshot */

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {Document} doc
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function element(doc, tag, className, text) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * @param {() => void} fn
 * @returns {() => void} cancels the frame
 */
export function defaultFrame(fn) {
  if (typeof globalThis.requestAnimationFrame === "function") {
    const id = globalThis.requestAnimationFrame(fn);
    return () => globalThis.cancelAnimationFrame(id);
  }
  const id = setTimeout(fn, 16);
  return () => clearTimeout(id);
}

/**
 * A bar (`role="progressbar"`) with a done and a failed part: its aria values and widths.
 * @param {{bar: HTMLElement, done: HTMLElement, failed: HTMLElement}} parts
 * @param {Snapshot | null} snapshot
 */
export function fillBar({ bar, done: doneBar, failed: failedBar }, snapshot) {
  const total = snapshot ? snapshot.total : 0;
  const done = snapshot ? snapshot.done : 0;
  const failed = snapshot ? snapshot.failed : 0;
  bar.setAttribute("aria-valuemax", String(total));
  bar.setAttribute("aria-valuenow", String(done + failed));
  bar.setAttribute("aria-label", `${snapshot ? snapshot.name : "job"}: ${done + failed} of ${total} items`);
  const percent = (/** @type {number} */ n) => (total > 0 ? `${((100 * n) / total).toFixed(2)}%` : "0%");
  doneBar.style.width = percent(done);
  failedBar.style.width = percent(failed);
}

/**
 * A new bar in `doc`: the element and its two parts, for `fillBar`.
 * @param {Document} doc
 * @param {string} className
 */
export function makeBar(doc, className) {
  const bar = element(doc, "div", className);
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  const done = element(doc, "div", "bw-bar-done");
  const failed = element(doc, "div", "bw-bar-failed");
  bar.append(done, failed);
  return { bar, done, failed };
}

/**
 * "Cancel failed: job is already finished (409)".
 * @param {"cancel" | "retry"} kind
 * @param {unknown} caught
 */
export function actionMessage(kind, caught) {
  const error = /** @type {{message?: string, status?: number} | null} */ (caught);
  const detail = error && error.message ? error.message : String(caught);
  const code = error && error.status ? ` (${error.status})` : "";
  return `${kind === "cancel" ? "Cancel" : "Retry"} failed: ${detail}${code}`;
}

/**
 * Render at most once per animation frame, and every second (ages and elapsed
 * times move on their own), until `signal` aborts.
 * @param {() => void} render
 * @param {object} options
 * @param {(fn: () => void) => () => void} options.frame schedules a render; returns a cancel
 * @param {Pick<import("./types.js").Timers, "setInterval" | "clearInterval">} options.timers
 * @param {AbortSignal} options.signal
 * @param {() => void} [options.tick] also run every second, before the render
 * @returns {{schedule: () => void, flush: () => void}} `flush` renders now
 */
export function renderLoop(render, { frame, timers, signal, tick }) {
  /** @type {(() => void) | null} */
  let cancelFrame = null;
  const drop = () => {
    if (cancelFrame) cancelFrame();
    cancelFrame = null;
  };
  const schedule = () => {
    if (cancelFrame || signal.aborted) return;
    cancelFrame = frame(() => {
      cancelFrame = null;
      if (!signal.aborted) render();
    });
  };
  const ticker = timers.setInterval(() => {
    if (tick) tick();
    schedule();
  }, 1000);
  signal.addEventListener("abort", () => {
    timers.clearInterval(ticker);
    drop();
  }, { once: true });
  return {
    schedule,
    flush() {
      drop();
      render();
    },
  };
}

/**
 * "live · updated 4 s ago".
 * @param {{connection: string, lastUpdate: number | null}} info
 * @param {number} now
 */
export function connectionText(info, now) {
  if (!info.lastUpdate) return info.connection;
  const age = Math.max(0, Math.round((now - info.lastUpdate) / 1000));
  return `${info.connection} · updated ${age} s ago`;
}

/**
 * What a view takes from its options, with the browser's defaults.
 * @param {HTMLElement} el the element the view mounts in
 * @param {{frame?: (fn: () => void) => () => void, now?: () => number,
 *   timers?: Pick<import("./types.js").Timers, "setInterval" | "clearInterval">}} options
 */
export function viewContext(el, options) {
  return {
    frame: options.frame || defaultFrame,
    now: options.now || Date.now,
    timers: options.timers || defaultTimers(),
    doc: el.ownerDocument || globalThis.document,
  };
}
