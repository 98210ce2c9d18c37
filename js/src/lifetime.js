// Lifetimes tied to AbortSignals: every timer and child controller made here
// is cleared when its signal aborts, so closing a hub, a job or a widget
// leaves nothing running.

/** @typedef {import("./types.js").Timers} Timers */

/** @returns {Timers} the global timer functions, bound. */
export function defaultTimers() {
  const g = globalThis;
  return {
    setTimeout: g.setTimeout.bind(g),
    clearTimeout: g.clearTimeout.bind(g),
    setInterval: g.setInterval.bind(g),
    clearInterval: g.clearInterval.bind(g),
  };
}

/**
 * Run `fn` once after `ms`, unless `signal` aborts first.
 * @param {Timers} timers
 * @param {number} ms
 * @param {() => void} fn
 * @param {AbortSignal} signal
 * @returns {() => void} cancels the timer
 */
export function after(timers, ms, fn, signal) {
  /** @type {unknown} */
  let id = null;
  const cancel = () => {
    timers.clearTimeout(id);
    signal.removeEventListener("abort", cancel);
  };
  id = timers.setTimeout(() => {
    signal.removeEventListener("abort", cancel);
    fn();
  }, ms);
  signal.addEventListener("abort", cancel, { once: true });
  return cancel;
}

/**
 * Run `fn` every `ms` until `signal` aborts.
 * @param {Timers} timers
 * @param {number} ms
 * @param {() => void} fn
 * @param {AbortSignal} signal
 * @returns {() => void} cancels the interval
 */
export function every(timers, ms, fn, signal) {
  /** @type {unknown} */
  let id = null;
  const cancel = () => {
    timers.clearInterval(id);
    signal.removeEventListener("abort", cancel);
  };
  id = timers.setInterval(fn, ms);
  signal.addEventListener("abort", cancel, { once: true });
  return cancel;
}

/**
 * A controller aborted with `parent` (and free to abort on its own earlier).
 * @param {AbortSignal} parent
 * @returns {AbortController}
 */
export function childController(parent) {
  const controller = new AbortController();
  parent.addEventListener("abort", () => controller.abort(), {
    once: true,
    signal: controller.signal,
  });
  return controller;
}
