// The three recovery layers of docs/internals.md, shared by every widget of a page.
//
//   1. SSE push (stream.js): one EventSource per page, whose state is one
//      explicit phase. Browsers allow six HTTP/1.1 connections per origin; a
//      stream per widget would freeze JupyterLab.
//   2. Reconnection (stream.js): a stream that ends up CLOSED is rebuilt after
//      `reconnectDelay`; every `open` polls each followed job to catch up (hub.js).
//   3. Watchdog (watch.js): every `watchdogInterval` each job's last update is
//      checked; older than `watchdogTimeout` (or the stream down that long) → poll.
//
// The hub (hub.js) ties them together, one per page and stream URL, kept on
// `globalThis`: anywidget imports the ESM once per widget model, so
// module-level variables are NOT shared between widgets. Where the page cannot
// reach the server, a widget passes its own `source` (kernel.js), and its hub
// runs the same watches over the kernel's channel. Nothing here touches
// the DOM; everything from the outside world (EventSource, fetch, clock,
// timers, console) is injectable.

import { streamUrl } from "./api.js";
import { Hub } from "./hub.js";
import { PageSource } from "./source.js";

export { CONNECTION_STATES, DEFAULTS, isTerminal, TERMINAL_STATUSES } from "./states.js";

/** @typedef {import("./types.js").ConnectionInfo} ConnectionInfo */
/** @typedef {import("./hub.js").HubOptions} HubOptions */
/** @typedef {import("./hub.js").TimingOptions} TimingOptions */
/** @typedef {import("./hub.js").Subscription} Subscription */
/** @typedef {import("./source.js").Source} Source */
/** @typedef {import("./source.js").PageOptions} PageOptions */
/**
 * Where to follow: the page's server (PageOptions; its hub shared on the page),
 * or a `source` of the caller's own (the kernel's, its hub kept for that source).
 * @typedef {HubOptions & PageOptions & { source?: Source }} WhereOptions
 */

/** Where the page-wide hubs live: a `Map` from stream URL to hub, on `globalThis`. */
export const REGISTRY_KEY = "__batchWidgetHub";

/** The hubs of sources given by their callers (one view's kernel channel). */
const OWN_HUBS = /** @type {WeakMap<Source, Hub>} */ (new WeakMap());

/**
 * The hubs of a registry (created on first use).
 * @param {Record<string, unknown>} registry
 * @returns {Map<string, Hub>}
 */
function hubsOf(registry) {
  if (!(registry[REGISTRY_KEY] instanceof Map)) registry[REGISTRY_KEY] = new Map();
  return /** @type {Map<string, Hub>} */ (registry[REGISTRY_KEY]);
}

/**
 * Follow one job on the page's shared stream.
 *
 * @param {string} jobId the job to follow
 * @param {(info: ConnectionInfo) => void} listener called on every change (new
 *   snapshot, connection state, counters)
 * @param {WhereOptions & TimingOptions & {
 *   signal?: AbortSignal,
 *   registry?: Record<string, unknown>,
 * }} [options] where to follow it (the server, or a `source`), this subscriber's timings (ms: reconnectDelay
 *   5000, watchdogInterval 15000, watchdogTimeout 60000) and `debug`; `signal`
 *   unsubscribes when aborted; `registry` is where the hubs are kept (globalThis)
 * @returns {Subscription} the unsubscribe function; `update` changes this
 *   subscriber's settings, `poll` asks for a poll now, `offer` applies a snapshot
 *   from elsewhere (the answer to Cancel/Retry) under the same version rule.
 */
export function subscribe(jobId, listener, options = {}) {
  const unsubscribe = hubFor(options).subscribe(jobId, listener, options);
  return tiedToSignal(unsubscribe, options.signal);
}

/**
 * Follow a page of the server's job list on the page's shared stream (the
 * jobs view, docs/jobs-view.md): every job event of the stream updates it, and it is
 * fetched again on each (re)open and by its watchdog.
 *
 * @param {(info: import("./types.js").ListInfo) => void} listener called on every change
 * @param {WhereOptions & TimingOptions & Partial<import("./types.js").ListQuery> & {
 *   signal?: AbortSignal,
 *   registry?: Record<string, unknown>,
 * }} [options] as for `subscribe`, plus the page: `status` (""), `limit` (50), `offset` (0)
 * @returns {import("./hub.js").ListSubscription}
 */
export function subscribeList(listener, options = {}) {
  const unsubscribe = hubFor(options).subscribeList(listener, options);
  return tiedToSignal(unsubscribe, options.signal);
}

/**
 * The hub of the options' source: the page's for its stream URL (made on first
 * use, shared through the registry), or the one of the given `source`.
 * @param {WhereOptions & { registry?: Record<string, unknown> }} options
 * @returns {Hub}
 */
function hubFor(options) {
  const { source } = options;
  if (source) {
    const own = OWN_HUBS.get(source);
    if (own && !own.closed) return own;
    const created = new Hub(source, options, () => {
      if (OWN_HUBS.get(source) === created) OWN_HUBS.delete(source);
    });
    OWN_HUBS.set(source, created);
    return created;
  }
  const hubs = hubsOf(options.registry || /** @type {Record<string, unknown>} */ (globalThis));
  const url = streamUrl(options);
  let hub = hubs.get(url);
  if (!hub || hub.closed) {
    const created = new Hub(new PageSource(url, options), options, () => {
      if (hubs.get(url) === created) hubs.delete(url);
    });
    hubs.set(url, created);
    hub = created;
  }
  return hub;
}

/**
 * Unsubscribe when `signal` aborts.
 * @template {() => void} T
 * @param {T} unsubscribe
 * @param {AbortSignal | undefined} signal
 * @returns {T}
 */
function tiedToSignal(unsubscribe, signal) {
  if (signal) {
    if (signal.aborted) unsubscribe();
    else signal.addEventListener("abort", unsubscribe, { once: true });
  }
  return unsubscribe;
}

/**
 * The number of widgets subscribed on each open stream (diagnostics and tests).
 * @param {Record<string, unknown>} [registry]
 */
export function hubStats(registry = /** @type {Record<string, unknown>} */ (globalThis)) {
  const hubs = registry[REGISTRY_KEY];
  if (!(hubs instanceof Map)) return [];
  return [.../** @type {Map<string, Hub>} */ (hubs).values()].map((hub) => ({
    url: hub.url,
    subscribers: hub.subs.size,
    jobs: [...hub.jobs.keys()],
    lists: hub.lists.size,
    open: hub.source.isOpen,
    phase: hub.source.phase,
  }));
}
