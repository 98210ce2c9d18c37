// Layers 1 and 2 of docs/internals.md: the page's one EventSource, and rebuilding it.
//
// The stream's state is one explicit phase (see `StreamPhase` in types.js);
// nothing is stored on the browser's EventSource object. A stream knows
// nothing of jobs: it reports what happens to its owner, the hub.

import { after } from "./lifetime.js";
import { JOB_EVENTS } from "./states.js";

/** @typedef {import("./types.js").StreamPhase} StreamPhase */
/** @typedef {import("./types.js").Timers} Timers */

/** `EventSource.readyState` once the browser has given up on a source for good. */
const READY_CLOSED = 2;

/**
 * What a stream tells its owner.
 * @typedef {object} StreamEvents
 * @property {(browserRetry: boolean) => void} onOpen the stream opened; `browserRetry`
 *   when the browser reconnected the same EventSource on its own after an error
 * @property {(entered: boolean) => void} onError an error; `entered` when it took the
 *   stream from open (or connecting) to down
 * @property {() => void} onRebuild a new EventSource replaces one that failed
 * @property {(type: string, data: string) => void} onMessage a `progress`, `complete` or `deleted` event
 */

/**
 * @typedef {object} StreamOptions
 * @property {new (url: string) => EventSource} EventSource
 * @property {Timers} timers
 * @property {() => number} now
 * @property {() => number} reconnectDelay ms to wait before rebuilding a closed source
 * @property {(message: string, ...details: unknown[]) => void} trace
 * @property {AbortSignal} signal closes the stream for good when aborted
 */

export class Stream {
  /**
   * @param {string} url
   * @param {StreamOptions} options
   * @param {StreamEvents} events
   */
  constructor(url, options, events) {
    this.url = url;
    this.options = options;
    this.events = events;
    /** @type {StreamPhase} */
    this.phase = "idle";
    /** True once any EventSource of this stream has opened. */
    this.everOpened = false;
    /** When the stream went down (the hub's clock); null unless `phase` is `down`. */
    /** @type {number | null} */
    this.downSince = null;
    /** When the last message (event or heartbeat) arrived. */
    this.lastMessageAt = options.now();
    /** EventSources built so far. */
    this.builds = 0;
    /** @type {EventSource | null} */
    this.source = null;
    /** The source that failed last, until it opens again (a browser retry). */
    /** @type {EventSource | null} */
    this.failed = null;
    /** @type {AbortController | null} listeners of the current source */
    this.listeners = null;
    options.signal.addEventListener("abort", () => this.close(), { once: true });
  }

  get isOpen() {
    return this.phase === "open";
  }

  /** Build the first EventSource (a no-op once started). */
  start() {
    if (this.phase === "idle") this.build();
  }

  /** Replace an open stream that has gone mute (not even heartbeats). */
  restart() {
    if (this.phase === "closed") return;
    this.drop();
    this.goDown();
    this.build();
  }

  close() {
    if (this.phase === "closed") return;
    this.drop();
    this.phase = "closed";
    this.downSince = null;
  }

  /** @private */
  build() {
    if (this.phase === "closed") return;
    if (this.builds > 0) this.events.onRebuild();
    this.builds += 1;
    if (this.phase === "idle") this.phase = "connecting";
    this.listeners = new AbortController();
    const { signal } = this.listeners;
    const source = new this.options.EventSource(this.url);
    this.source = source;
    this.options.trace(`EventSource #${this.builds} ${this.url}`); // no token in it (api.js)
    source.addEventListener("open", () => this.onOpen(source), { signal });
    source.addEventListener("error", () => this.onError(source), { signal });
    for (const type of JOB_EVENTS) {
      source.addEventListener(type, (event) => this.onMessage(source, type, event), { signal });
    }
    source.addEventListener("heartbeat", () => this.onHeartbeat(source), { signal });
  }

  /** @private */
  drop() {
    if (this.listeners) this.listeners.abort();
    this.listeners = null;
    if (this.source) this.source.close();
    this.source = null;
  }

  /** @private */
  goDown() {
    this.phase = "down";
    this.downSince = this.options.now();
  }

  /**
   * @private
   * @param {EventSource} source
   */
  onOpen(source) {
    if (source !== this.source || this.phase === "closed") return;
    const browserRetry = this.failed === source;
    this.failed = null;
    this.phase = "open";
    this.everOpened = true;
    this.downSince = null;
    this.lastMessageAt = this.options.now();
    this.options.trace("stream open");
    this.events.onOpen(browserRetry);
  }

  /**
   * @private
   * @param {EventSource} source
   */
  onError(source) {
    if (source !== this.source || this.phase === "closed") return;
    this.failed = source;
    const entered = this.phase !== "down";
    if (entered) this.goDown();
    this.options.trace(`stream error (readyState ${source.readyState})`);
    if (source.readyState === READY_CLOSED) {
      // A non-200 answer closes an EventSource for good: the browser will
      // not retry, so build a new one ourselves.
      this.drop();
      after(this.options.timers, this.options.reconnectDelay(), () => this.build(),
        this.options.signal);
    }
    this.events.onError(entered);
  }

  /**
   * @private
   * @param {EventSource} source
   * @param {string} type
   * @param {Event} event
   */
  onMessage(source, type, event) {
    if (source !== this.source || this.phase === "closed") return;
    this.lastMessageAt = this.options.now();
    this.events.onMessage(type, String(/** @type {MessageEvent} */ (event).data));
  }

  /**
   * Proof the connection is alive, not a job update: the watchdog still polls
   * jobs the broadcaster has gone silent about.
   * @private
   * @param {EventSource} source
   */
  onHeartbeat(source) {
    if (source !== this.source || this.phase === "closed") return;
    this.lastMessageAt = this.options.now();
  }
}
