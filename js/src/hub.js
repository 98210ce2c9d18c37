// The page-wide hub: one per stream URL, shared by every widget of the page.
// It owns the page's one Stream and a JobWatch per followed job, and turns
// what they see into each subscriber's ConnectionInfo.

import { createApi } from "./api.js";
import { after, defaultTimers } from "./lifetime.js";
import { DEFAULTS, DELETED } from "./states.js";
import { Stream } from "./stream.js";
import { ListWatch, listQuery } from "./listwatch.js";
import { JobWatch, strictest } from "./watch.js";

/** @typedef {import("./types.js").Snapshot} Snapshot */
/** @typedef {import("./types.js").Timing} Timing */
/** @typedef {import("./types.js").Api} Api */
/** @typedef {import("./types.js").Timers} Timers */
/** @typedef {import("./types.js").ConnectionInfo} ConnectionInfo */
/** @typedef {import("./types.js").ConnectionState} ConnectionState */
/** @typedef {import("./types.js").ListQuery} ListQuery */
/** @typedef {import("./types.js").ListInfo} ListInfo */
/** @typedef {import("./watch.js").Subscriber} Subscriber */

/**
 * How to reach the server and the outside world; everything is injectable for tests.
 * @typedef {object} HubOptions
 * @property {string} [baseUrl] the page's base URL ("/")
 * @property {string} [token] the page config token, if any
 * @property {new (url: string) => EventSource} [EventSource] (the global one)
 * @property {typeof fetch} [fetch] (the global one)
 * @property {Api} [api] a ready REST client (see api.js), instead of fetch
 * @property {() => number} [now] the clock (Date.now)
 * @property {Timers} [timers] (the global timers)
 * @property {(...args: unknown[]) => void} [log] the debug sink (console.log)
 */

/**
 * A subscriber's timing settings and debug switch, each optional.
 * @typedef {Partial<Timing>} TimingOptions
 */

/**
 * What `subscribe` returns: call it to unsubscribe.
 * @typedef {(() => void) & {
 *   update: (changes: TimingOptions) => void,
 *   poll: () => void,
 *   gone: () => void,
 *   offer: (snapshot: Snapshot) => void,
 * }} Subscription
 */

/**
 * What `subscribeList` returns: call it to unsubscribe.
 * @typedef {(() => void) & {
 *   update: (changes: TimingOptions) => void,
 *   poll: () => void,
 *   query: (changes: Partial<ListQuery>) => void,
 *   offer: (snapshot: Snapshot) => void,
 * }} ListSubscription
 */

/**
 * @param {unknown} value
 * @param {number} fallback
 */
function positive(value, fallback) {
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? number : fallback;
}

/**
 * @param {TimingOptions} [options]
 * @returns {Timing}
 */
export function timingFrom(options = {}) {
  return {
    reconnectDelay: positive(options.reconnectDelay, DEFAULTS.reconnectDelay),
    watchdogInterval: positive(options.watchdogInterval, DEFAULTS.watchdogInterval),
    watchdogTimeout: positive(options.watchdogTimeout, DEFAULTS.watchdogTimeout),
    debug: Boolean(options.debug),
  };
}

export class Hub {
  /**
   * @param {string} url the stream URL
   * @param {HubOptions} options
   * @param {() => void} onClose called once, when the last subscriber leaves
   */
  constructor(url, options, onClose) {
    this.url = url;
    this.onClose = onClose;
    this.api =
      options.api ||
      createApi({ baseUrl: options.baseUrl, token: options.token, fetch: options.fetch });
    this.now = options.now || Date.now;
    this.timers = options.timers || defaultTimers();
    // console.log, not debug: a user who turned `debug` on wants to see it.
    this.log = options.log || ((/** @type {unknown[]} */ ...args) => console.log(...args));
    /** Aborting it clears every timer, listener and fetch of the hub. */
    this.controller = new AbortController();
    /** @type {Set<Subscriber>} */
    this.subs = new Set();
    /** @type {Map<string, JobWatch>} */
    this.jobs = new Map();
    /** @type {Set<ListWatch>} the jobs views' lists */
    this.lists = new Set();
    /** @type {(() => void) | null} fires once the stream has been down for watchdog_timeout */
    this.cancelDownTimer = null;
    const trace = this.trace.bind(this);
    this.watchContext = {
      api: this.api,
      now: this.now,
      timers: this.timers,
      trace,
      notify: (/** @type {JobWatch} */ watch) => this.notifyJob(watch),
      tick: (/** @type {JobWatch} */ watch) => this.watchdog(watch),
    };
    this.listContext = {
      api: this.api,
      now: this.now,
      timers: this.timers,
      trace,
      notify: (/** @type {ListWatch} */ list) => this.notify(list.sub),
      tick: (/** @type {ListWatch} */ list) => this.listWatchdog(list),
      share: (/** @type {Snapshot} */ snapshot) => {
        const job = this.jobs.get(snapshot.id);
        if (job) job.apply(snapshot, "list poll");
      },
    };
    this.stream = new Stream(
      url,
      {
        EventSource: options.EventSource || globalThis.EventSource,
        timers: this.timers,
        now: this.now,
        reconnectDelay: () => strictest(this.subs, "reconnectDelay"),
        trace,
        signal: this.controller.signal,
      },
      {
        onOpen: (browserRetry) => this.onOpen(browserRetry),
        onError: (entered) => this.onError(entered),
        onRebuild: () => this.countReconnect("new EventSource"),
        onMessage: (type, data) => this.onMessage(type, data),
      },
    );
  }

  get closed() {
    return this.controller.signal.aborted;
  }

  // -- diagnostics -------------------------------------------------------------

  get debug() {
    for (const sub of this.subs) if (sub.settings.debug) return true;
    return false;
  }

  /**
   * @param {string} message
   * @param {...unknown} details
   */
  trace(message, ...details) {
    if (!this.debug) return;
    this.log(`[batch_widget ${new Date(this.now()).toISOString()}] ${message}`, ...details);
  }

  // -- subscribers ----------------------------------------------------------------

  /**
   * @param {string} jobId
   * @param {(info: ConnectionInfo) => void} listener
   * @param {TimingOptions} options
   * @returns {Subscription}
   */
  subscribe(jobId, listener, options) {
    /** @type {Subscriber} */
    const sub = {
      jobId,
      listener,
      settings: timingFrom(options),
      reconnects: 0,
      polls: 0,
      connection: null,
      closed: false,
    };
    this.subs.add(sub);
    const isNewJob = !this.jobs.has(jobId);
    const job = this.jobs.get(jobId) || this.addJob(jobId);
    job.subs.add(sub);
    job.retime();
    this.trace(`subscribe ${jobId}`);
    if (this.stream.phase === "idle") {
      this.stream.start();
    } else if (isNewJob && (this.stream.isOpen || this.connectionFor(sub) === "polling")) {
      // The stream's own catch-up happened before this job was known.
      job.poll("new subscriber");
    }
    this.notify(sub);
    return Object.assign(() => this.unsubscribe(sub), {
      update: (/** @type {TimingOptions} */ changes) => this.update(sub, changes),
      poll: () => job.poll("requested"),
      gone: () => job.markDeleted("the server has no such job"),
      offer: (/** @type {Snapshot} */ snapshot) => {
        if (!sub.closed && this.jobs.get(jobId) === job) this.offer(snapshot);
      },
    });
  }

  /**
   * Follow a page of the server's job list (the jobs view, SPEC §13).
   * @param {(info: ListInfo) => void} listener
   * @param {TimingOptions & Partial<ListQuery>} options
   * @returns {ListSubscription}
   */
  subscribeList(listener, options) {
    /** @type {Subscriber} */
    const sub = {
      jobId: "",
      listener: () => {},
      settings: timingFrom(options),
      reconnects: 0,
      polls: 0,
      connection: null,
      closed: false,
      list: null,
    };
    const list = new ListWatch(sub, listQuery(options), this.listContext, this.controller.signal);
    sub.list = { watch: list, listener };
    this.subs.add(sub);
    this.lists.add(list);
    list.retime();
    this.trace("subscribe to the jobs list", list.query);
    if (this.stream.phase === "idle") this.stream.start();
    list.poll("new subscriber"); // the page of jobs, at once: not after the stream opens
    this.notify(sub);
    return Object.assign(() => this.unsubscribe(sub), {
      update: (/** @type {TimingOptions} */ changes) => {
        this.update(sub, changes);
        list.retime();
      },
      poll: () => list.poll("requested"),
      query: (/** @type {Partial<ListQuery>} */ changes) => list.setQuery(changes),
      offer: (/** @type {Snapshot} */ snapshot) => {
        if (!sub.closed) this.offer(snapshot);
      },
    });
  }

  /**
   * A snapshot from elsewhere (the answer to Cancel/Retry): every job watch and
   * list of the page takes it under the version rule.
   * @param {Snapshot} snapshot
   */
  offer(snapshot) {
    const job = this.jobs.get(snapshot.id);
    if (job) job.apply(snapshot, "action");
    for (const list of this.lists) list.event("progress", snapshot);
  }

  /**
   * @param {Subscriber} sub
   * @param {TimingOptions} changes
   */
  update(sub, changes) {
    if (sub.closed) return;
    sub.settings = timingFrom({ ...sub.settings, ...changes });
    const job = this.jobs.get(sub.jobId);
    if (job) job.retime();
    this.trace(`settings of ${sub.jobId}`, sub.settings);
    this.notify(sub);
  }

  /** @param {Subscriber} sub */
  unsubscribe(sub) {
    if (sub.closed) return;
    this.trace(`unsubscribe ${sub.jobId}`);
    sub.closed = true;
    this.subs.delete(sub);
    if (sub.list) {
      sub.list.watch.close();
      this.lists.delete(sub.list.watch);
    }
    const job = this.jobs.get(sub.jobId);
    if (job) {
      job.subs.delete(sub);
      if (job.subs.size === 0) {
        job.close();
        this.jobs.delete(job.id);
      } else {
        job.retime();
      }
    }
    this.notify(sub);
    if (this.subs.size === 0) this.close();
  }

  close() {
    if (this.closed) return;
    this.controller.abort(); // closes the stream, every watch and every timer
    this.jobs.clear();
    this.onClose();
  }

  /**
   * @param {Subscriber} sub
   * @returns {ConnectionState}
   */
  connectionFor(sub) {
    if (sub.closed || this.closed) return "closed";
    const job = this.jobs.get(sub.jobId);
    if (job && job.deleted) return "closed"; // nothing more will come for it
    const { phase, downSince, everOpened } = this.stream;
    switch (phase) {
      case "open":
        return "live";
      case "idle":
      case "connecting":
        return "connecting";
      case "closed":
        return "closed";
      case "down":
        if (!everOpened) return "polling";
        if (downSince !== null && this.now() - downSince >= sub.settings.watchdogTimeout) {
          return "polling";
        }
        return "reconnecting";
    }
  }

  /**
   * @param {Subscriber} sub
   * @returns {ConnectionInfo}
   */
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
      deleted: job ? job.deleted : false,
    };
  }

  /** @param {Subscriber} sub */
  notify(sub) {
    if (sub.list) {
      this.notifyList(sub, sub.list.watch, sub.list.listener);
      return;
    }
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

  /**
   * @param {Subscriber} sub
   * @param {ListWatch} list
   * @param {(info: ListInfo) => void} listener
   */
  notifyList(sub, list, listener) {
    const connection = this.connectionFor(sub);
    if (connection !== sub.connection) {
      if (sub.settings.debug) this.trace(`jobs list: ${sub.connection} → ${connection}`);
      sub.connection = connection;
    }
    try {
      listener({
        rows: list.rows.slice(),
        total: list.total,
        query: list.query,
        loaded: list.loaded,
        connection,
        reconnects: sub.reconnects,
        polls: sub.polls,
        lastUpdate: list.lastChangeAt,
        error: list.error,
      });
    } catch (error) {
      console.error("batch_widget listener failed", error);
    }
  }

  /** @param {JobWatch} job */
  notifyJob(job) {
    for (const sub of [...job.subs]) this.notify(sub);
  }

  /** Tell every subscriber whose connection state changed. */
  refreshConnections() {
    for (const sub of [...this.subs]) {
      if (this.connectionFor(sub) !== sub.connection) this.notify(sub);
    }
  }

  // -- what the stream reports ------------------------------------------------------

  /** @param {string} reason */
  countReconnect(reason) {
    this.trace(`reconnect (${reason})`);
    for (const sub of this.subs) sub.reconnects += 1;
    for (const sub of [...this.subs]) this.notify(sub);
  }

  /** @param {boolean} browserRetry */
  onOpen(browserRetry) {
    if (this.closed) return;
    if (browserRetry) this.countReconnect("browser retry");
    this.stopDownTimer();
    // Catch up on whatever happened while the stream was away.
    for (const job of this.jobs.values()) job.poll("catch-up on open");
    for (const list of this.lists) list.poll("catch-up on open");
    this.refreshConnections();
  }

  /** @param {boolean} entered */
  onError(entered) {
    if (this.closed) return;
    if (entered) {
      this.startDownTimer();
      if (!this.stream.everOpened) {
        // Never opened: nothing has been shown yet, so go straight to polling.
        for (const job of this.jobs.values()) {
          if (!job.terminal) job.poll("stream never opened");
        }
        for (const list of this.lists) list.pollIfDue("stream never opened");
      }
    }
    this.refreshConnections();
  }

  /**
   * @param {string} type
   * @param {string} data
   */
  onMessage(type, data) {
    if (this.closed) return;
    /** @type {Snapshot | null} */
    let snapshot = null;
    try {
      snapshot = JSON.parse(data);
    } catch {
      this.trace("unparsable event ignored", data);
      return;
    }
    if (!snapshot || typeof snapshot.id !== "string") return;
    for (const list of this.lists) list.event(type, snapshot);
    const job = this.jobs.get(snapshot.id);
    if (!job) return; // another widget's job, or nobody's
    job.lastUpdate = this.now();
    if (type === DELETED) {
      job.markDeleted("deleted event");
      return;
    }
    job.apply(snapshot, type);
  }

  /**
   * The stream just went down: from now, once it has stayed down for
   * `watchdogTimeout`, switch to polling at once rather than at the next
   * watchdog tick (which could be up to `watchdogInterval` later).
   */
  startDownTimer() {
    this.stopDownTimer();
    const timeout = strictest(this.subs, "watchdogTimeout");
    this.cancelDownTimer = after(this.timers, timeout, () => this.onDownTooLong(),
      this.controller.signal);
  }

  stopDownTimer() {
    if (this.cancelDownTimer) this.cancelDownTimer();
    this.cancelDownTimer = null;
  }

  onDownTooLong() {
    this.cancelDownTimer = null;
    if (this.closed || this.stream.isOpen) return;
    this.trace("stream down for watchdog_timeout: polling");
    this.refreshConnections();
    for (const job of this.jobs.values()) {
      if (!job.terminal) job.pollIfDue("stream down, polling");
    }
    for (const list of this.lists) list.pollIfDue("stream down, polling");
  }

  // -- the watchdog ----------------------------------------------------------------

  /** @param {JobWatch} job */
  watchdog(job) {
    if (this.closed || this.jobs.get(job.id) !== job) return;
    const timeout = job.setting("watchdogTimeout");
    this.trace(`watchdog ${job.id}: last update ${Math.round((this.now() - job.lastUpdate) / 1000)} s ago`);
    job.check(this.checkStream(timeout));
  }

  /** @param {ListWatch} list */
  listWatchdog(list) {
    if (this.closed || !this.lists.has(list)) return;
    list.check(this.checkStream(list.sub.settings.watchdogTimeout));
  }

  /**
   * The watchdog's look at the stream: rebuild one that is open but mute.
   * @param {number} timeout the watching widget's `watchdogTimeout`
   * @returns {boolean} whether the stream has been down too long (poll instead)
   */
  checkStream(timeout) {
    this.refreshConnections();
    const now = this.now();
    if (this.stream.isOpen && now - this.stream.lastMessageAt >= timeout) {
      // Open but mute (not even heartbeats): a half-open TCP connection or a
      // buffering proxy. Start over; the new stream's open polls to catch up.
      this.trace("stream silent, rebuilding it");
      this.stream.restart();
      this.startDownTimer();
      this.refreshConnections();
    }
    const { phase, downSince, everOpened } = this.stream;
    return phase === "down" && downSince !== null && (!everOpened || now - downSince >= timeout);
  }

  /** @param {string} jobId */
  addJob(jobId) {
    const job = new JobWatch(jobId, this.watchContext, this.controller.signal);
    this.jobs.set(jobId, job);
    return job;
  }
}
