// The jobs view's share of the three recovery layers (docs/jobs-view.md): one page of
// the server's job list, kept current by every job event on the page's one
// stream, re-fetched on each (re)open and by its own watchdog.
//
// Each row follows the version rule of a single job (never goes backwards). A
// job the page has not seen joins the first page when its event arrives (a new
// job is the newest); a deleted one leaves it. A fetch of the page is the
// authority on which jobs are on it.
//
// Through a source that sends pages only when asked (the kernel), the watchdog
// asks again every second while a job on the page moves, and every
// `watchdogInterval` otherwise.

import { childController, retimable } from "./lifetime.js";
import { isActive } from "./states.js";
import { isNewer } from "./version.js";

/** @typedef {import("./types.js").Snapshot} Snapshot */
/** @typedef {import("./types.js").JobsPage} JobsPage */
/** @typedef {import("./types.js").ListQuery} ListQuery */
/** @typedef {import("./source.js").Source} Source */
/** @typedef {import("./types.js").Timers} Timers */
/** @typedef {import("./watch.js").Subscriber} Subscriber */

/**
 * What a list watch needs from its hub.
 * @typedef {object} ListContext
 * @property {Source} source where fetches of the page go
 * @property {() => number} now
 * @property {Timers} timers
 * @property {(message: string, ...details: unknown[]) => void} trace
 * @property {(watch: ListWatch) => void} notify tell the watch's subscriber
 * @property {(watch: ListWatch) => void} tick the watchdog's check of the list
 * @property {(snapshot: Snapshot) => void} share hand a fetched snapshot to the page's job watches
 */

/** The most rows a page of the jobs view holds (the API caps `limit` there too). */
export const MAX_PAGE = 1000;

/** How often a page of jobs sent only on request is asked for while a job on it moves. */
export const ACTIVE_REFRESH_MS = 1000;

/**
 * @param {Partial<ListQuery>} [query]
 * @returns {ListQuery}
 */
export function listQuery(query = {}) {
  const limit = Math.min(MAX_PAGE, Math.max(1, Math.floor(Number(query.limit) || 50)));
  const offset = Math.max(0, Math.floor(Number(query.offset) || 0));
  return { status: query.status || "", limit, offset };
}

/**
 * Newest first: by `created_at`, and a job not seen before ahead of its equals.
 * @param {Snapshot} a
 * @param {Snapshot} b
 */
function newerFirst(a, b) {
  const x = a.created_at || "";
  const y = b.created_at || "";
  return x === y ? 0 : x > y ? -1 : 1;
}

/**
 * A fetched page of jobs, each row kept at the newest version the page has shown.
 * @param {Snapshot[]} shown the rows shown now
 * @param {Snapshot[]} fetched the page as the server (or the kernel) answered it
 * @returns {Snapshot[]}
 */
export function newestOf(shown, fetched) {
  const known = new Map(shown.map((row) => [row.id, row]));
  return fetched.map((row) => {
    const current = known.get(row.id);
    return current && isNewer(current, row) ? current : row;
  });
}

export class ListWatch {
  /**
   * @param {Subscriber} sub the jobs view it serves
   * @param {ListQuery} query
   * @param {ListContext} context
   * @param {AbortSignal} parent the hub's lifetime
   */
  constructor(sub, query, context, parent) {
    this.sub = sub;
    this.query = query;
    this.context = context;
    /** @type {Snapshot[]} the rows, newest first */
    this.rows = [];
    /** Jobs matching the query on the server (the page holds at most `limit`). */
    this.total = 0;
    /** True once a fetch of the page has answered. */
    this.loaded = false;
    this.lastUpdate = context.now();
    /** @type {number | null} */
    this.lastChangeAt = null;
    this.lastPollAt = -Infinity;
    /** @type {string | null} */
    this.error = null;
    this.inflight = false;
    /** @type {Array<[string, Snapshot]>} events that came before the first fetch answered */
    this.early = [];
    /** A fetch is wanted once the one in flight answers (the query changed, or a row left). */
    this.again = false;
    this.controller = childController(parent);
    /** (Re)starts the watchdog at an interval. */
    this.watchdogAt = retimable(context.timers, () => context.tick(this), this.controller.signal);
  }

  get closed() {
    return this.controller.signal.aborted;
  }

  /** True while a job on the page is still moving. */
  get active() {
    return this.rows.some((row) => isActive(row.status));
  }

  /**
   * (Re)start the watchdog at the subscriber's interval, or every second while a
   * job on a page the source sends only on request is moving.
   */
  retime() {
    const quick = this.context.source.listsOnRequest && this.active;
    this.watchdogAt(quick ? ACTIVE_REFRESH_MS : this.sub.settings.watchdogInterval);
  }

  close() {
    this.controller.abort();
  }

  /**
   * Show another page or status: the rows are fetched again.
   * @param {Partial<ListQuery>} query
   */
  setQuery(query) {
    const next = listQuery({ ...this.query, ...query });
    if (next.status === this.query.status && next.limit === this.query.limit &&
      next.offset === this.query.offset) return;
    this.query = next;
    this.loaded = false;
    this.poll("page changed");
  }

  /**
   * The watchdog's decision, given how long the stream has been down.
   * @param {boolean} streamDownTooLong
   */
  check(streamDownTooLong) {
    const age = this.context.now() - this.lastUpdate;
    if (this.context.source.listsOnRequest) this.poll("refresh: the page is sent only on request");
    else if (streamDownTooLong) this.pollIfDue("stream down, polling");
    else if (!this.loaded || (this.active && age >= this.sub.settings.watchdogTimeout)) {
      this.poll("watchdog: no update");
    }
  }

  /**
   * Poll unless the list was fetched within half a watchdog interval.
   * @param {string} reason
   */
  pollIfDue(reason) {
    const recent = this.context.now() - this.lastPollAt < this.sub.settings.watchdogInterval / 2;
    if (!recent) this.poll(reason);
  }

  /** @param {string} reason */
  poll(reason) {
    if (this.closed) return;
    if (this.inflight) {
      this.again = true;
      return;
    }
    this.inflight = true;
    this.again = false;
    this.lastPollAt = this.context.now();
    this.sub.polls += 1;
    const query = this.query;
    this.context.trace(`poll jobs list (${reason})`, query);
    const { signal } = this.controller;
    // Asked at once (a throw becomes a rejection): a message to the kernel goes out now.
    new Promise((resolve) => resolve(this.context.source.fetchList(query, signal)))
      .then(
        (answer) => {
          if (signal.aborted || query !== this.query) return;
          if (answer) this.receive(answer);
          else this.context.notify(this); // the page comes later (the kernel): show the count
        },
        (error) => {
          if (signal.aborted) return;
          this.error = error && error.message ? String(error.message) : String(error);
          this.context.trace(`poll of the jobs list failed: ${this.error}`);
          this.context.notify(this);
        },
      )
      .finally(() => {
        this.inflight = false;
        if (this.again && !signal.aborted) this.poll("asked again");
      });
  }

  /**
   * A page of jobs, fetched or sent by the source: its `error` (the kernel's
   * failed fetch) is shown; without a list of jobs it loads nothing.
   * @param {JobsPage | import("./source.js").SentPage} answer
   */
  receive(answer) {
    this.error = ("error" in answer && answer.error) || null;
    this.lastUpdate = this.context.now();
    if (Array.isArray(answer.jobs)) {
      this.load({ jobs: answer.jobs, total: Number(answer.total) || 0 });
    } else {
      this.rows = [];
      this.total = Number(answer.total) || 0;
      this.context.notify(this);
    }
  }

  /**
   * Take a fetched page: its jobs are the rows, each kept at the newest version seen.
   * @param {JobsPage} answer
   */
  load(answer) {
    const fetched = answer.jobs || [];
    for (const snapshot of fetched) this.context.share(snapshot);
    this.rows = newestOf(this.rows, fetched);
    this.total = Number(answer.total) || 0;
    const wasLoaded = this.loaded;
    this.loaded = true;
    // Events that came while the page was fetched may be newer than the answer
    // (a job created after the server listed the page): apply them on top.
    const early = this.early;
    this.early = [];
    if (!wasLoaded) for (const [type, snapshot] of early) this.event(type, snapshot, true);
    this.lastChangeAt = this.context.now();
    this.retime(); // a page sent on request is asked for sooner while a job on it moves
    this.context.notify(this);
  }

  /**
   * A job event from the stream; true if the rows changed.
   * @param {string} type `progress`, `complete` or `deleted`
   * @param {Snapshot} snapshot
   * @param {boolean} [quiet] apply without telling the subscriber (it is told once after)
   */
  event(type, snapshot, quiet = false) {
    if (this.closed || !snapshot || typeof snapshot.id !== "string") return false;
    if (!this.loaded) {
      if (this.early.length < this.query.limit * 4) this.early.push([type, snapshot]);
      return false;
    }
    const at = this.rows.findIndex((row) => row.id === snapshot.id);
    if (type === "deleted") {
      if (at < 0) return false;
      this.rows.splice(at, 1);
      this.total = Math.max(0, this.total - 1);
      this.changed(quiet);
      // Older jobs move up into the freed place: fetch the page again.
      this.poll("a job left the page");
      return true;
    }
    this.lastUpdate = this.context.now();
    if (at >= 0) {
      if (!isNewer(snapshot, this.rows[at])) return false;
      this.rows[at] = snapshot;
      this.changed(quiet);
      return true;
    }
    return this.admit(snapshot, quiet);
  }

  /**
   * A job the page has not shown: a new one belongs at the top of the first page.
   * @param {Snapshot} snapshot
   * @param {boolean} quiet
   */
  admit(snapshot, quiet) {
    const { status, offset, limit } = this.query;
    if (!this.loaded || offset > 0) return false;
    if (status && snapshot.status !== status) return false;
    // An event for an older job that is not on the page (a retry of a job on a
    // later page, say) belongs further down: the page stays as it is.
    const last = this.rows[this.rows.length - 1];
    if (this.rows.length >= limit && last && newerFirst(snapshot, last) >= 0) return false;
    this.rows.push(snapshot);
    this.rows.sort(newerFirst);
    if (this.rows.length > limit) this.rows.length = limit;
    this.total += 1;
    this.changed(quiet);
    return true;
  }

  /** @param {boolean} [quiet] */
  changed(quiet = false) {
    this.lastChangeAt = this.context.now();
    if (!quiet) this.context.notify(this);
  }
}
