// Where a hub's updates come from: a Source. Two exist, and the watches
// (watch.js, listwatch.js) never ask which one they have:
//
//   - PageSource (here): the page's one EventSource (stream.js) for pushed
//     job events, and the server's REST API for polls and actions;
//   - KernelSource (kernel.js): the kernel's channel through the anywidget
//     model, where the page cannot reach the server (docs/batch-server.md).
//
// A source delivers snapshots (and pages of jobs) to its hub, keeps its own
// connection state, and says how to poll through it. The version rule, the
// watchdog and the decision to poll belong to the watches.

import { createApi } from "./api.js";
import { Stream } from "./stream.js";

/** @typedef {import("./types.js").Snapshot} Snapshot */
/** @typedef {import("./types.js").Api} Api */
/** @typedef {import("./types.js").Timers} Timers */
/** @typedef {import("./types.js").JobsPage} JobsPage */
/** @typedef {import("./types.js").ListQuery} ListQuery */
/** @typedef {import("./types.js").ItemsPage} ItemsPage */
/** @typedef {import("./types.js").OutputsAnswer} OutputsAnswer */
/** @typedef {import("./types.js").ConnectionState} ConnectionState */
/** @typedef {import("./types.js").StreamPhase} StreamPhase */

/**
 * A page of jobs as a source sends it on its own (the kernel's `kernel_jobs`):
 * no `jobs` when the kernel could not fetch them, and then its `error`.
 * @typedef {{jobs?: Snapshot[], total?: number, error?: string}} SentPage
 */

/**
 * What a source tells its hub.
 * @typedef {object} SourceEvents
 * @property {(browserRetry: boolean) => void} onOpen the push channel (re)opened: catch up
 * @property {(entered: boolean, neverOpened: boolean) => void} onError an error;
 *   `entered` when it took the channel down, `neverOpened` before it ever opened
 * @property {() => void} onRebuild the channel is built anew after a failure (a reconnect)
 * @property {(type: string, snapshot: Snapshot) => void} onSnapshot a job event:
 *   `progress`, `complete` or `deleted`
 * @property {(page: SentPage) => void} onPage a page of jobs
 *   the source delivered on its own (the kernel's answer to a refresh)
 */

/**
 * What a source gets from its hub when it starts.
 * @typedef {object} SourceHost
 * @property {Timers} timers
 * @property {() => number} now
 * @property {() => number} reconnectDelay the subscribers' strictest `reconnectDelay`
 * @property {(message: string, ...details: unknown[]) => void} trace
 * @property {AbortSignal} signal the hub's lifetime: the source stops with it
 * @property {SourceEvents} events
 */

/**
 * A source of updates for a hub.
 * @typedef {object} Source
 * @property {string} url what the hub is known by (diagnostics)
 * @property {boolean} listsOnRequest true when a page of jobs is current only
 *   when asked for again (the kernel); false when job events are pushed (the page)
 * @property {boolean} isOpen the push channel is open: a newly followed job needs a catch-up poll
 * @property {StreamPhase | "kernel"} phase (diagnostics)
 * @property {(host: SourceHost) => void} start begin delivering (once per hub)
 * @property {(timeout: number) => ConnectionState} connection the state to show a
 *   subscriber whose `watchdogTimeout` is `timeout`
 * @property {(timeout: number) => boolean} restartIfMute rebuild an open channel
 *   that has said nothing (not even a heartbeat) for `timeout`; true if it did
 * @property {(timeout: number) => boolean} downTooLong the channel has been down
 *   for `timeout` (or never opened): watches poll instead of waiting
 * @property {(jobId: string, signal: AbortSignal) => Promise<Snapshot | null>} fetchJob
 *   a poll of one job; null when the answer comes as a snapshot later
 * @property {(query: ListQuery, signal: AbortSignal) => Promise<JobsPage | null>} fetchList
 *   a poll of a page of jobs; null when the answer comes as a page later
 * @property {(type: "cancel" | "retry", jobId: string, signal: AbortSignal) =>
 *   Promise<Snapshot | null>} act Cancel or Retry; the new snapshot, if the answer carries it
 * @property {(jobId: string, limit: number, signal: AbortSignal) => Promise<ItemsPage>} failedItems
 * @property {(jobId: string, limit: number, signal: AbortSignal) => Promise<OutputsAnswer>} outputs
 */

/**
 * How to reach the server and the outside world; everything is injectable for tests.
 * @typedef {object} PageOptions
 * @property {string} [baseUrl] the page's base URL ("/")
 * @property {string} [token] the page config token, if any
 * @property {new (url: string) => EventSource} [EventSource] (the global one)
 * @property {typeof fetch} [fetch] (the global one)
 * @property {Api} [api] a ready REST client (see api.js), instead of fetch
 */

/** The page's server: its one event stream (pushed) and its REST API (polls, actions). */
export class PageSource {
  /**
   * @param {string} url the stream URL
   * @param {PageOptions} options
   */
  constructor(url, options) {
    this.url = url;
    this.api =
      options.api ||
      createApi({ baseUrl: options.baseUrl, token: options.token, fetch: options.fetch });
    this.EventSource = options.EventSource || globalThis.EventSource;
    this.listsOnRequest = false;
    /** @type {Stream | null} built by `start` */
    this.stream = null;
    /** @type {SourceHost | null} */
    this.host = null;
  }

  get isOpen() {
    return Boolean(this.stream && this.stream.isOpen);
  }

  /** @returns {StreamPhase} */
  get phase() {
    return this.stream ? this.stream.phase : "idle";
  }

  /** @param {SourceHost} host */
  start(host) {
    if (this.stream) return;
    this.host = host;
    const { events } = host;
    this.stream = new Stream(
      this.url,
      {
        EventSource: this.EventSource,
        timers: host.timers,
        now: host.now,
        reconnectDelay: host.reconnectDelay,
        trace: host.trace,
        signal: host.signal,
      },
      {
        onOpen: events.onOpen,
        onError: (entered) => events.onError(entered, !this.stream?.everOpened),
        onRebuild: events.onRebuild,
        onMessage: (type, data) => this.onMessage(type, data),
      },
    );
    this.stream.start();
  }

  /**
   * @param {string} type
   * @param {string} data
   */
  onMessage(type, data) {
    if (!this.host) return;
    /** @type {Snapshot | null} */
    let snapshot = null;
    try {
      snapshot = JSON.parse(data);
    } catch {
      this.host.trace("unparsable event ignored", data);
      return;
    }
    if (!snapshot || typeof snapshot.id !== "string") return;
    this.host.events.onSnapshot(type, snapshot);
  }

  /**
   * @param {number} timeout
   * @returns {ConnectionState}
   */
  connection(timeout) {
    if (!this.stream || !this.host) return "connecting";
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
        if (downSince !== null && this.host.now() - downSince >= timeout) return "polling";
        return "reconnecting";
    }
  }

  /** @param {number} timeout */
  restartIfMute(timeout) {
    if (!this.stream || !this.host || !this.stream.isOpen) return false;
    if (this.host.now() - this.stream.lastMessageAt < timeout) return false;
    // Open but mute (not even heartbeats): a half-open TCP connection or a
    // buffering proxy. Start over; the new stream's open polls to catch up.
    this.host.trace("stream silent, rebuilding it");
    this.stream.restart();
    return true;
  }

  /** @param {number} timeout */
  downTooLong(timeout) {
    return this.connection(timeout) === "polling"; // down for `timeout`, or never opened
  }

  /**
   * @param {string} jobId
   * @param {AbortSignal} signal
   */
  fetchJob(jobId, signal) {
    return this.api.getJob(jobId, signal);
  }

  /**
   * @param {ListQuery} query
   * @param {AbortSignal} signal
   */
  fetchList(query, signal) {
    return this.api.listJobs(query, signal);
  }

  /**
   * @param {"cancel" | "retry"} type
   * @param {string} jobId
   * @param {AbortSignal} signal
   */
  act(type, jobId, signal) {
    return this.api[type](jobId, signal);
  }

  /**
   * @param {string} jobId
   * @param {number} limit
   * @param {AbortSignal} signal
   */
  failedItems(jobId, limit, signal) {
    return this.api.getFailedItems(jobId, limit, signal);
  }

  /**
   * @param {string} jobId
   * @param {number} limit
   * @param {AbortSignal} signal
   */
  outputs(jobId, limit, signal) {
    return this.api.getOutputs(jobId, limit, signal);
  }
}
