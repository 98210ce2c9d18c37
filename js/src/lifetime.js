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
 * Start something (a timer) that `stop` ends, and end it when `signal` aborts.
 * @param {(cancel: () => void) => unknown} start returns the id `stop` takes
 * @param {(id: unknown) => void} stop
 * @param {AbortSignal} signal
 * @returns {() => void} cancels it early
 */
function tiedTo(start, stop, signal) {
  /** @type {unknown} */
  let id = null;
  const cancel = () => {
    stop(id);
    signal.removeEventListener("abort", cancel);
  };
  id = start(cancel);
  signal.addEventListener("abort", cancel, { once: true });
  return cancel;
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
  const start = (/** @type {() => void} */ cancel) =>
    timers.setTimeout(() => {
      cancel(); // let go of the signal's listener before running
      fn();
    }, ms);
  return tiedTo(start, (id) => timers.clearTimeout(id), signal);
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
  return tiedTo(() => timers.setInterval(fn, ms), (id) => timers.clearInterval(id), signal);
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

/**
 * An `every` whose interval can change: `set(ms)` (re)starts it, and does
 * nothing when `ms` is the interval it already runs at.
 * @param {Timers} timers
 * @param {() => void} fn
 * @param {AbortSignal} signal
 * @returns {(ms: number) => void}
 */
export function retimable(timers, fn, signal) {
  /** @type {(() => void) | null} */
  let stop = null;
  /** @type {number | null} */
  let current = null;
  return (ms) => {
    if (stop && current === ms) return;
    if (stop) stop();
    current = ms;
    stop = every(timers, ms, fn, signal);
  };
}
