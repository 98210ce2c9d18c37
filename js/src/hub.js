// A hub: one per Source, shared by every widget that follows it (the page's
// hub, one per stream URL, by every widget of the page; a kernel source's hub
// by its one view). It owns its Source, a JobWatch per followed job and a
// ListWatch per jobs list, routes what the source delivers to them, and turns
// what they hold into each subscriber's ConnectionInfo or ListInfo.

import { after, defaultTimers } from "./lifetime.js";
import { DEFAULTS, DELETED } from "./states.js";
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
/** @typedef {import("./types.js").ItemsPage} ItemsPage */
/** @typedef {import("./types.js").OutputsAnswer} OutputsAnswer */
/** @typedef {import("./watch.js").Subscriber} Subscriber */
/** @typedef {import("./source.js").Source} Source */

/**
 * The outside world of a hub; everything is injectable for tests.
 * @typedef {object} HubOptions
 * @property {() => number} [now] the clock (Date.now)
 * @property {Timers} [timers] (the global timers)
 * @property {(...args: unknown[]) => void} [log] the debug sink (console.log)
 */

/**
 * A subscriber's timing settings and debug switch, each optional.
 * @typedef {Partial<Timing>} TimingOptions
 */

/**
 * What a subscriber asks of its hub's source, whichever it is: Cancel or Retry
 * (its answer applied under the version rule; on a refusal, e.g. 409 because the
 * job already ended, a poll at once, since the refusal means what is shown is
 * stale), a job's failed items and its outputs.
 * @typedef {object} Asks
 * @property {(type: "cancel" | "retry", jobId: string, signal: AbortSignal) => Promise<void>} act
 * @property {(jobId: string, limit: number, signal: AbortSignal) => Promise<ItemsPage>} failedItems
 * @property {(jobId: string, limit: number, signal: AbortSignal) => Promise<OutputsAnswer>} outputs
 */

/**
 * What `subscribe` returns: call it to unsubscribe.
 * @typedef {(() => void) & Asks & {
 *   update: (changes: TimingOptions) => void,
 *   poll: () => void,
 *   gone: () => void,
 *   offer: (snapshot: Snapshot) => void,
 * }} Subscription
 */

/**
 * What `subscribeList` returns: call it to unsubscribe.
 * @typedef {(() => void) & Asks & {
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
   * @param {Source} source where updates come from (started at the first subscriber)
   * @param {HubOptions} options
   * @param {() => void} onClose called once, when the last subscriber leaves
   */
  constructor(source, options, onClose) {
    this.source = source;
    this.url = source.url;
    this.onClose = onClose;
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
      source,
      now: this.now,
      timers: this.timers,
      trace,
      notify: (/** @type {JobWatch} */ watch) => this.notifyJob(watch),
      tick: (/** @type {JobWatch} */ watch) => this.watchdog(watch),
    };
    this.listContext = {
      source,
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
    this.started = false;
  }

  /** The source's state, as diagnostics read it (`isOpen`, `phase`). */
  get stream() {
    return this.source;
  }

  /** Start the source once, at the first subscriber. */
  start() {
    if (this.started) return;
    this.started = true;
    this.source.start({
      timers: this.timers,
      now: this.now,
      reconnectDelay: () => strictest(this.subs, "reconnectDelay"),
      trace: this.trace.bind(this),
      signal: this.controller.signal,
      events: {
        onOpen: (browserRetry) => this.onOpen(browserRetry),
        onError: (entered, neverOpened) => this.onError(entered, neverOpened),
        onRebuild: () => this.countReconnect("new EventSource"),
        onSnapshot: (type, snapshot) => this.onSnapshot(type, snapshot),
        onPage: (page) => this.onPage(page),
      },
    });
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
    if (!this.started) {
      this.start();
    } else if (isNewJob && (this.source.isOpen || this.connectionFor(sub) === "polling")) {
      // The stream's own catch-up happened before this job was known.
      job.poll("new subscriber");
    }
    this.notify(sub);
    return Object.assign(() => this.unsubscribe(sub), {
      ...this.asks(sub, () => job.poll("action refused")),
      update: (/** @type {TimingOptions} */ changes) => this.update(sub, changes),
      poll: () => job.poll("requested"),
      gone: () => job.markDeleted("the server has no such job"),
      offer: (/** @type {Snapshot} */ snapshot) => {
        if (!sub.closed && this.jobs.get(jobId) === job) this.offer(snapshot);
      },
    });
  }

  /**
   * Follow a page of the server's job list (the jobs view, docs/jobs-view.md).
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
    this.start();
    list.poll("new subscriber"); // the page of jobs, at once: not after the stream opens
    this.notify(sub);
    return Object.assign(() => this.unsubscribe(sub), {
      ...this.asks(sub, () => list.poll("action refused")),
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
   * What a subscriber asks of the source (see `Asks`).
   * @param {Subscriber} sub
   * @param {() => void} pollNow shows where the job is after a refused action
   * @returns {Asks}
   */
  asks(sub, pollNow) {
    const { source } = this;
    return {
      act: async (type, jobId, signal) => {
        /** @type {Snapshot | null} */
        let snapshot;
        try {
          snapshot = await source.act(type, jobId, signal);
        } catch (error) {
          if (!sub.closed) pollNow();
          throw error;
        }
        if (snapshot && !sub.closed) this.offer(snapshot);
      },
      failedItems: (jobId, limit, signal) => source.failedItems(jobId, limit, signal),
      outputs: (jobId, limit, signal) => source.outputs(jobId, limit, signal),
    };
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
    return this.source.connection(sub.settings.watchdogTimeout);
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

  /**
   * @param {boolean} entered
   * @param {boolean} neverOpened
   */
  onError(entered, neverOpened) {
    if (this.closed) return;
    if (entered) {
      this.startDownTimer();
      if (neverOpened) {
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
   * A job event the source delivered (pushed, or the kernel's snapshot).
   * @param {string} type
   * @param {Snapshot} snapshot
   */
  onSnapshot(type, snapshot) {
    if (this.closed) return;
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
   * A page of jobs the source sent on its own (the kernel's answer to a refresh).
   * @param {import("./source.js").SentPage} page
   */
  onPage(page) {
    if (this.closed) return;
    for (const list of this.lists) list.receive(page);
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
    if (this.closed || this.source.isOpen) return;
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
    if (this.source.restartIfMute(timeout)) {
      this.startDownTimer();
      this.refreshConnections();
    }
    return this.source.downTooLong(timeout);
  }

  /** @param {string} jobId */
  addJob(jobId) {
    const job = new JobWatch(jobId, this.watchContext, this.controller.signal);
    this.jobs.set(jobId, job);
    return job;
  }
}
