// Layer 3 of docs/internals.md for one job: the version rule, polling, and the watchdog.
//
// A watch holds what the page knows of one job (its newest snapshot) and the
// subscribers (widgets) that show it. It never goes backwards: a snapshot is
// shown only if its version is newer, whether it came by SSE, the kernel, a
// poll or the answer to an action. It polls through its hub's Source (REST for
// the page, a refresh message for the kernel) and never asks which one it is.

import { isNotFound } from "./api.js";
import { childController, retimable } from "./lifetime.js";
import { DEFAULTS, isTerminal } from "./states.js";
import { isNewer } from "./version.js";

/** @typedef {import("./types.js").Snapshot} Snapshot */
/** @typedef {import("./types.js").Timing} Timing */
/** @typedef {import("./source.js").Source} Source */
/** @typedef {import("./types.js").Timers} Timers */
/** @typedef {"reconnectDelay" | "watchdogInterval" | "watchdogTimeout"} TimingName */

/**
 * A widget following a job.
 * @typedef {object} Subscriber
 * @property {string} jobId
 * @property {(info: import("./types.js").ConnectionInfo) => void} listener
 * @property {Timing} settings
 * @property {number} reconnects
 * @property {number} polls
 * @property {import("./types.js").ConnectionState | null} connection the state last told
 * @property {boolean} closed
 * @property {{watch: import("./listwatch.js").ListWatch,
 *   listener: (info: import("./types.js").ListInfo) => void} | null} [list]
 *   set for a jobs view: the list it follows (its `jobId` is "")
 */

/**
 * What a watch needs from its hub.
 * @typedef {object} WatchContext
 * @property {Source} source where polls go
 * @property {() => number} now
 * @property {Timers} timers
 * @property {(message: string, ...details: unknown[]) => void} trace
 * @property {(watch: JobWatch) => void} notify tell every subscriber of the job
 * @property {(watch: JobWatch) => void} tick the watchdog's check of the job
 */

/**
 * The smallest value of a timing setting among `subs` (the most demanding widget wins).
 * @param {Iterable<Subscriber>} subs
 * @param {TimingName} name
 * @returns {number}
 */
export function strictest(subs, name) {
  let value = Infinity;
  for (const sub of subs) value = Math.min(value, sub.settings[name]);
  return Number.isFinite(value) ? value : DEFAULTS[name];
}

export class JobWatch {
  /**
   * @param {string} id
   * @param {WatchContext} context
   * @param {AbortSignal} parent the hub's lifetime
   */
  constructor(id, context, parent) {
    this.id = id;
    this.context = context;
    /** @type {Set<Subscriber>} */
    this.subs = new Set();
    /** @type {Snapshot | null} */
    this.snapshot = null;
    this.version = -Infinity;
    /** Age is counted from subscription until data arrives. */
    this.lastUpdate = context.now();
    /** @type {number | null} */
    this.lastSnapshotAt = null;
    this.lastPollAt = -Infinity;
    /** @type {string | null} */
    this.error = null;
    this.inflight = false;
    /** The job is gone from the server (deleted): the watch asks nothing more. */
    this.deleted = false;
    /** Aborting it stops the watchdog and any poll in flight. */
    this.controller = childController(parent);
    /** (Re)starts the watchdog at an interval. */
    this.watchdogAt = retimable(context.timers, () => context.tick(this), this.controller.signal);
  }

  get terminal() {
    return this.deleted || Boolean(this.snapshot && isTerminal(this.snapshot.status));
  }

  get closed() {
    return this.controller.signal.aborted;
  }

  /** @param {TimingName} name */
  setting(name) {
    return strictest(this.subs, name);
  }

  /** (Re)start the watchdog at the subscribers' strictest interval. */
  retime() {
    this.watchdogAt(this.setting("watchdogInterval"));
  }

  close() {
    this.controller.abort();
  }

  /**
   * The job is gone from the server (a `deleted` event, or a 404 for it): show
   * that, and stop every timer and request for it. The watch stays in the hub,
   * so a widget that subscribes to the same id later reads `deleted` too.
   * @param {string} source
   */
  markDeleted(source) {
    if (this.deleted) return;
    this.deleted = true;
    this.error = null;
    this.context.trace(`${this.id} deleted (${source}): no more requests for it`);
    this.close();
    this.context.notify(this);
  }

  /**
   * The watchdog's decision for this job, given how long the source has been down.
   * @param {boolean} streamDownTooLong
   */
  check(streamDownTooLong) {
    if (this.terminal) return; // nothing will change by itself any more
    const age = this.context.now() - this.lastUpdate;
    if (streamDownTooLong) this.pollIfDue("stream down, polling");
    else if (age >= this.setting("watchdogTimeout")) this.poll("watchdog: no update");
  }

  /**
   * Poll unless this job was polled within half a watchdog interval (two timers, one poll).
   * @param {string} reason
   */
  pollIfDue(reason) {
    const recent = this.context.now() - this.lastPollAt < this.setting("watchdogInterval") / 2;
    if (!recent) this.poll(reason);
  }

  /** @param {string} reason */
  poll(reason) {
    if (this.closed || this.inflight) return;
    this.inflight = true;
    this.lastPollAt = this.context.now();
    for (const sub of this.subs) sub.polls += 1;
    this.context.trace(`poll ${this.id} (${reason})`);
    const { signal } = this.controller;
    // Asked at once (a throw becomes a rejection): a message to the kernel goes out now.
    new Promise((resolve) => resolve(this.context.source.fetchJob(this.id, signal)))
      .then(
        (snapshot) => {
          if (signal.aborted) return;
          this.error = null;
          // An answer that comes later as a snapshot (the kernel) counts from the ask,
          // so a quiet kernel is asked again after watchdogTimeout, not every tick.
          this.lastUpdate = this.context.now();
          if (!snapshot || !this.apply(snapshot, "poll")) this.context.notify(this);
        },
        (error) => {
          if (signal.aborted) return;
          if (isNotFound(error)) {
            this.markDeleted("poll answered 404");
            return;
          }
          this.error = error && error.message ? String(error.message) : String(error);
          this.context.trace(`poll ${this.id} failed: ${this.error}`);
          this.context.notify(this);
        },
      )
      .finally(() => {
        this.inflight = false;
      });
  }

  /**
   * Show `snapshot` if it is newer than what is shown; true if it was applied.
   * @param {Snapshot | null} snapshot
   * @param {string} source where it came from, for the debug log
   */
  apply(snapshot, source) {
    if (this.deleted || !snapshot || snapshot.id !== this.id) return false;
    const version = Number(snapshot.version);
    if (!isNewer(snapshot, this.snapshot)) {
      this.context.trace(`${source} v${version} of ${this.id} ignored: showing v${this.version}`);
      return false;
    }
    this.version = version;
    this.snapshot = snapshot;
    this.lastSnapshotAt = this.context.now();
    this.context.trace(
      `${source} ${this.id} v${version} ${snapshot.status} ${snapshot.done}/${snapshot.total}`,
    );
    this.context.notify(this);
    return true;
  }
}
