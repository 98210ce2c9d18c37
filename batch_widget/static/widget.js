/* batch_widget front end, built from js/src by `npm run build`: do not edit. */

// src/api.js
function normalizeBaseUrl(baseUrl) {
  const base = baseUrl || "/";
  return base.endsWith("/") ? base : `${base}/`;
}
function streamUrl({ baseUrl } = {}) {
  return `${normalizeBaseUrl(baseUrl)}api/batch/events`;
}
function jobUrl({ baseUrl }, jobId, suffix = "", query = "") {
  const path = `${normalizeBaseUrl(baseUrl)}api/batch/jobs/${encodeURIComponent(jobId)}${suffix}`;
  return query ? `${path}?${query}` : path;
}
function listUrl({ baseUrl }, { status, limit, offset }) {
  const params = new URLSearchParams({ limit: String(limit), offset: String(offset) });
  if (status) params.set("status", status);
  return `${normalizeBaseUrl(baseUrl)}api/batch/jobs?${params}`;
}
function authHeaders(token) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `token ${token}`;
  return headers;
}
function fileHref(baseUrl, path) {
  return `${normalizeBaseUrl(baseUrl)}lab/tree/${encodePath(path)}`;
}
function downloadHref(baseUrl, path) {
  return `${normalizeBaseUrl(baseUrl)}files/${encodePath(path)}`;
}
function encodePath(path) {
  return String(path).split("/").map(encodeURIComponent).join("/");
}
var ApiError = class extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {boolean} [json] the answer was JSON (batch_widget's own), not a page of HTML
   */
  constructor(status, message, json = false) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.json = json;
  }
};
function isNotFound(error) {
  return Boolean(error && /** @type {{status?: number}} */
  error.status === 404);
}
async function readJson(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.message || response.statusText || `HTTP ${response.status}`;
    throw new ApiError(response.status, message, body !== null);
  }
  return body;
}
function createApi({ baseUrl = "/", token = "", getXsrf = () => "", fetch: fetchFn } = {}) {
  const doFetch = fetchFn || ((input, init) => globalThis.fetch(input, init));
  const auth = { baseUrl };
  const get = (url, signal) => doFetch(url, { credentials: "same-origin", headers: authHeaders(token), signal }).then(readJson);
  const post = (url, signal) => {
    const headers = authHeaders(token);
    headers["Content-Type"] = "application/json";
    const xsrf = getXsrf();
    if (xsrf) headers["X-XSRFToken"] = xsrf;
    return doFetch(url, { method: "POST", credentials: "same-origin", headers, body: "{}", signal }).then(readJson);
  };
  return {
    baseUrl: normalizeBaseUrl(baseUrl),
    getJob: (jobId, signal) => get(jobUrl(auth, jobId), signal),
    listJobs: (query, signal) => get(listUrl(auth, query), signal),
    getFailedItems: (jobId, limit = 20, signal) => get(jobUrl(auth, jobId, "/items", `status=failed&limit=${limit}`), signal),
    getOutputs: (jobId, limit = 20, signal) => get(jobUrl(auth, jobId, "/outputs", `limit=${limit}`), signal),
    // The header carries the token; XSRF guards the cookie path of writes.
    cancel: (jobId, signal) => post(jobUrl(auth, jobId, "/cancel"), signal),
    retry: (jobId, signal) => post(jobUrl(auth, jobId, "/retry"), signal),
    fileHref: (path) => fileHref(baseUrl, path),
    downloadHref: (path) => downloadHref(baseUrl, path)
  };
}

// src/lifetime.js
function defaultTimers() {
  const g = globalThis;
  return {
    setTimeout: g.setTimeout.bind(g),
    clearTimeout: g.clearTimeout.bind(g),
    setInterval: g.setInterval.bind(g),
    clearInterval: g.clearInterval.bind(g)
  };
}
function tiedTo(start, stop, signal) {
  let id = null;
  const cancel = () => {
    stop(id);
    signal.removeEventListener("abort", cancel);
  };
  id = start(cancel);
  signal.addEventListener("abort", cancel, { once: true });
  return cancel;
}
function after(timers, ms, fn, signal) {
  const start = (cancel) => timers.setTimeout(() => {
    cancel();
    fn();
  }, ms);
  return tiedTo(start, (id) => timers.clearTimeout(id), signal);
}
function every(timers, ms, fn, signal) {
  return tiedTo(() => timers.setInterval(fn, ms), (id) => timers.clearInterval(id), signal);
}
function childController(parent) {
  const controller = new AbortController();
  parent.addEventListener("abort", () => controller.abort(), {
    once: true,
    signal: controller.signal
  });
  return controller;
}
function retimable(timers, fn, signal) {
  let stop = null;
  let current = null;
  return (ms) => {
    if (stop && current === ms) return;
    if (stop) stop();
    current = ms;
    stop = every(timers, ms, fn, signal);
  };
}

// src/states.js
var ACTIVE_STATUSES = Object.freeze(
  /** @type {JobStatus[]} */
  ["queued", "processing"]
);
var TERMINAL_STATUSES = Object.freeze(
  /** @type {JobStatus[]} */
  ["completed", "failed", "cancelled", "interrupted"]
);
var DELETED = "deleted";
var JOB_EVENTS = Object.freeze(["progress", "complete", DELETED]);
var CONNECTION_STATES = Object.freeze(
  /** @type {ConnectionState[]} */
  ["connecting", "live", "reconnecting", "polling", "closed", "kernel"]
);
var DEFAULTS = Object.freeze({
  reconnectDelay: 5e3,
  watchdogInterval: 15e3,
  watchdogTimeout: 6e4
});
function isTerminal(status) {
  return TERMINAL_STATUSES.some((s) => s === status);
}
function isActive(status) {
  return ACTIVE_STATUSES.some((s) => s === status);
}

// src/version.js
function isNewer(offered, shown) {
  return Number(offered.version) > (shown ? Number(shown.version) : -Infinity);
}

// src/listwatch.js
var MAX_PAGE = 1e3;
var ACTIVE_REFRESH_MS = 1e3;
function listQuery(query = {}) {
  const limit = Math.min(MAX_PAGE, Math.max(1, Math.floor(Number(query.limit) || 50)));
  const offset = Math.max(0, Math.floor(Number(query.offset) || 0));
  return { status: query.status || "", limit, offset };
}
function newerFirst(a, b) {
  const x = a.created_at || "";
  const y = b.created_at || "";
  return x === y ? 0 : x > y ? -1 : 1;
}
function newestOf(shown, fetched) {
  const known = new Map(shown.map((row) => [row.id, row]));
  return fetched.map((row) => {
    const current = known.get(row.id);
    return current && isNewer(current, row) ? current : row;
  });
}
var ListWatch = class {
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
    this.rows = [];
    this.total = 0;
    this.loaded = false;
    this.lastUpdate = context.now();
    this.lastChangeAt = null;
    this.lastPollAt = -Infinity;
    this.error = null;
    this.inflight = false;
    this.early = [];
    this.again = false;
    this.controller = childController(parent);
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
    if (next.status === this.query.status && next.limit === this.query.limit && next.offset === this.query.offset) return;
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
    else if (!this.loaded || this.active && age >= this.sub.settings.watchdogTimeout) {
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
    new Promise((resolve) => resolve(this.context.source.fetchList(query, signal))).then(
      (answer) => {
        if (signal.aborted || query !== this.query) return;
        if (answer) this.receive(answer);
        else this.context.notify(this);
      },
      (error) => {
        if (signal.aborted) return;
        this.error = error && error.message ? String(error.message) : String(error);
        this.context.trace(`poll of the jobs list failed: ${this.error}`);
        this.context.notify(this);
      }
    ).finally(() => {
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
    this.error = "error" in answer && answer.error || null;
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
    const early = this.early;
    this.early = [];
    if (!wasLoaded) for (const [type, snapshot] of early) this.event(type, snapshot, true);
    this.lastChangeAt = this.context.now();
    this.retime();
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
};

// src/watch.js
function strictest(subs, name) {
  let value = Infinity;
  for (const sub of subs) value = Math.min(value, sub.settings[name]);
  return Number.isFinite(value) ? value : DEFAULTS[name];
}
var JobWatch = class {
  /**
   * @param {string} id
   * @param {WatchContext} context
   * @param {AbortSignal} parent the hub's lifetime
   */
  constructor(id, context, parent) {
    this.id = id;
    this.context = context;
    this.subs = /* @__PURE__ */ new Set();
    this.snapshot = null;
    this.version = -Infinity;
    this.lastUpdate = context.now();
    this.lastSnapshotAt = null;
    this.lastPollAt = -Infinity;
    this.error = null;
    this.inflight = false;
    this.deleted = false;
    this.controller = childController(parent);
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
    if (this.terminal) return;
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
    new Promise((resolve) => resolve(this.context.source.fetchJob(this.id, signal))).then(
      (snapshot) => {
        if (signal.aborted) return;
        this.error = null;
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
      }
    ).finally(() => {
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
      `${source} ${this.id} v${version} ${snapshot.status} ${snapshot.done}/${snapshot.total}`
    );
    this.context.notify(this);
    return true;
  }
};

// src/hub.js
function positive(value, fallback) {
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? number : fallback;
}
function timingFrom(options = {}) {
  return {
    reconnectDelay: positive(options.reconnectDelay, DEFAULTS.reconnectDelay),
    watchdogInterval: positive(options.watchdogInterval, DEFAULTS.watchdogInterval),
    watchdogTimeout: positive(options.watchdogTimeout, DEFAULTS.watchdogTimeout),
    debug: Boolean(options.debug)
  };
}
var Hub = class {
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
    this.log = options.log || ((...args) => console.log(...args));
    this.controller = new AbortController();
    this.subs = /* @__PURE__ */ new Set();
    this.jobs = /* @__PURE__ */ new Map();
    this.lists = /* @__PURE__ */ new Set();
    this.cancelDownTimer = null;
    const trace = this.trace.bind(this);
    this.watchContext = {
      source,
      now: this.now,
      timers: this.timers,
      trace,
      notify: (watch) => this.notifyJob(watch),
      tick: (watch) => this.watchdog(watch)
    };
    this.listContext = {
      source,
      now: this.now,
      timers: this.timers,
      trace,
      notify: (list) => this.notify(list.sub),
      tick: (list) => this.listWatchdog(list),
      share: (snapshot) => {
        const job = this.jobs.get(snapshot.id);
        if (job) job.apply(snapshot, "list poll");
      }
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
        onPage: (page) => this.onPage(page)
      }
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
    const sub = {
      jobId,
      listener,
      settings: timingFrom(options),
      reconnects: 0,
      polls: 0,
      connection: null,
      closed: false
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
      job.poll("new subscriber");
    }
    this.notify(sub);
    return Object.assign(() => this.unsubscribe(sub), {
      ...this.asks(sub, () => job.poll("action refused")),
      update: (changes) => this.update(sub, changes),
      poll: () => job.poll("requested"),
      gone: () => job.markDeleted("the server has no such job"),
      offer: (snapshot) => {
        if (!sub.closed && this.jobs.get(jobId) === job) this.offer(snapshot);
      }
    });
  }
  /**
   * Follow a page of the server's job list (the jobs view, docs/jobs-view.md).
   * @param {(info: ListInfo) => void} listener
   * @param {TimingOptions & Partial<ListQuery>} options
   * @returns {ListSubscription}
   */
  subscribeList(listener, options) {
    const sub = {
      jobId: "",
      listener: () => {
      },
      settings: timingFrom(options),
      reconnects: 0,
      polls: 0,
      connection: null,
      closed: false,
      list: null
    };
    const list = new ListWatch(sub, listQuery(options), this.listContext, this.controller.signal);
    sub.list = { watch: list, listener };
    this.subs.add(sub);
    this.lists.add(list);
    list.retime();
    this.trace("subscribe to the jobs list", list.query);
    this.start();
    list.poll("new subscriber");
    this.notify(sub);
    return Object.assign(() => this.unsubscribe(sub), {
      ...this.asks(sub, () => list.poll("action refused")),
      update: (changes) => {
        this.update(sub, changes);
        list.retime();
      },
      poll: () => list.poll("requested"),
      query: (changes) => list.setQuery(changes),
      offer: (snapshot) => {
        if (!sub.closed) this.offer(snapshot);
      }
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
      outputs: (jobId, limit, signal) => source.outputs(jobId, limit, signal)
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
    this.controller.abort();
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
    if (job && job.deleted) return "closed";
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
      deleted: job ? job.deleted : false
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
      if (sub.settings.debug) this.trace(`${sub.jobId}: ${sub.connection} \u2192 ${info.connection}`);
      sub.connection = info.connection;
    }
    try {
      sub.listener(info);
    } catch (error) {
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
      if (sub.settings.debug) this.trace(`jobs list: ${sub.connection} \u2192 ${connection}`);
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
        error: list.error
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
    if (!job) return;
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
    this.cancelDownTimer = after(
      this.timers,
      timeout,
      () => this.onDownTooLong(),
      this.controller.signal
    );
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
    this.trace(`watchdog ${job.id}: last update ${Math.round((this.now() - job.lastUpdate) / 1e3)} s ago`);
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
};

// src/stream.js
var READY_CLOSED = 2;
var Stream = class {
  /**
   * @param {string} url
   * @param {StreamOptions} options
   * @param {StreamEvents} events
   */
  constructor(url, options, events) {
    this.url = url;
    this.options = options;
    this.events = events;
    this.phase = "idle";
    this.everOpened = false;
    this.downSince = null;
    this.lastMessageAt = options.now();
    this.builds = 0;
    this.source = null;
    this.failed = null;
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
    this.options.trace(`EventSource #${this.builds} ${this.url}`);
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
      this.drop();
      after(
        this.options.timers,
        this.options.reconnectDelay(),
        () => this.build(),
        this.options.signal
      );
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
    this.events.onMessage(type, String(
      /** @type {MessageEvent} */
      event.data
    ));
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
};

// src/source.js
var PageSource = class {
  /**
   * @param {string} url the stream URL
   * @param {PageOptions} options
   */
  constructor(url, options) {
    this.url = url;
    this.api = options.api || createApi({ baseUrl: options.baseUrl, token: options.token, fetch: options.fetch });
    this.EventSource = options.EventSource || globalThis.EventSource;
    this.listsOnRequest = false;
    this.stream = null;
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
        signal: host.signal
      },
      {
        onOpen: events.onOpen,
        onError: (entered) => events.onError(entered, !this.stream?.everOpened),
        onRebuild: events.onRebuild,
        onMessage: (type, data) => this.onMessage(type, data)
      }
    );
    this.stream.start();
  }
  /**
   * @param {string} type
   * @param {string} data
   */
  onMessage(type, data) {
    if (!this.host) return;
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
    this.host.trace("stream silent, rebuilding it");
    this.stream.restart();
    return true;
  }
  /** @param {number} timeout */
  downTooLong(timeout) {
    return this.connection(timeout) === "polling";
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
};

// src/connection.js
var REGISTRY_KEY = "__batchWidgetHub";
var OWN_HUBS = (
  /** @type {WeakMap<Source, Hub>} */
  /* @__PURE__ */ new WeakMap()
);
function hubsOf(registry) {
  if (!(registry[REGISTRY_KEY] instanceof Map)) registry[REGISTRY_KEY] = /* @__PURE__ */ new Map();
  return (
    /** @type {Map<string, Hub>} */
    registry[REGISTRY_KEY]
  );
}
function subscribe(jobId, listener, options = {}) {
  const unsubscribe = hubFor(options).subscribe(jobId, listener, options);
  return tiedToSignal(unsubscribe, options.signal);
}
function subscribeList(listener, options = {}) {
  const unsubscribe = hubFor(options).subscribeList(listener, options);
  return tiedToSignal(unsubscribe, options.signal);
}
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
  const hubs = hubsOf(options.registry || /** @type {Record<string, unknown>} */
  globalThis);
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
function tiedToSignal(unsubscribe, signal) {
  if (signal) {
    if (signal.aborted) unsubscribe();
    else signal.addEventListener("abort", unsubscribe, { once: true });
  }
  return unsubscribe;
}

// src/dom.js
function element(doc, tag, className, text) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text !== void 0) node.textContent = text;
  return node;
}
function defaultFrame(fn) {
  if (typeof globalThis.requestAnimationFrame === "function") {
    const id2 = globalThis.requestAnimationFrame(fn);
    return () => globalThis.cancelAnimationFrame(id2);
  }
  const id = setTimeout(fn, 16);
  return () => clearTimeout(id);
}
function fillBar({ bar, done: doneBar, failed: failedBar }, snapshot) {
  const total = snapshot ? snapshot.total : 0;
  const done = snapshot ? snapshot.done : 0;
  const failed = snapshot ? snapshot.failed : 0;
  bar.setAttribute("aria-valuemax", String(total));
  bar.setAttribute("aria-valuenow", String(done + failed));
  bar.setAttribute("aria-label", `${snapshot ? snapshot.name : "job"}: ${done + failed} of ${total} items`);
  const percent = (n) => total > 0 ? `${(100 * n / total).toFixed(2)}%` : "0%";
  doneBar.style.width = percent(done);
  failedBar.style.width = percent(failed);
}
function makeBar(doc, className) {
  const bar = element(doc, "div", className);
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  const done = element(doc, "div", "bw-bar-done");
  const failed = element(doc, "div", "bw-bar-failed");
  bar.append(done, failed);
  return { bar, done, failed };
}
function actionMessage(kind, caught) {
  const error = (
    /** @type {{message?: string, status?: number} | null} */
    caught
  );
  const detail = error && error.message ? error.message : String(caught);
  const code = error && error.status ? ` (${error.status})` : "";
  return `${kind === "cancel" ? "Cancel" : "Retry"} failed: ${detail}${code}`;
}
function renderLoop(render2, { frame, timers, signal, tick }) {
  let cancelFrame = null;
  const drop = () => {
    if (cancelFrame) cancelFrame();
    cancelFrame = null;
  };
  const schedule = () => {
    if (cancelFrame || signal.aborted) return;
    cancelFrame = frame(() => {
      cancelFrame = null;
      if (!signal.aborted) render2();
    });
  };
  const ticker = timers.setInterval(() => {
    if (tick) tick();
    schedule();
  }, 1e3);
  signal.addEventListener("abort", () => {
    timers.clearInterval(ticker);
    drop();
  }, { once: true });
  return {
    schedule,
    flush() {
      drop();
      render2();
    }
  };
}
function connectionText(info, now) {
  if (!info.lastUpdate) return info.connection;
  const age = Math.max(0, Math.round((now - info.lastUpdate) / 1e3));
  return `${info.connection} \xB7 updated ${age} s ago`;
}
function viewContext(el, options) {
  return {
    frame: options.frame || defaultFrame,
    now: options.now || Date.now,
    timers: options.timers || defaultTimers(),
    doc: el.ownerDocument || globalThis.document
  };
}

// src/format.js
function formatDuration(seconds) {
  if (seconds === null || seconds === void 0 || !Number.isFinite(Number(seconds))) return "\u2014";
  const total = Math.max(0, Math.round(Number(seconds)));
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${String(total % 60).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}
function formatRate(rate) {
  if (rate === null || rate === void 0 || !Number.isFinite(Number(rate))) return "\u2014";
  const value = Number(rate);
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} items/s`;
}
function countsText(snapshot) {
  const { done, failed, pending, total } = snapshot;
  const terminal = isTerminal(snapshot.status);
  const rest = terminal ? "not run" : "pending";
  const retrying = !terminal && snapshot.retrying ? ` (${snapshot.retrying} retrying)` : "";
  return `${done} done \xB7 ${failed} failed \xB7 ${pending} ${rest}${retrying} of ${total}`;
}
function whereText(snapshot) {
  const { executor, workers } = snapshot;
  const count = typeof workers === "number" && !isTerminal(snapshot.status) ? workers : null;
  const many = (n, one, more) => `${n} ${n === 1 ? one : more}`;
  if (executor === "dask") return count === null ? "on Dask" : `on Dask \xB7 ${many(count, "worker", "workers")}`;
  if (count === null) return "";
  if (executor === "process") return `on ${many(count, "process", "processes")}`;
  return `on ${many(count, "thread", "threads")}`;
}
function canRetry(snapshot) {
  if (!snapshot || !isTerminal(snapshot.status)) return false;
  if (snapshot.done >= snapshot.total) return false;
  return snapshot.status !== "completed" || snapshot.failed > 0;
}
function parseTime(value) {
  if (!value) return null;
  const time = Date.parse(value);
  return Number.isNaN(time) ? null : time;
}

// src/jobsview.js
var POOLS = { thread: "threads", process: "processes", dask: "on Dask" };
function poolText(executor) {
  return executor ? POOLS[executor] || executor : "";
}
function rangeText(info) {
  const { rows, total, query } = info;
  const what = query.status ? `${query.status} jobs` : "jobs";
  if (rows.length === 0) return total > 0 ? `none here of ${total} ${what}` : `no ${what}`;
  const first = query.offset + 1;
  return `${first}\u2013${query.offset + rows.length} of ${Math.max(total, query.offset + rows.length)} ${what}`;
}
function createJobsView(el, options) {
  const { actions, signal } = options;
  const { frame, now, timers, doc } = viewContext(el, options);
  const root = element(doc, "div", "bw-jobs");
  const header = element(doc, "div", "bw-jobs-header");
  const title = element(doc, "span", "bw-jobs-title", "Jobs");
  const range = element(doc, "span", "bw-jobs-range", "");
  const badge = element(doc, "span", "bw-connection", "connecting");
  const newer = element(doc, "button", "bw-newer", "\u2039 newer");
  const older = element(doc, "button", "bw-older", "older \u203A");
  newer.setAttribute("type", "button");
  older.setAttribute("type", "button");
  header.append(title, range, badge);
  if (options.control) header.append(options.control);
  header.append(newer, older);
  const note = element(doc, "div", "bw-jobs-note", "");
  const list = element(doc, "div", "bw-jobs-list");
  list.setAttribute("role", "list");
  const empty = element(doc, "div", "bw-jobs-empty", "");
  const diagnostics = element(doc, "div", "bw-debug", "");
  root.append(header, note, list, empty, diagnostics);
  el.replaceChildren(root);
  const state = {
    /** @type {ListInfo | null} */
    info: null,
    debug: false,
    /** @type {Set<string>} rows with an action in flight */
    busy: /* @__PURE__ */ new Set(),
    /** @type {Map<string, string>} the last failed action's message, per row */
    messages: /* @__PURE__ */ new Map()
  };
  const rows = /* @__PURE__ */ new Map();
  let order = [];
  const loop = renderLoop(() => render2(), { frame, timers, signal });
  const schedule = loop.schedule;
  const pageBy = (direction) => {
    const info = state.info;
    if (!info) return;
    const { offset, limit } = info.query;
    actions.page(Math.max(0, offset + direction * limit));
  };
  newer.addEventListener("click", () => pageBy(-1), { signal });
  older.addEventListener("click", () => pageBy(1), { signal });
  async function act(kind, jobId) {
    if (state.busy.has(jobId)) return;
    state.busy.add(jobId);
    state.messages.delete(jobId);
    schedule();
    try {
      await actions[kind](jobId);
    } catch (caught) {
      state.messages.set(jobId, actionMessage(kind, caught));
    } finally {
      state.busy.delete(jobId);
      schedule();
    }
  }
  function makeRow(jobId) {
    const row = element(doc, "div", "bw-job-row");
    row.setAttribute("role", "listitem");
    row.setAttribute("data-job-id", jobId);
    const head = element(doc, "div", "bw-job-head");
    const name = element(doc, "span", "bw-name", "");
    const id = element(doc, "code", "bw-id", jobId);
    id.setAttribute("title", "the job id: bw.attach(id) shows this job in a notebook");
    const status = element(doc, "span", "bw-status", "");
    const buttons = element(doc, "span", "bw-job-actions");
    const cancel = element(doc, "button", "bw-cancel", "Cancel");
    const retry = element(doc, "button", "bw-retry", "Retry");
    cancel.setAttribute("type", "button");
    retry.setAttribute("type", "button");
    buttons.append(cancel, retry);
    head.append(name, id, status, buttons);
    const bar = makeBar(doc, "bw-bar bw-bar-small");
    const stats = element(doc, "div", "bw-stats");
    const counts = element(doc, "span", "bw-counts", "");
    const rate = element(doc, "span", "bw-rate", "");
    const executor = element(doc, "span", "bw-executor", "");
    stats.append(counts, rate, executor);
    const error = element(doc, "div", "bw-job-error", "");
    const message = element(doc, "div", "bw-message", "");
    message.setAttribute("role", "status");
    cancel.addEventListener("click", () => act("cancel", jobId), { signal });
    retry.addEventListener("click", () => act("retry", jobId), { signal });
    row.append(head, bar.bar, stats, error, message);
    return { row, name, id, status, bar, counts, rate, executor, error, cancel, retry, message };
  }
  function fillRow(parts, snapshot, connection) {
    const { row } = parts;
    row.setAttribute("data-status", snapshot.status);
    row.setAttribute("data-connection", connection);
    row.setAttribute("data-done", String(snapshot.done));
    row.setAttribute("data-failed", String(snapshot.failed));
    row.setAttribute("data-total", String(snapshot.total));
    row.setAttribute("data-version", String(snapshot.version));
    row.setAttribute("data-executor", snapshot.executor || "");
    parts.name.textContent = snapshot.name;
    parts.name.setAttribute("title", snapshot.processor || "");
    parts.status.textContent = snapshot.status;
    parts.status.className = `bw-status bw-status-${snapshot.status}`;
    fillBar(parts.bar, snapshot);
    parts.counts.textContent = countsText(snapshot);
    const active = isActive(snapshot.status);
    parts.rate.textContent = active && snapshot.rate ? formatRate(snapshot.rate) : "";
    parts.executor.textContent = whereText(snapshot) || poolText(snapshot.executor);
    parts.error.textContent = snapshot.error || "";
    parts.error.hidden = !snapshot.error;
    const busy = state.busy.has(snapshot.id);
    parts.cancel.hidden = !active;
    parts.retry.hidden = !canRetry(snapshot);
    parts.cancel.disabled = busy;
    parts.retry.disabled = busy;
    const message = state.messages.get(snapshot.id) || "";
    parts.message.textContent = message;
    parts.message.hidden = !message;
  }
  function render2() {
    const info = state.info;
    const connection = info ? info.connection : "connecting";
    root.setAttribute("data-connection", connection);
    root.setAttribute("data-total", String(info ? info.total : 0));
    root.setAttribute("data-shown", String(info ? info.rows.length : 0));
    root.setAttribute("data-offset", String(info ? info.query.offset : 0));
    badge.textContent = info ? connectionText(info, now()) : "connecting";
    badge.className = `bw-connection bw-connection-${connection}`;
    badge.setAttribute("title", info && info.error ? `last fetch failed: ${info.error}` : "");
    range.textContent = info && info.loaded ? rangeText(info) : "loading\u2026";
    const offset = info ? info.query.offset : 0;
    const limit = info ? info.query.limit : 0;
    newer.hidden = offset === 0;
    older.hidden = !info || offset + limit >= info.total;
    const shown = info ? info.rows : [];
    const ids = shown.map((snapshot) => snapshot.id);
    for (const id of [...rows.keys()]) {
      if (!ids.includes(id)) rows.delete(id);
    }
    for (const snapshot of shown) {
      let parts = rows.get(snapshot.id);
      if (!parts) {
        parts = makeRow(snapshot.id);
        rows.set(snapshot.id, parts);
      }
      fillRow(parts, snapshot, connection);
    }
    if (ids.length !== order.length || ids.some((id, at) => id !== order[at])) {
      list.replaceChildren(...ids.map((id) => (
        /** @type {Row} */
        rows.get(id).row
      )));
      order = ids;
    }
    const loaded = Boolean(info && info.loaded);
    const failed = Boolean(info && info.error && !loaded);
    empty.hidden = shown.length > 0 || !(loaded || failed);
    empty.textContent = failed ? `Could not list the jobs: ${info && info.error}` : "No jobs yet: bw.submit(...) starts one, and it shows here at once.";
    diagnostics.hidden = !state.debug;
    diagnostics.textContent = info ? `reconnects ${info.reconnects} \xB7 polls ${info.polls}` : "";
  }
  render2();
  return {
    root,
    /** @param {ListInfo} info */
    update(info) {
      if (signal.aborted) return;
      state.info = info;
      schedule();
    },
    /** @param {boolean} debug */
    setDebug(debug) {
      state.debug = Boolean(debug);
      schedule();
    },
    /** @param {string} text */
    setNote(text) {
      note.textContent = text;
      note.hidden = !text;
    },
    flush: loop.flush
  };
}

// src/page.js
function readPageConfig(doc = globalThis.document) {
  try {
    const element2 = doc && doc.getElementById("jupyter-config-data");
    if (element2) {
      const data = JSON.parse(element2.textContent || "{}");
      return { baseUrl: data.baseUrl || "/", token: data.token || "" };
    }
  } catch {
  }
  return { baseUrl: "/", token: "" };
}
function readCookie(name, doc = globalThis.document) {
  const cookies = doc && doc.cookie || "";
  const match = cookies.match(new RegExp(`(?:^|;\\s*)${name}=([^;]*)`));
  return match ? match[1] : "";
}

// src/modelsync.js
var SETTING_TRAITS = Object.freeze(
  /** @type {const} */
  ["reconnect_delay", "watchdog_interval", "watchdog_timeout", "debug"]
);
var SAVE_INTERVAL_MS = 250;
function pageApi() {
  const page = readPageConfig();
  const api = createApi({
    baseUrl: page.baseUrl,
    token: page.token,
    getXsrf: () => readCookie("_xsrf")
  });
  return { page, api };
}
function viewLifetime(props) {
  const controller = new AbortController();
  const { signal } = props;
  if (signal) {
    if (signal.aborted) controller.abort();
    else signal.addEventListener("abort", () => controller.abort(), { once: true });
  }
  return controller;
}
function settingsOf(model) {
  return {
    reconnectDelay: model.get("reconnect_delay"),
    watchdogInterval: model.get("watchdog_interval"),
    watchdogTimeout: model.get("watchdog_timeout"),
    debug: model.get("debug")
  };
}
function onTraits(model, names, fn, signal) {
  for (const name of names) model.on(`change:${name}`, fn);
  signal.addEventListener("abort", () => {
    for (const name of names) model.off(`change:${name}`, fn);
  }, { once: true });
}
function tellKernel(model, content) {
  try {
    model.send(content);
  } catch (error) {
    console.debug("batch_widget: could not send a message to the kernel", content, error);
  }
}
function createMirror(model, signal, names, { urgent = () => false, timers = defaultTimers() } = {}) {
  let pending = null;
  let timer = null;
  let lastSave = -Infinity;
  function save() {
    timer = null;
    if (!pending) return;
    const changes = pending;
    pending = null;
    lastSave = Date.now();
    try {
      for (const name of names) {
        if (name in changes) model.set(
          name,
          /** @type {Pick<ModelState, N>} */
          changes[name]
        );
      }
      model.save_changes();
    } catch (error) {
      console.debug("batch_widget: could not save widget state", error);
    }
  }
  signal.addEventListener("abort", () => timer !== null && timers.clearTimeout(timer), { once: true });
  return {
    /** @param {Pick<ModelState, N>} values */
    push(values) {
      const changed = {};
      for (const name of names) {
        const current = pending && name in pending ? pending[name] : model.get(name);
        if (current !== values[name]) changed[name] = values[name];
      }
      if (Object.keys(changed).length === 0) return;
      pending = { ...pending, ...changed };
      if (urgent(values) || signal.aborted) {
        if (timer !== null) timers.clearTimeout(timer);
        save();
      } else if (timer === null) {
        const wait = Math.max(0, SAVE_INTERVAL_MS - (Date.now() - lastSave));
        timer = timers.setTimeout(save, wait);
      }
    }
  };
}

// src/kernel.js
var AUTO_PROBE_MS = 2e3;
var KERNEL_NOTE = "Through the kernel: the page cannot reach the server's job API.";
async function chooseTransport(transport, probe, { timers, signal }) {
  if (transport === "server" || transport === "kernel") return transport;
  const controller = new AbortController();
  const stop = () => controller.abort();
  signal.addEventListener("abort", stop, { once: true });
  const timer = timers.setTimeout(stop, AUTO_PROBE_MS);
  try {
    await probe(controller.signal);
    return "server";
  } catch (error) {
    if (isNotFound(error) && /** @type {{json?: boolean}} */
    error.json) return "server";
    return "kernel";
  } finally {
    timers.clearTimeout(timer);
    signal.removeEventListener("abort", stop);
  }
}
async function chooseSource(model, options) {
  const { page, api, signal } = options;
  const chosen = await chooseTransport(model.get("transport"), options.probe, options);
  if (chosen === "kernel") {
    return { note: KERNEL_NOTE, options: { source: new KernelSource(model, options.message) } };
  }
  if (options.announce && !signal.aborted) {
    tellKernel(model, { type: "transport", value: "server" });
  }
  return { note: "", options: { baseUrl: page.baseUrl, token: page.token, api } };
}
var KernelSource = class {
  /**
   * @param {WidgetModel} model
   * @param {ActionMessage} [message] the custom message for Cancel or Retry
   */
  constructor(model, message = (type) => ({ type })) {
    this.model = model;
    this.message = message;
    this.url = "kernel";
    this.listsOnRequest = true;
    this.isOpen = false;
    this.phase = "kernel";
    this.host = null;
  }
  /** @param {SourceHost} host */
  start(host) {
    this.host = host;
    const { model } = this;
    const onSnapshot = () => this.deliverSnapshot(model.get("kernel_snapshot"));
    const onJobs = () => this.deliverPage(model.get("kernel_jobs"));
    onTraits(model, ["kernel_snapshot"], onSnapshot, host.signal);
    onTraits(model, ["kernel_jobs"], onJobs, host.signal);
    onSnapshot();
    const jobs = model.get("kernel_jobs");
    if (jobs && Array.isArray(jobs.jobs)) onJobs();
  }
  /** @param {unknown} value */
  deliverSnapshot(value) {
    if (!this.host || this.host.signal.aborted || !value || typeof value !== "object") return;
    const snapshot = (
      /** @type {Snapshot} */
      value
    );
    if (typeof snapshot.id !== "string") return;
    const type = (
      /** @type {string} */
      snapshot.status === DELETED ? DELETED : "progress"
    );
    this.host.events.onSnapshot(type, snapshot);
  }
  /** @param {import("./types.js").ModelState["kernel_jobs"]} value */
  deliverPage(value) {
    if (!this.host || this.host.signal.aborted || !value) return;
    const { jobs, total, error } = value;
    this.host.events.onPage({ jobs, total, error });
  }
  /** @returns {"kernel"} */
  connection() {
    return "kernel";
  }
  restartIfMute() {
    return false;
  }
  downTooLong() {
    return false;
  }
  /** A poll through the kernel: ask it to send the job again; the answer is a snapshot. */
  fetchJob() {
    tellKernel(this.model, { type: "refresh" });
    return Promise.resolve(null);
  }
  /** A poll of the page through the kernel: the answer is a `kernel_jobs` page. */
  fetchList() {
    tellKernel(this.model, { type: "refresh" });
    return Promise.resolve(null);
  }
  /**
   * @param {"cancel" | "retry"} type
   * @param {string} jobId
   */
  act(type, jobId) {
    tellKernel(this.model, this.message(type, jobId));
    return Promise.resolve(null);
  }
  /** A finished job's failed items, as the kernel sent them. */
  failedItems() {
    return Promise.resolve(this.extras().failed_items || { items: [], total: 0 });
  }
  /** The kernel sends only the first outputs, and their total. */
  outputs() {
    const extras = this.extras();
    const outputs = extras.outputs || [];
    return Promise.resolve({ outputs, total: extras.outputs_total ?? outputs.length });
  }
  /** @returns {NonNullable<import("./types.js").ModelState["kernel_extras"]>} */
  extras() {
    return this.model.get("kernel_extras") || {};
  }
};

// src/notify.js
var NOTIFIER_KEY = "__batchWidgetNotifier";
var OPT_IN_KEY = "batch_widget.notifications";
var TITLE_PREFIX = /^\(\d+ ended\) /;
function browserEnv() {
  const g = (
    /** @type {any} */
    globalThis
  );
  let storage = null;
  try {
    storage = g.localStorage || null;
  } catch {
    storage = null;
  }
  return {
    document: g.document,
    Notification: typeof g.Notification === "function" ? g.Notification : void 0,
    storage,
    focus: typeof g.focus === "function" ? () => g.focus() : void 0
  };
}
var Notifier = class {
  /** @param {NotifierEnv} env */
  constructor(env) {
    this.env = env;
    this.statuses = /* @__PURE__ */ new Map();
    this.unseen = 0;
    this.raised = 0;
    this.wantedHere = false;
    this.listeners = /* @__PURE__ */ new Set();
    const doc = env.document;
    if (doc && typeof doc.addEventListener === "function") {
      doc.addEventListener("visibilitychange", () => {
        if (!this.hidden) this.seen();
      });
    }
    this.titleWatch = null;
  }
  get hidden() {
    return Boolean(this.env.document && this.env.document.visibilityState === "hidden");
  }
  /** "unsupported", or the browser's permission: "default", "granted", "denied". */
  get permission() {
    return this.env.Notification ? this.env.Notification.permission : "unsupported";
  }
  /** The user asked for notifications from a widget. */
  get wanted() {
    const { storage } = this.env;
    if (!storage) return this.wantedHere;
    try {
      return storage.getItem(OPT_IN_KEY) === "on";
    } catch {
      return this.wantedHere;
    }
  }
  /** Notifications will be raised. */
  get enabled() {
    return this.wanted && this.permission === "granted";
  }
  /**
   * Ask the browser's permission (call it from a click) and remember the choice.
   * @returns {Promise<string>} the permission
   */
  async enable() {
    const api = this.env.Notification;
    if (!api) return "unsupported";
    const permission = api.permission === "granted" ? "granted" : await api.requestPermission();
    if (permission === "granted") this.remember(true);
    this.changed();
    return permission;
  }
  disable() {
    this.remember(false);
    this.changed();
  }
  /** @param {boolean} on */
  remember(on) {
    this.wantedHere = on;
    const { storage } = this.env;
    if (!storage) return;
    try {
      if (on) storage.setItem(OPT_IN_KEY, "on");
      else storage.removeItem(OPT_IN_KEY);
    } catch {
    }
  }
  /**
   * A widget shows `snapshot`: a job seen moving that is now finished has ended.
   * @param {Snapshot | null | undefined} snapshot
   */
  observe(snapshot) {
    if (!snapshot || typeof snapshot.id !== "string") return;
    const before = this.statuses.get(snapshot.id);
    this.statuses.set(snapshot.id, snapshot.status);
    if (before !== void 0 && !isTerminal(before) && isTerminal(snapshot.status)) {
      this.ended(snapshot);
    }
  }
  /** @param {Snapshot} snapshot */
  ended(snapshot) {
    if (!this.hidden) return;
    this.unseen += 1;
    this.showCount();
    if (this.enabled) this.raise(snapshot);
    this.changed();
  }
  /** @param {Snapshot} snapshot */
  raise(snapshot) {
    const api = this.env.Notification;
    if (!api) return;
    try {
      const note = new api(`${snapshot.name}: ${snapshot.status}`, {
        body: countsText(snapshot),
        tag: `batch_widget-${snapshot.id}`
      });
      this.raised += 1;
      note.onclick = () => {
        if (this.env.focus) this.env.focus();
        note.close();
      };
    } catch (error) {
      console.debug("batch_widget: could not raise a notification", error);
    }
  }
  /** The page is visible again: every ended job has been seen. */
  seen() {
    if (this.unseen === 0) return;
    this.unseen = 0;
    const doc = this.env.document;
    if (doc) doc.title = doc.title.replace(TITLE_PREFIX, "");
    if (this.titleWatch) this.titleWatch.disconnect();
    this.titleWatch = null;
    this.changed();
  }
  showCount() {
    const doc = this.env.document;
    if (!doc) return;
    const own = doc.title.replace(TITLE_PREFIX, "");
    doc.title = `(${this.unseen} ended) ${own}`;
    const Observer = (
      /** @type {any} */
      globalThis.MutationObserver
    );
    const title = typeof doc.querySelector === "function" ? doc.querySelector("title") : null;
    if (!this.titleWatch && Observer && title) {
      this.titleWatch = /** @type {MutationObserver} */
      new Observer(() => {
        if (this.unseen > 0 && !TITLE_PREFIX.test(doc.title)) {
          doc.title = `(${this.unseen} ended) ${doc.title}`;
        }
      });
      this.titleWatch.observe(title, { childList: true, characterData: true, subtree: true });
    }
  }
  /**
   * @param {() => void} listener called when the permission, the choice or the count changes
   * @returns {() => void} removes it
   */
  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  changed() {
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch (error) {
        console.error("batch_widget notification control failed", error);
      }
    }
  }
};
function pageNotifier(registry = (
  /** @type {Record<string, unknown>} */
  globalThis
), env) {
  const existing = (
    /** @type {{observe?: unknown} | undefined} */
    registry[NOTIFIER_KEY]
  );
  if (!existing || typeof existing.observe !== "function") {
    registry[NOTIFIER_KEY] = new Notifier(env || browserEnv());
  }
  return (
    /** @type {Notifier} */
    registry[NOTIFIER_KEY]
  );
}
function notifyControl(doc, notifier, signal) {
  const button = doc.createElement("button");
  button.setAttribute("type", "button");
  button.className = "bw-notify";
  const render2 = () => {
    const permission = notifier.permission;
    button.hidden = permission === "unsupported";
    button.disabled = permission === "denied";
    button.setAttribute("data-notify", permission === "denied" ? "blocked" : notifier.enabled ? "on" : "off");
    button.textContent = permission === "denied" ? "Notifications blocked" : notifier.enabled ? "Notifying" : "Notify me";
    button.setAttribute(
      "title",
      permission === "denied" ? "This browser blocks notifications from this page: allow them in the site settings" : notifier.enabled ? "A notification comes when a job shown on this page ends while you are elsewhere. Click to stop them." : "Get a browser notification when a job shown on this page ends while you are elsewhere"
    );
  };
  button.addEventListener(
    "click",
    () => {
      if (notifier.enabled) notifier.disable();
      else notifier.enable().catch((error) => console.debug("batch_widget: no permission", error));
    },
    { signal }
  );
  const off = notifier.onChange(render2);
  signal.addEventListener("abort", off, { once: true });
  render2();
  return button;
}

// src/jobswidget.js
var JOBS_VIEW = "jobs";
var JOBS_SETTING_TRAITS = Object.freeze([
  "_batch_view",
  "status_filter",
  "limit",
  "offset",
  "reconnect_delay",
  "watchdog_interval",
  "watchdog_timeout",
  "debug",
  "transport",
  "kernel_jobs"
]);
var JOBS_MIRRORED_TRAITS = Object.freeze(
  /** @type {const} */
  ["total", "shown", "connection", "reconnects", "polls"]
);
function queryOf(model) {
  return listQuery({
    status: model.get("status_filter") || "",
    limit: model.get("limit"),
    offset: model.get("offset")
  });
}
function renderJobs(props) {
  const { model, el } = props;
  const controller = viewLifetime(props);
  const lifetime = controller.signal;
  const { page, api } = pageApi();
  const timers = defaultTimers();
  const notifier = pageNotifier();
  let handle = null;
  const action = async (type, jobId) => {
    if (handle) await handle.act(type, jobId, lifetime);
  };
  const view = createJobsView(el, {
    actions: {
      cancel: (jobId) => action("cancel", jobId),
      retry: (jobId) => action("retry", jobId),
      page: (offset) => {
        model.set("offset", offset);
        model.save_changes();
      }
    },
    control: notifyControl(el.ownerDocument || globalThis.document, notifier, lifetime),
    signal: lifetime
  });
  view.setNote("");
  view.setDebug(model.get("debug"));
  const mirror = createMirror(model, lifetime, JOBS_MIRRORED_TRAITS, {
    urgent: (values) => values.connection === "closed"
  });
  const listener = (info) => {
    view.update(info);
    mirror.push({
      total: info.total,
      shown: info.rows.length,
      connection: info.connection,
      reconnects: info.reconnects,
      polls: info.polls
    });
    for (const row of info.rows) notifier.observe(row);
  };
  const onQuery = () => {
    if (handle) handle.query(queryOf(model));
  };
  const onSettings = () => {
    view.setDebug(model.get("debug"));
    if (handle) handle.update(settingsOf(model));
  };
  onTraits(model, ["status_filter", "limit", "offset"], onQuery, lifetime);
  onTraits(model, SETTING_TRAITS, onSettings, lifetime);
  chooseSource(model, {
    probe: (signal) => api.listJobs({ status: "", limit: 1, offset: 0 }, signal),
    page,
    api,
    message: (type, jobId) => ({ type, job_id: jobId }),
    timers,
    signal: lifetime
  }).then((where) => {
    if (lifetime.aborted) return;
    view.setNote(where.note);
    handle = subscribeList(listener, {
      ...where.options,
      signal: lifetime,
      ...settingsOf(model),
      ...queryOf(model)
    });
  });
  return () => controller.abort();
}

// src/view.js
var FAILED_ITEMS_LIMIT = 20;
var FAILED_REFRESH_MS = 3e3;
var OUTPUTS_SHOWN = 20;
var LOGS_CUT_TEXT = "item logs were cut: the job reached its log limit";
function createView(el, options) {
  const { actions, fileHref: fileHref2, downloadHref: downloadHref2, signal } = options;
  const { frame, now, timers, doc } = viewContext(el, options);
  const root = element(doc, "div", "bw-progress");
  const header = element(doc, "div", "bw-header");
  const name = element(doc, "span", "bw-name", "");
  const jobIdLabel = element(doc, "code", "bw-id", "");
  jobIdLabel.setAttribute("title", "the job id: bw.attach(id) finds the job again from any kernel");
  const status = element(doc, "span", "bw-status", "");
  const badge = element(doc, "span", "bw-connection", "");
  header.append(name, jobIdLabel, status, badge);
  const bar = makeBar(doc, "bw-bar");
  const stats = element(doc, "div", "bw-stats");
  const counts = element(doc, "span", "bw-counts", "");
  const rate = element(doc, "span", "bw-rate", "");
  const eta = element(doc, "span", "bw-eta", "");
  const elapsed = element(doc, "span", "bw-elapsed", "");
  const where = element(doc, "span", "bw-where", "");
  stats.append(counts, rate, eta, elapsed, where);
  const jobError = element(doc, "div", "bw-job-error", "");
  const logsCut = element(doc, "div", "bw-logs-cut", LOGS_CUT_TEXT);
  logsCut.setAttribute("title", "later items' logs were not kept (max_job_log_bytes)");
  logsCut.hidden = true;
  const controls = element(doc, "div", "bw-actions");
  const cancel = element(doc, "button", "bw-cancel", "Cancel");
  const retry = element(doc, "button", "bw-retry", "Retry");
  cancel.setAttribute("type", "button");
  retry.setAttribute("type", "button");
  const message = element(doc, "span", "bw-message", "");
  message.setAttribute("role", "status");
  const controlSlot = element(doc, "span", "bw-control");
  if (options.control) controlSlot.append(options.control);
  controls.append(cancel, retry, controlSlot, message);
  const diagnostics = element(doc, "div", "bw-debug", "");
  const failures = element(doc, "div", "bw-failures");
  const outputs = element(doc, "div", "bw-outputs");
  root.append(header, bar.bar, stats, jobError, logsCut, controls, diagnostics, failures, outputs);
  el.replaceChildren(root);
  const state = {
    /** @type {ConnectionInfo | null} */
    info: null,
    debug: false,
    message: "",
    busy: false,
    /** @type {ItemsPage | null} the last fetch */
    failedItems: null,
    /** @type {string | null} `${jobId}:${failed}:${finished_at}` of the last fetch */
    failedFetchedFor: null,
    failedFetchedAt: -Infinity,
    failedInflight: false,
    /** @type {OutputsAnswer | null} the first page of outputs, with the total */
    outputs: null,
    /** @type {string | null} */
    outputsFetchedFor: null,
    outputsInflight: false
  };
  const loop = renderLoop(() => render2(), { frame, timers, signal, tick: () => refreshDetails() });
  const schedule = loop.schedule;
  async function act(kind) {
    const info = state.info;
    if (!info || state.busy) return;
    state.busy = true;
    state.message = "";
    schedule();
    try {
      await actions[kind](info.jobId);
      state.message = "";
    } catch (caught) {
      state.message = actionMessage(kind, caught);
    } finally {
      state.busy = false;
      schedule();
    }
  }
  cancel.addEventListener("click", () => act("cancel"), { signal });
  retry.addEventListener("click", () => act("retry"), { signal });
  function refreshDetails() {
    const info = state.info;
    const snapshot = info && info.snapshot;
    if (!info || !snapshot || signal.aborted || info.deleted) return;
    const key = `${info.jobId}:${snapshot.failed}:${snapshot.finished_at}`;
    const terminal = isTerminal(snapshot.status);
    if (snapshot.failed > 0 && state.failedFetchedFor !== key && !state.failedInflight) {
      if (terminal || now() - state.failedFetchedAt >= FAILED_REFRESH_MS) {
        state.failedInflight = true;
        state.failedFetchedAt = now();
        Promise.resolve().then(() => actions.failedItems(info.jobId, FAILED_ITEMS_LIMIT)).then(
          (answer) => {
            state.failedItems = answer;
            state.failedFetchedFor = key;
          },
          (error) => {
            if (isNotFound(error)) {
              state.failedFetchedFor = key;
              actions.gone(info.jobId);
            } else {
              state.failedFetchedFor = null;
            }
          }
        ).finally(() => {
          state.failedInflight = false;
          schedule();
        });
      }
    }
    if (snapshot.failed === 0) {
      state.failedItems = null;
      state.failedFetchedFor = null;
    }
    const outputsKey = `${info.jobId}:${snapshot.status}:${snapshot.finished_at}`;
    if (terminal && state.outputsFetchedFor !== outputsKey && !state.outputsInflight) {
      state.outputsInflight = true;
      state.outputsFetchedFor = outputsKey;
      Promise.resolve().then(() => actions.outputs(info.jobId, OUTPUTS_SHOWN)).then(
        (answer) => {
          state.outputs = answer && Array.isArray(answer.outputs) ? answer : { outputs: [] };
        },
        (error) => {
          if (isNotFound(error)) actions.gone(info.jobId);
          else state.outputsFetchedFor = null;
        }
      ).finally(() => {
        state.outputsInflight = false;
        schedule();
      });
    }
    if (!terminal) state.outputs = null;
  }
  function renderFailures() {
    const answer = state.failedItems;
    if (!answer || !answer.items || answer.items.length === 0) {
      failures.hidden = true;
      failures.replaceChildren();
      return;
    }
    failures.hidden = false;
    const title = element(doc, "div", "bw-section-title", `Failed items (${answer.total ?? answer.items.length})`);
    const list = element(doc, "ul", "bw-failure-list");
    for (const item of answer.items) {
      const row = element(doc, "li", "bw-failure");
      row.setAttribute("data-index", String(item.index));
      const input = typeof item.input === "string" ? item.input : JSON.stringify(item.input);
      row.append(
        element(doc, "span", "bw-failure-index", `#${item.index}`),
        element(doc, "code", "bw-failure-input", input),
        element(doc, "span", "bw-failure-error", item.error || "failed")
      );
      if (item.traceback) row.setAttribute("title", item.traceback);
      if (item.log) {
        const log = element(doc, "details", "bw-failure-log");
        log.append(element(doc, "summary", "", "output"), element(doc, "pre", "", item.log));
        row.append(log);
      }
      list.append(row);
    }
    failures.replaceChildren(title, list);
  }
  function renderOutputs() {
    const answer = state.outputs;
    if (!answer || answer.outputs.length === 0) {
      outputs.hidden = true;
      outputs.replaceChildren();
      return;
    }
    outputs.hidden = false;
    const paths = answer.outputs.slice(0, OUTPUTS_SHOWN);
    const total = Math.max(Number(answer.total) || 0, answer.outputs.length);
    const title = element(doc, "div", "bw-section-title", `Outputs (${countText(total)})`);
    const list = element(doc, "ul", "bw-output-list");
    for (const path of paths) {
      const link = element(doc, "a", "bw-output", path);
      link.setAttribute("href", fileHref2(path));
      link.setAttribute("target", "_blank");
      link.setAttribute("rel", "noopener");
      const row = element(doc, "li");
      row.append(link);
      if (downloadHref2) {
        const download = element(doc, "a", "bw-download", "download");
        download.setAttribute("href", downloadHref2(path));
        download.setAttribute("download", path.split("/").pop() || path);
        download.setAttribute("title", `download ${path}`);
        row.append(download);
      }
      list.append(row);
    }
    const rest = total - paths.length;
    if (rest > 0) {
      const more = element(doc, "div", "bw-outputs-more", `and ${countText(rest)} more`);
      more.setAttribute("title", "job.outputs() in the kernel lists every one");
      outputs.replaceChildren(title, list, more);
    } else {
      outputs.replaceChildren(title, list);
    }
  }
  function render2() {
    const info = state.info;
    const snapshot = info ? info.snapshot : null;
    const deleted = Boolean(info && info.deleted);
    const connection = info ? info.connection : "connecting";
    const jobStatus = deleted ? DELETED : snapshot ? snapshot.status : "";
    root.setAttribute("data-job-id", info ? info.jobId : "");
    root.setAttribute("data-status", jobStatus);
    root.setAttribute("data-connection", connection);
    root.setAttribute("data-done", String(snapshot ? snapshot.done : 0));
    root.setAttribute("data-failed", String(snapshot ? snapshot.failed : 0));
    root.setAttribute("data-total", String(snapshot ? snapshot.total : 0));
    root.setAttribute("data-version", String(snapshot ? snapshot.version : 0));
    root.setAttribute("data-executor", snapshot && snapshot.executor ? snapshot.executor : "");
    name.textContent = snapshot ? snapshot.name : "";
    jobIdLabel.textContent = info ? info.jobId : "";
    status.textContent = jobStatus || "loading\u2026";
    status.className = `bw-status bw-status-${jobStatus || "unknown"}`;
    badge.textContent = info ? connectionText(info, now()) : "connecting";
    badge.className = `bw-connection bw-connection-${connection}`;
    badge.setAttribute("title", info && info.error ? `last poll failed: ${info.error}` : "");
    fillBar(bar, snapshot);
    counts.textContent = snapshot ? countsText(snapshot) : "";
    const active = isActive(jobStatus);
    rate.textContent = active && snapshot && snapshot.rate ? formatRate(snapshot.rate) : "";
    eta.textContent = active && snapshot && snapshot.eta !== null ? `ETA ${formatDuration(snapshot.eta)}` : "";
    const started = snapshot ? parseTime(snapshot.started_at) : null;
    const finished = snapshot ? parseTime(snapshot.finished_at) : null;
    elapsed.textContent = started === null ? "" : `elapsed ${formatDuration(((finished ?? now()) - started) / 1e3)}`;
    where.textContent = snapshot ? whereText(snapshot) : "";
    const errorText = deleted ? "This job is not on the server any more: it was deleted." + (snapshot ? " What is shown is its last known state." : "") : snapshot && snapshot.error ? snapshot.error : "";
    jobError.textContent = errorText;
    jobError.hidden = !errorText;
    logsCut.hidden = !(snapshot && snapshot.logs_cut === true);
    cancel.hidden = deleted || !active;
    controlSlot.hidden = deleted || !active;
    retry.hidden = deleted || !canRetry(snapshot);
    cancel.disabled = state.busy;
    retry.disabled = state.busy;
    message.textContent = state.message;
    diagnostics.hidden = !state.debug;
    diagnostics.textContent = info ? `reconnects ${info.reconnects} \xB7 polls ${info.polls} \xB7 v${snapshot ? snapshot.version : "\u2014"}` : "";
    renderFailures();
    renderOutputs();
  }
  render2();
  return {
    root,
    /** @param {ConnectionInfo} info */
    update(info) {
      if (signal.aborted) return;
      state.info = info;
      refreshDetails();
      schedule();
    },
    /** @param {boolean} debug */
    setDebug(debug) {
      state.debug = Boolean(debug);
      schedule();
    },
    /** Render now (tests; the terminal state before a snapshot is taken). */
    flush: loop.flush
  };
}
function countText(count) {
  return String(Math.round(count)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

// src/widget.js
var MIRRORED_TRAITS = Object.freeze(
  /** @type {MirroredTrait[]} */
  [
    "status",
    "total",
    "done",
    "failed",
    "version",
    "connection",
    "reconnects",
    "polls"
  ]
);
function mirroredValues(info) {
  const snapshot = info.snapshot;
  return {
    status: snapshot && snapshot.status || "",
    total: snapshot && snapshot.total || 0,
    done: snapshot && snapshot.done || 0,
    failed: snapshot && snapshot.failed || 0,
    version: snapshot && snapshot.version || 0,
    connection: info.connection,
    reconnects: info.reconnects,
    polls: info.polls
  };
}
function initialize() {
  return () => {
  };
}
function render(props) {
  return props.model.get("_batch_view") === JOBS_VIEW ? renderJobs(props) : renderProgress(props);
}
function renderProgress(props) {
  const { model, el } = props;
  const controller = viewLifetime(props);
  const lifetime = controller.signal;
  const { page, api } = pageApi();
  let handle = null;
  const timers = defaultTimers();
  let chosen = null;
  const following = () => {
    if (!handle) throw new Error("no job is followed");
    return handle;
  };
  const actions = {
    cancel: async (jobId) => following().act("cancel", jobId, lifetime),
    retry: async (jobId) => following().act("retry", jobId, lifetime),
    failedItems: async (jobId, limit) => following().failedItems(jobId, limit ?? 20, lifetime),
    outputs: async (jobId, limit) => following().outputs(jobId, limit ?? 20, lifetime),
    gone: () => {
      if (handle) handle.gone();
    }
  };
  const notifier = pageNotifier();
  const view = createView(el, {
    actions,
    control: notifyControl(el.ownerDocument || globalThis.document, notifier, lifetime),
    fileHref: api.fileHref,
    downloadHref: api.downloadHref,
    signal: lifetime
  });
  const mirror = createMirror(model, lifetime, MIRRORED_TRAITS, {
    urgent: (values) => isTerminal(values.status) || values.connection === "closed"
  });
  view.setDebug(model.get("debug"));
  let generation = 0;
  function follow() {
    const previous = handle;
    const jobId = model.get("job_id");
    generation += 1;
    const mine = generation;
    const listener = (info) => {
      if (mine !== generation) return;
      view.update(info);
      mirror.push(mirroredValues(info));
      notifier.observe(info.snapshot);
    };
    handle = jobId && chosen ? subscribe(jobId, listener, { ...chosen.options, signal: lifetime, ...settingsOf(model) }) : null;
    if (previous) previous();
  }
  const onSettings = () => {
    view.setDebug(model.get("debug"));
    if (handle) handle.update(settingsOf(model));
  };
  onTraits(model, ["job_id"], follow, lifetime);
  onTraits(model, SETTING_TRAITS, onSettings, lifetime);
  chooseSource(model, {
    probe: (signal) => api.getJob(model.get("job_id"), signal),
    page,
    api,
    announce: true,
    // the kernel may stop following the job
    timers,
    signal: lifetime
  }).then((where) => {
    if (lifetime.aborted) return;
    chosen = where;
    follow();
  });
  return () => controller.abort();
}
var widget_default = { initialize, render };
export {
  MIRRORED_TRAITS,
  widget_default as default
};
