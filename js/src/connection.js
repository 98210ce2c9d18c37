// The three recovery layers of SPEC §1, shared by every widget of a page.
//
//   1. SSE push: one EventSource per page (browsers allow six HTTP/1.1
//      connections per origin; a stream per widget would freeze JupyterLab).
//   2. Reconnection: a stream that ends up CLOSED is rebuilt after
//      `reconnectDelay`; every `open` polls each subscribed job to catch up.
//   3. Watchdog: every `watchdogInterval` each job's last update is checked;
//      older than `watchdogTimeout` (or the stream down that long) → poll.
//
// This module knows nothing of the DOM. Everything it touches from the
// outside world (EventSource, fetch, clock, timers, console) is injectable.

import { createApi, streamUrl } from "./api.js";
import { isTerminal } from "./states.js";

export { isTerminal, TERMINAL_STATUSES } from "./states.js";

/** The connection states a widget reports (SPEC §8): an explicit union, not booleans. */
export const CONNECTION_STATES = Object.freeze([
  "connecting",
  "live",
  "reconnecting",
  "polling",
  "closed",
]);


/** Defaults of the widget traits, in milliseconds (SPEC §8). */
export const DEFAULTS = Object.freeze({
  reconnectDelay: 5000,
  watchdogInterval: 15000,
  watchdogTimeout: 60000,
});

/**
 * Where the page-wide hubs live. anywidget imports the ESM once per widget
 * model, so module-level variables are NOT shared between widgets; a global
 * is the one place every copy of this module can see.
 */
export const REGISTRY_KEY = "__batchWidgetHub";

const READY_OPEN = 1;
const READY_CLOSED = 2;


function positive(value, fallback) {
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? number : fallback;
}

function settingsFrom(options = {}) {
  return {
    reconnectDelay: positive(options.reconnectDelay, DEFAULTS.reconnectDelay),
    watchdogInterval: positive(options.watchdogInterval, DEFAULTS.watchdogInterval),
    watchdogTimeout: positive(options.watchdogTimeout, DEFAULTS.watchdogTimeout),
    debug: Boolean(options.debug),
  };
}

/** The smallest value of a timing setting among `subs` (the most demanding widget wins). */
function strictest(subs, name) {
  let value = Infinity;
  for (const sub of subs) value = Math.min(value, sub.settings[name]);
  return Number.isFinite(value) ? value : DEFAULTS[name];
}

function defaultTimers() {
  const g = globalThis;
  return {
    setTimeout: g.setTimeout.bind(g),
    clearTimeout: g.clearTimeout.bind(g),
    setInterval: g.setInterval.bind(g),
    clearInterval: g.clearInterval.bind(g),
  };
}

/**
 * The shared state of one page (one stream URL): the EventSource, the
 * subscribed jobs with their watchdogs, and the subscribers.
 */
class Hub {
  constructor(url, options, onClose) {
    this.url = url;
    this.onClose = onClose;
    this.EventSource = options.EventSource || globalThis.EventSource;
    this.api =
      options.api ||
      createApi({ baseUrl: options.baseUrl, token: options.token, fetch: options.fetch });
    this.now = options.now || Date.now;
    this.timers = options.timers || defaultTimers();
    // console.log, not debug: a user who turned `debug` on wants to see it.
    this.log = options.log || ((...args) => console.log(...args));
    // Aborting this controller clears every timer, listener and fetch of the hub.
    this.controller = new AbortController();
    this.streamController = null;
    this.subs = new Set();
    this.jobs = new Map();
    this.es = null;
    this.isOpen = false;
    this.everOpened = false;
    this.downSince = null; // first error since the last open; null while open or untried
    this.cancelDownTimer = null; // fires once the stream has been down for watchdog_timeout
    this.lastMessageAt = this.now();
    this.builds = 0;
    this.closed = false;
  }

  // -- timers tied to AbortSignals -------------------------------------------

  after(ms, fn, signal) {
    let id = null;
    const cancel = () => {
      this.timers.clearTimeout(id);
      signal.removeEventListener("abort", cancel);
    };
    id = this.timers.setTimeout(() => {
      signal.removeEventListener("abort", cancel);
      fn();
    }, ms);
    signal.addEventListener("abort", cancel, { once: true });
    return cancel;
  }

  every(ms, fn, signal) {
    let id = null;
    const cancel = () => {
      this.timers.clearInterval(id);
      signal.removeEventListener("abort", cancel);
    };
    id = this.timers.setInterval(fn, ms);
    signal.addEventListener("abort", cancel, { once: true });
    return cancel;
  }

  // -- diagnostics -------------------------------------------------------------

  get debug() {
    for (const sub of this.subs) if (sub.settings.debug) return true;
    return false;
  }

  trace(message, ...details) {
    if (!this.debug) return;
    this.log(`[batch_widget ${new Date(this.now()).toISOString()}] ${message}`, ...details);
  }

  // -- subscribers ----------------------------------------------------------------

  subscribe(jobId, listener, options) {
    const sub = {
      jobId,
      listener,
      settings: settingsFrom(options),
      reconnects: 0,
      polls: 0,
      connection: null,
      closed: false,
    };
    this.subs.add(sub);
    const isNewJob = !this.jobs.has(jobId);
    const job = this.jobs.get(jobId) || this.addJob(jobId);
    job.subs.add(sub);
    this.retimeWatchdog(job);
    this.trace(`subscribe ${jobId}`);
    if (!this.es && this.builds === 0) {
      this.connect();
    } else if (isNewJob && (this.isOpen || this.connectionFor(sub) === "polling")) {
      // The stream's own catch-up happened before this job was known.
      this.poll(job, "new subscriber");
    }
    this.notify(sub);
    const unsubscribe = () => this.unsubscribe(sub);
    unsubscribe.update = (changes) => this.update(sub, changes);
    unsubscribe.poll = () => this.poll(job, "requested");
    unsubscribe.offer = (snapshot) => {
      if (!sub.closed && this.jobs.has(jobId)) this.apply(job, snapshot, "action");
    };
    return unsubscribe;
  }

  update(sub, changes) {
    if (sub.closed) return;
    sub.settings = settingsFrom({ ...sub.settings, ...changes });
    const job = this.jobs.get(sub.jobId);
    if (job) this.retimeWatchdog(job);
    this.trace(`settings of ${sub.jobId}`, sub.settings);
    this.notify(sub);
  }

  unsubscribe(sub) {
    if (sub.closed) return;
    this.trace(`unsubscribe ${sub.jobId}`);
    sub.closed = true;
    this.subs.delete(sub);
    const job = this.jobs.get(sub.jobId);
    if (job) {
      job.subs.delete(sub);
      if (job.subs.size === 0) {
        job.controller.abort();
        this.jobs.delete(job.id);
      } else {
        this.retimeWatchdog(job);
      }
    }
    this.notify(sub);
    if (this.subs.size === 0) this.close();
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.dropStream();
    this.controller.abort();
    this.jobs.clear();
    this.onClose();
  }

  connectionFor(sub) {
    if (sub.closed || this.closed) return "closed";
    if (this.isOpen) return "live";
    if (this.downSince === null) return "connecting";
    if (!this.everOpened) return "polling";
    if (this.now() - this.downSince >= sub.settings.watchdogTimeout) return "polling";
    return "reconnecting";
  }

  info(sub) {
    const job = this.jobs.get(sub.jobId);
    return {
      jobId: sub.jobId,
      snapshot: job ? job.snapshot : null,
      connection: this.connectionFor(sub),
      reconnects: sub.reconnects,
      polls: sub.polls,
      lastUpdate: job ? job.lastSnapshotAt : null,
      error: job ? job.error : null,
    };
  }

  notify(sub) {
    const info = this.info(sub);
    if (info.connection !== sub.connection) {
      if (sub.settings.debug) this.trace(`${sub.jobId}: ${sub.connection} → ${info.connection}`);
      sub.connection = info.connection;
    }
    try {
      sub.listener(info);
    } catch (error) {
      // One broken listener must not stop the others (or the hub).
      console.error("batch_widget listener failed", error);
    }
  }

  notifyJob(job) {
    for (const sub of [...job.subs]) this.notify(sub);
  }

  /** Tell every subscriber whose connection state changed. */
  refreshConnections() {
    for (const sub of [...this.subs]) {
      if (this.connectionFor(sub) !== sub.connection) this.notify(sub);
    }
  }

  // -- the stream -----------------------------------------------------------

  connect() {
    if (this.closed) return;
    if (this.builds > 0) this.countReconnect("new EventSource");
    this.builds += 1;
    this.streamController = new AbortController();
    const { signal } = this.streamController;
    const es = new this.EventSource(this.url);
    this.es = es;
    this.trace(`EventSource #${this.builds} ${this.url.replace(/token=[^&]*/, "token=…")}`);
    es.addEventListener("open", () => this.onOpen(es), { signal });
    es.addEventListener("error", () => this.onError(es), { signal });
    es.addEventListener("progress", (event) => this.onJobEvent(es, event), { signal });
    es.addEventListener("complete", (event) => this.onJobEvent(es, event), { signal });
    es.addEventListener("heartbeat", () => this.onHeartbeat(es), { signal });
  }

  dropStream() {
    if (this.streamController) this.streamController.abort();
    this.streamController = null;
    if (this.es) this.es.close();
    this.es = null;
    this.isOpen = false;
  }

  countReconnect(reason) {
    this.trace(`reconnect (${reason})`);
    for (const sub of this.subs) sub.reconnects += 1;
    for (const sub of [...this.subs]) this.notify(sub);
  }

  onOpen(es) {
    if (es !== this.es || this.closed) return;
    // The browser reconnected this same EventSource on its own after an error.
    if (es.bwErrored) this.countReconnect("browser retry");
    es.bwErrored = false;
    this.isOpen = true;
    this.everOpened = true;
    this.markUp();
    this.lastMessageAt = this.now();
    this.trace("stream open");
    // Catch up on whatever happened while the stream was away.
    for (const job of this.jobs.values()) this.poll(job, "catch-up on open");
    this.refreshConnections();
  }

  onError(es) {
    if (es !== this.es || this.closed) return;
    es.bwErrored = true;
    const firstError = this.downSince === null;
    if (firstError) this.markDown();
    this.isOpen = false;
    const closedForGood = es.readyState === READY_CLOSED;
    this.trace(`stream error (readyState ${es.readyState})`);
    if (closedForGood) {
      // A non-200 answer closes an EventSource for good: the browser will
      // not retry, so build a new one ourselves.
      this.dropStream();
      this.after(this.reconnectDelay(), () => this.connect(), this.controller.signal);
    }
    if (firstError && !this.everOpened) {
      // Never opened: nothing has been shown yet, so go straight to polling.
      for (const job of this.jobs.values()) {
        if (!job.terminal) this.poll(job, "stream never opened");
      }
    }
    this.refreshConnections();
  }

  onJobEvent(es, event) {
    if (es !== this.es || this.closed) return;
    this.lastMessageAt = this.now();
    let snapshot = null;
    try {
      snapshot = JSON.parse(event.data);
    } catch {
      this.trace("unparsable event ignored", event.data);
      return;
    }
    const job = snapshot && this.jobs.get(snapshot.id);
    if (!job) return; // another widget's job, or nobody's
    job.lastUpdate = this.now();
    this.apply(job, snapshot, event.type);
  }

  onHeartbeat(es) {
    // Proof the connection is alive, not a job update: the watchdog still
    // polls jobs the broadcaster has gone silent about.
    if (es !== this.es || this.closed) return;
    this.lastMessageAt = this.now();
  }

  /**
   * The stream just went down: from now, once it has stayed down for
   * `watchdogTimeout`, switch to polling at once rather than at the next
   * watchdog tick (which could be up to `watchdogInterval` later).
   */
  markDown() {
    this.downSince = this.now();
    if (this.cancelDownTimer) this.cancelDownTimer();
    const timeout = this.minSetting("watchdogTimeout");
    this.cancelDownTimer = this.after(timeout, () => this.onDownTooLong(), this.controller.signal);
  }

  markUp() {
    this.downSince = null;
    if (this.cancelDownTimer) this.cancelDownTimer();
    this.cancelDownTimer = null;
  }

  onDownTooLong() {
    this.cancelDownTimer = null;
    if (this.closed || this.isOpen) return;
    this.trace("stream down for watchdog_timeout: polling");
    this.refreshConnections();
    for (const job of this.jobs.values()) {
      if (!job.terminal) this.pollIfDue(job, "stream down, polling");
    }
  }

  /** Poll unless this job was polled within half a watchdog interval (two timers, one poll). */
  pollIfDue(job, reason) {
    const recent = this.now() - job.lastPollAt < this.jobSetting(job, "watchdogInterval") / 2;
    if (!recent) this.poll(job, reason);
  }

  minSetting(name) {
    return strictest(this.subs, name);
  }

  reconnectDelay() {
    return this.minSetting("reconnectDelay");
  }

  // -- jobs, the watchdog and polling ----------------------------------------------

  addJob(jobId) {
    const controller = new AbortController();
    this.controller.signal.addEventListener("abort", () => controller.abort(), {
      once: true,
      signal: controller.signal,
    });
    const job = {
      id: jobId,
      subs: new Set(),
      snapshot: null,
      version: -Infinity,
      lastUpdate: this.now(), // age is counted from subscription until data arrives
      lastSnapshotAt: null,
      lastPollAt: -Infinity,
      error: null,
      inflight: false,
      controller,
      watchdog: null,
      watchdogInterval: null,
      get terminal() {
        return Boolean(this.snapshot && isTerminal(this.snapshot.status));
      },
    };
    this.jobs.set(jobId, job);
    return job;
  }

  jobSetting(job, name) {
    return strictest(job.subs, name);
  }

  retimeWatchdog(job) {
    const interval = this.jobSetting(job, "watchdogInterval");
    if (job.watchdog && job.watchdogInterval === interval) return;
    if (job.watchdog) job.watchdog();
    job.watchdogInterval = interval;
    job.watchdog = this.every(interval, () => this.watchdog(job), job.controller.signal);
  }

  watchdog(job) {
    if (this.closed || !this.jobs.has(job.id)) return;
    this.refreshConnections();
    const now = this.now();
    const timeout = this.jobSetting(job, "watchdogTimeout");
    const age = now - job.lastUpdate;
    this.trace(`watchdog ${job.id}: last update ${Math.round(age / 1000)} s ago`);
    if (this.isOpen && now - this.lastMessageAt >= timeout) {
      // Open but mute (not even heartbeats): a half-open TCP connection or a
      // buffering proxy. Start over; the new stream's open polls to catch up.
      this.trace("stream silent, rebuilding it");
      this.dropStream();
      this.markDown();
      this.connect();
      this.refreshConnections();
    }
    if (job.terminal) return; // nothing will change by itself any more
    const streamDownTooLong =
      !this.isOpen && this.downSince !== null && (!this.everOpened || now - this.downSince >= timeout);
    if (streamDownTooLong) this.pollIfDue(job, "stream down, polling");
    else if (age >= timeout) this.poll(job, "watchdog: no update");
  }

  poll(job, reason) {
    if (this.closed || job.inflight || !this.jobs.has(job.id)) return;
    job.inflight = true;
    job.lastPollAt = this.now();
    for (const sub of job.subs) sub.polls += 1;
    this.trace(`poll ${job.id} (${reason})`);
    const { signal } = job.controller;
    Promise.resolve()
      .then(() => this.api.getJob(job.id, signal))
      .then(
        (snapshot) => {
          if (signal.aborted) return;
          job.error = null;
          job.lastUpdate = this.now();
          if (!this.apply(job, snapshot, "poll")) this.notifyJob(job);
        },
        (error) => {
          if (signal.aborted) return;
          job.error = error && error.message ? error.message : String(error);
          this.trace(`poll ${job.id} failed: ${job.error}`);
          this.notifyJob(job);
        },
      )
      .finally(() => {
        job.inflight = false;
      });
  }

  /** Show `snapshot` if it is newer than what is shown; true if it was applied. */
  apply(job, snapshot, source) {
    if (!snapshot || snapshot.id !== job.id) return false;
    const version = Number(snapshot.version);
    if (!(version > job.version)) {
      this.trace(`${source} v${version} of ${job.id} ignored: showing v${job.version}`);
      return false;
    }
    job.version = version;
    job.snapshot = snapshot;
    job.lastSnapshotAt = this.now();
    this.trace(`${source} ${job.id} v${version} ${snapshot.status} ${snapshot.done}/${snapshot.total}`);
    this.notifyJob(job);
    return true;
  }
}

/**
 * Follow one job on the page's shared stream.
 *
 * @param {string} jobId the job to follow
 * @param {(info: {jobId: string, snapshot: object|null, connection: string,
 *   reconnects: number, polls: number, lastUpdate: number|null, error: string|null}) => void}
 *   listener called on every change (new snapshot, connection state, counters)
 * @param {object} [options]
 * @param {string} [options.baseUrl] the page's base URL ("/")
 * @param {string} [options.token] the page config token, if any
 * @param {number} [options.reconnectDelay] ms (5000)
 * @param {number} [options.watchdogInterval] ms (15000)
 * @param {number} [options.watchdogTimeout] ms (60000)
 * @param {boolean} [options.debug] log transitions, polls and watchdog firings
 * @param {AbortSignal} [options.signal] unsubscribes when aborted
 * @param {Function} [options.EventSource] injected for tests (global by default)
 * @param {Function} [options.fetch] injected for tests (global by default)
 * @param {object} [options.api] a ready REST client (see api.js), instead of fetch
 * @param {() => number} [options.now] the clock (Date.now)
 * @param {object} [options.timers] {setTimeout, clearTimeout, setInterval, clearInterval}
 * @param {(...args: any[]) => void} [options.log] the debug sink (console.log)
 * @param {object} [options.registry] where the hubs are kept (globalThis)
 * @returns {(() => void) & {update: (changes: object) => void, poll: () => void,
 *   offer: (snapshot: object) => void}}
 *   the unsubscribe function; `update` changes this subscriber's settings,
 *   `poll` asks for a poll now, `offer` applies a snapshot from elsewhere (the
 *   answer to Cancel/Retry) under the same version rule.
 */
export function subscribe(jobId, listener, options = {}) {
  const registry = options.registry || globalThis;
  if (!(registry[REGISTRY_KEY] instanceof Map)) registry[REGISTRY_KEY] = new Map();
  const hubs = registry[REGISTRY_KEY];
  const url = streamUrl(options);
  let hub = hubs.get(url);
  if (!hub || hub.closed) {
    hub = new Hub(url, options, () => {
      if (hubs.get(url) === hub) hubs.delete(url);
    });
    hubs.set(url, hub);
  }
  const unsubscribe = hub.subscribe(jobId, listener, options);
  const { signal } = options;
  if (signal) {
    if (signal.aborted) unsubscribe();
    else signal.addEventListener("abort", unsubscribe, { once: true });
  }
  return unsubscribe;
}

/** The number of widgets subscribed on each open stream (diagnostics and tests). */
export function hubStats(registry = globalThis) {
  const hubs = registry[REGISTRY_KEY];
  if (!(hubs instanceof Map)) return [];
  return [...hubs.values()].map((hub) => ({
    url: hub.url,
    subscribers: hub.subs.size,
    jobs: [...hub.jobs.keys()],
    open: hub.isOpen,
  }));
}
