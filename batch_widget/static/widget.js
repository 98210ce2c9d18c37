/* batch_widget front end, built from js/src by `npm run build`: do not edit. */

// src/api.js
function normalizeBaseUrl(baseUrl) {
  const base = baseUrl || "/";
  return base.endsWith("/") ? base : `${base}/`;
}
function withToken(url, token) {
  if (!token) return url;
  const sep = url.includes("?") ? "&" : "?";
  return `${url}${sep}token=${encodeURIComponent(token)}`;
}
function streamUrl({ baseUrl, token } = {}) {
  return withToken(`${normalizeBaseUrl(baseUrl)}api/batch/events`, token);
}
function jobUrl({ baseUrl, token }, jobId, suffix = "", query = "") {
  const path = `${normalizeBaseUrl(baseUrl)}api/batch/jobs/${encodeURIComponent(jobId)}${suffix}`;
  return withToken(query ? `${path}?${query}` : path, token);
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
  const auth = { baseUrl, token };
  const get = (url, signal) => doFetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, signal }).then(readJson);
  const post = (url, signal) => {
    const headers = { Accept: "application/json", "Content-Type": "application/json" };
    const xsrf = getXsrf();
    if (xsrf) headers["X-XSRFToken"] = xsrf;
    if (token) headers.Authorization = `token ${token}`;
    return doFetch(url, { method: "POST", credentials: "same-origin", headers, body: "{}", signal }).then(readJson);
  };
  return {
    baseUrl: normalizeBaseUrl(baseUrl),
    getJob: (jobId, signal) => get(jobUrl(auth, jobId), signal),
    getFailedItems: (jobId, limit = 20, signal) => get(jobUrl(auth, jobId, "/items", `status=failed&limit=${limit}`), signal),
    getOutputs: (jobId, signal) => get(jobUrl(auth, jobId, "/outputs"), signal),
    // Writes go without ?token=: the header carries it, and XSRF guards the cookie path.
    cancel: (jobId, signal) => post(jobUrl({ baseUrl }, jobId, "/cancel"), signal),
    retry: (jobId, signal) => post(jobUrl({ baseUrl }, jobId, "/retry"), signal),
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
    this.options.trace(`EventSource #${this.builds} ${this.url.replace(/token=[^&]*/, "token=\u2026")}`);
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
    this.stopWatchdog = null;
    this.watchdogInterval = null;
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
    const interval = this.setting("watchdogInterval");
    if (this.stopWatchdog && this.watchdogInterval === interval) return;
    if (this.stopWatchdog) this.stopWatchdog();
    this.watchdogInterval = interval;
    this.stopWatchdog = every(
      this.context.timers,
      interval,
      () => this.context.tick(this),
      this.controller.signal
    );
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
   * The watchdog's decision for this job, given how long the stream has been down.
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
    Promise.resolve().then(() => this.context.api.getJob(this.id, signal)).then(
      (snapshot) => {
        if (signal.aborted) return;
        this.error = null;
        this.lastUpdate = this.context.now();
        if (!this.apply(snapshot, "poll")) this.context.notify(this);
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
    if (!(version > this.version)) {
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
   * @param {string} url the stream URL
   * @param {HubOptions} options
   * @param {() => void} onClose called once, when the last subscriber leaves
   */
  constructor(url, options, onClose) {
    this.url = url;
    this.onClose = onClose;
    this.api = options.api || createApi({ baseUrl: options.baseUrl, token: options.token, fetch: options.fetch });
    this.now = options.now || Date.now;
    this.timers = options.timers || defaultTimers();
    this.log = options.log || ((...args) => console.log(...args));
    this.controller = new AbortController();
    this.subs = /* @__PURE__ */ new Set();
    this.jobs = /* @__PURE__ */ new Map();
    this.cancelDownTimer = null;
    const trace = this.trace.bind(this);
    this.watchContext = {
      api: this.api,
      now: this.now,
      timers: this.timers,
      trace,
      notify: (watch) => this.notifyJob(watch),
      tick: (watch) => this.watchdog(watch)
    };
    this.stream = new Stream(
      url,
      {
        EventSource: options.EventSource || globalThis.EventSource,
        timers: this.timers,
        now: this.now,
        reconnectDelay: () => strictest(this.subs, "reconnectDelay"),
        trace,
        signal: this.controller.signal
      },
      {
        onOpen: (browserRetry) => this.onOpen(browserRetry),
        onError: (entered) => this.onError(entered),
        onRebuild: () => this.countReconnect("new EventSource"),
        onMessage: (type, data) => this.onMessage(type, data)
      }
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
    if (this.stream.phase === "idle") {
      this.stream.start();
    } else if (isNewJob && (this.stream.isOpen || this.connectionFor(sub) === "polling")) {
      job.poll("new subscriber");
    }
    this.notify(sub);
    return Object.assign(() => this.unsubscribe(sub), {
      update: (changes) => this.update(sub, changes),
      poll: () => job.poll("requested"),
      gone: () => job.markDeleted("the server has no such job"),
      offer: (snapshot) => {
        if (!sub.closed && this.jobs.get(jobId) === job) job.apply(snapshot, "action");
      }
    });
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
      deleted: job ? job.deleted : false
    };
  }
  /** @param {Subscriber} sub */
  notify(sub) {
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
    this.refreshConnections();
  }
  /** @param {boolean} entered */
  onError(entered) {
    if (this.closed) return;
    if (entered) {
      this.startDownTimer();
      if (!this.stream.everOpened) {
        for (const job of this.jobs.values()) {
          if (!job.terminal) job.poll("stream never opened");
        }
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
    let snapshot = null;
    try {
      snapshot = JSON.parse(data);
    } catch {
      this.trace("unparsable event ignored", data);
      return;
    }
    const job = snapshot && this.jobs.get(snapshot.id);
    if (!job) return;
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
    if (this.closed || this.stream.isOpen) return;
    this.trace("stream down for watchdog_timeout: polling");
    this.refreshConnections();
    for (const job of this.jobs.values()) {
      if (!job.terminal) job.pollIfDue("stream down, polling");
    }
  }
  // -- the watchdog ----------------------------------------------------------------
  /** @param {JobWatch} job */
  watchdog(job) {
    if (this.closed || this.jobs.get(job.id) !== job) return;
    this.refreshConnections();
    const now = this.now();
    const timeout = job.setting("watchdogTimeout");
    this.trace(`watchdog ${job.id}: last update ${Math.round((now - job.lastUpdate) / 1e3)} s ago`);
    if (this.stream.isOpen && now - this.stream.lastMessageAt >= timeout) {
      this.trace("stream silent, rebuilding it");
      this.stream.restart();
      this.startDownTimer();
      this.refreshConnections();
    }
    const { phase, downSince, everOpened } = this.stream;
    const streamDownTooLong = phase === "down" && downSince !== null && (!everOpened || now - downSince >= timeout);
    job.check(streamDownTooLong);
  }
  /** @param {string} jobId */
  addJob(jobId) {
    const job = new JobWatch(jobId, this.watchContext, this.controller.signal);
    this.jobs.set(jobId, job);
    return job;
  }
};

// src/connection.js
var REGISTRY_KEY = "__batchWidgetHub";
function hubsOf(registry) {
  if (!(registry[REGISTRY_KEY] instanceof Map)) registry[REGISTRY_KEY] = /* @__PURE__ */ new Map();
  return (
    /** @type {Map<string, Hub>} */
    registry[REGISTRY_KEY]
  );
}
function subscribe(jobId, listener, options = {}) {
  const hubs = hubsOf(options.registry || /** @type {Record<string, unknown>} */
  globalThis);
  const url = streamUrl(options);
  let hub = hubs.get(url);
  if (!hub || hub.closed) {
    const created = new Hub(url, options, () => {
      if (hubs.get(url) === created) hubs.delete(url);
    });
    hubs.set(url, created);
    hub = created;
  }
  const unsubscribe = hub.subscribe(jobId, listener, options);
  const { signal } = options;
  if (signal) {
    if (signal.aborted) unsubscribe();
    else signal.addEventListener("abort", unsubscribe, { once: true });
  }
  return unsubscribe;
}

// src/kernel.js
var AUTO_PROBE_MS = 2e3;
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
function followThroughKernel(jobId, listener, options) {
  const { model, timers, signal } = options;
  const now = options.now || Date.now;
  const controller = new AbortController();
  const lifetime = controller.signal;
  signal.addEventListener("abort", () => controller.abort(), { once: true });
  let settings = {
    watchdogInterval: options.watchdogInterval ?? DEFAULTS.watchdogInterval,
    watchdogTimeout: options.watchdogTimeout ?? DEFAULTS.watchdogTimeout
  };
  let snapshot = null;
  let version = -Infinity;
  let deleted = false;
  let polls = 0;
  let lastUpdate = now();
  let shownAt = null;
  function emit() {
    if (lifetime.aborted) return;
    listener({
      jobId,
      snapshot,
      connection: deleted ? "closed" : "kernel",
      reconnects: 0,
      polls,
      lastUpdate: shownAt,
      error: null,
      deleted
    });
  }
  function apply(value) {
    if (deleted || !value || typeof value !== "object") return;
    const offered = (
      /** @type {Snapshot} */
      value
    );
    if (offered.id !== jobId || !(offered.version > version)) return;
    lastUpdate = now();
    if (
      /** @type {string} */
      offered.status === DELETED
    ) {
      deleted = true;
      stopWatchdog();
    } else {
      snapshot = offered;
      version = offered.version;
      shownAt = lastUpdate;
    }
    emit();
  }
  function send(type) {
    try {
      model.send({ type });
    } catch (error) {
      console.debug(`batch_widget: could not send ${type} to the kernel`, error);
    }
  }
  function refresh() {
    if (deleted) return;
    polls += 1;
    send("refresh");
    emit();
  }
  let stopWatchdog = () => {
  };
  function startWatchdog() {
    stopWatchdog();
    stopWatchdog = every(timers, settings.watchdogInterval, () => {
      if (deleted || snapshot && isTerminal(snapshot.status)) return;
      if (now() - lastUpdate > settings.watchdogTimeout) {
        lastUpdate = now();
        refresh();
      }
    }, lifetime);
  }
  const onChange = () => apply(model.get("kernel_snapshot"));
  model.on("change:kernel_snapshot", onChange);
  lifetime.addEventListener("abort", () => model.off("change:kernel_snapshot", onChange), {
    once: true
  });
  startWatchdog();
  apply(model.get("kernel_snapshot"));
  emit();
  return Object.assign(() => controller.abort(), {
    update: (changes) => {
      settings = { ...settings, ...changes };
      startWatchdog();
      emit();
    },
    poll: refresh,
    gone: () => {
      deleted = true;
      stopWatchdog();
      emit();
    },
    offer: apply
  });
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

// src/view.js
var FAILED_ITEMS_LIMIT = 20;
var FAILED_REFRESH_MS = 3e3;
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
  const rest = isTerminal(snapshot.status) ? "not run" : "pending";
  return `${done} done \xB7 ${failed} failed \xB7 ${pending} ${rest} of ${total}`;
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
function createView(el, options) {
  const { actions, fileHref: fileHref2, downloadHref: downloadHref2, signal } = options;
  const frame = options.frame || defaultFrame;
  const now = options.now || Date.now;
  const timers = options.timers || defaultTimers();
  const doc = el.ownerDocument || globalThis.document;
  const root = element(doc, "div", "bw-progress");
  const header = element(doc, "div", "bw-header");
  const name = element(doc, "span", "bw-name", "");
  const jobIdLabel = element(doc, "code", "bw-id", "");
  jobIdLabel.setAttribute("title", "the job id: bw.attach(id) finds the job again from any kernel");
  const status = element(doc, "span", "bw-status", "");
  const badge = element(doc, "span", "bw-connection", "");
  header.append(name, jobIdLabel, status, badge);
  const bar = element(doc, "div", "bw-bar");
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  const barDone = element(doc, "div", "bw-bar-done");
  const barFailed = element(doc, "div", "bw-bar-failed");
  bar.append(barDone, barFailed);
  const stats = element(doc, "div", "bw-stats");
  const counts = element(doc, "span", "bw-counts", "");
  const rate = element(doc, "span", "bw-rate", "");
  const eta = element(doc, "span", "bw-eta", "");
  const elapsed = element(doc, "span", "bw-elapsed", "");
  const where = element(doc, "span", "bw-where", "");
  stats.append(counts, rate, eta, elapsed, where);
  const jobError = element(doc, "div", "bw-job-error", "");
  const controls = element(doc, "div", "bw-actions");
  const cancel = element(doc, "button", "bw-cancel", "Cancel");
  const retry = element(doc, "button", "bw-retry", "Retry");
  cancel.setAttribute("type", "button");
  retry.setAttribute("type", "button");
  const message = element(doc, "span", "bw-message", "");
  message.setAttribute("role", "status");
  controls.append(cancel, retry, message);
  const diagnostics = element(doc, "div", "bw-debug", "");
  const failures = element(doc, "div", "bw-failures");
  const outputs = element(doc, "div", "bw-outputs");
  root.append(header, bar, stats, jobError, controls, diagnostics, failures, outputs);
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
    /** @type {string[] | null} */
    outputs: null,
    /** @type {string | null} */
    outputsFetchedFor: null,
    outputsInflight: false
  };
  let cancelFrame = null;
  function schedule() {
    if (cancelFrame || signal.aborted) return;
    cancelFrame = frame(() => {
      cancelFrame = null;
      if (!signal.aborted) render2();
    });
  }
  const ticker = timers.setInterval(() => {
    refreshDetails();
    schedule();
  }, 1e3);
  signal.addEventListener(
    "abort",
    () => {
      timers.clearInterval(ticker);
      if (cancelFrame) cancelFrame();
      cancelFrame = null;
    },
    { once: true }
  );
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
      const error = (
        /** @type {{message?: string, status?: number} | null} */
        caught
      );
      const detail = error && error.message ? error.message : String(caught);
      const code = error && error.status ? ` (${error.status})` : "";
      state.message = `${kind === "cancel" ? "Cancel" : "Retry"} failed: ${detail}${code}`;
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
      Promise.resolve().then(() => actions.outputs(info.jobId)).then(
        (answer) => {
          state.outputs = answer && answer.outputs || [];
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
    const paths = state.outputs;
    if (!paths || paths.length === 0) {
      outputs.hidden = true;
      outputs.replaceChildren();
      return;
    }
    outputs.hidden = false;
    const title = element(doc, "div", "bw-section-title", `Outputs (${paths.length})`);
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
    outputs.replaceChildren(title, list);
  }
  function connectionText(info) {
    if (!info.lastUpdate) return info.connection;
    const age = Math.max(0, Math.round((now() - info.lastUpdate) / 1e3));
    return `${info.connection} \xB7 updated ${age} s ago`;
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
    badge.textContent = info ? connectionText(info) : "connecting";
    badge.className = `bw-connection bw-connection-${connection}`;
    badge.setAttribute("title", info && info.error ? `last poll failed: ${info.error}` : "");
    const total = snapshot ? snapshot.total : 0;
    const done = snapshot ? snapshot.done : 0;
    const failed = snapshot ? snapshot.failed : 0;
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(done + failed));
    bar.setAttribute("aria-label", `${snapshot ? snapshot.name : "job"}: ${done + failed} of ${total} items`);
    const percent = (n) => total > 0 ? `${(100 * n / total).toFixed(2)}%` : "0%";
    barDone.style.width = percent(done);
    barFailed.style.width = percent(failed);
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
    cancel.hidden = deleted || !active;
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
    flush() {
      if (cancelFrame) cancelFrame();
      cancelFrame = null;
      render2();
    }
  };
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
var SAVE_INTERVAL_MS = 250;
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
function createMirror(model, signal, timers = defaultTimers()) {
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
      for (const name of MIRRORED_TRAITS) {
        if (name in changes) model.set(
          name,
          /** @type {Mirrored} */
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
    /** @param {ConnectionInfo} info */
    push(info) {
      const values = mirroredValues(info);
      const changed = {};
      for (const name of MIRRORED_TRAITS) {
        const current = pending && name in pending ? pending[name] : model.get(name);
        if (current !== values[name]) changed[name] = values[name];
      }
      if (Object.keys(changed).length === 0) return;
      pending = { ...pending, .../** @type {Partial<Mirrored>} */
      changed };
      const urgent = isTerminal(values.status) || values.connection === "closed";
      if (urgent || signal.aborted) {
        if (timer !== null) timers.clearTimeout(timer);
        save();
      } else if (timer === null) {
        const wait = Math.max(0, SAVE_INTERVAL_MS - (Date.now() - lastSave));
        timer = timers.setTimeout(save, wait);
      }
    }
  };
}
function initialize() {
  return () => {
  };
}
function render({ model, el }) {
  const controller = new AbortController();
  const lifetime = controller.signal;
  const page = readPageConfig();
  const api = createApi({
    baseUrl: page.baseUrl,
    token: page.token,
    getXsrf: () => readCookie("_xsrf")
  });
  let handle = null;
  const timers = defaultTimers();
  let mode = null;
  const tellKernel = (type) => model.send({ type });
  const extras = () => model.get("kernel_extras") || {};
  async function act(call, jobId) {
    let snapshot;
    try {
      snapshot = await call(jobId, lifetime);
    } catch (error) {
      if (handle) handle.poll();
      throw error;
    }
    if (handle) handle.offer(snapshot);
  }
  const actions = {
    cancel: async (jobId) => mode === "kernel" ? tellKernel("cancel") : act(api.cancel, jobId),
    retry: async (jobId) => mode === "kernel" ? tellKernel("retry") : act(api.retry, jobId),
    failedItems: async (jobId, limit) => mode === "kernel" ? extras().failed_items || { items: [], total: 0 } : api.getFailedItems(jobId, limit, lifetime),
    outputs: async (jobId) => mode === "kernel" ? { outputs: extras().outputs || [] } : api.getOutputs(jobId, lifetime),
    gone: () => {
      if (handle) handle.gone();
    }
  };
  const view = createView(el, {
    actions,
    fileHref: api.fileHref,
    downloadHref: api.downloadHref,
    signal: lifetime
  });
  const mirror = createMirror(model, lifetime);
  view.setDebug(model.get("debug"));
  function settings() {
    return {
      reconnectDelay: model.get("reconnect_delay"),
      watchdogInterval: model.get("watchdog_interval"),
      watchdogTimeout: model.get("watchdog_timeout"),
      debug: model.get("debug")
    };
  }
  let generation = 0;
  function follow() {
    const previous = handle;
    const jobId = model.get("job_id");
    generation += 1;
    const mine = generation;
    const listener = (info) => {
      if (mine !== generation) return;
      view.update(info);
      mirror.push(info);
    };
    if (!jobId || mode === null) handle = null;
    else if (mode === "kernel") {
      handle = followThroughKernel(jobId, listener, { model, timers, signal: lifetime, ...settings() });
    } else {
      handle = subscribe(jobId, listener, {
        baseUrl: page.baseUrl,
        token: page.token,
        api,
        signal: lifetime,
        ...settings()
      });
    }
    if (previous) previous();
  }
  const onSettings = () => {
    view.setDebug(model.get("debug"));
    if (handle) handle.update(settings());
  };
  const names = ["reconnect_delay", "watchdog_interval", "watchdog_timeout", "debug"];
  model.on("change:job_id", follow);
  for (const name of names) model.on(`change:${name}`, onSettings);
  lifetime.addEventListener(
    "abort",
    () => {
      model.off("change:job_id", follow);
      for (const name of names) model.off(`change:${name}`, onSettings);
    },
    { once: true }
  );
  chooseTransport(model.get("transport"), (signal) => api.getJob(model.get("job_id"), signal), {
    timers,
    signal: lifetime
  }).then((chosen) => {
    if (lifetime.aborted) return;
    mode = chosen;
    if (chosen === "server") {
      try {
        model.send({ type: "transport", value: "server" });
      } catch (error) {
        console.debug("batch_widget: could not tell the kernel", error);
      }
    }
    follow();
  });
  return () => controller.abort();
}
var widget_default = { initialize, render };
export {
  MIRRORED_TRAITS,
  createMirror,
  widget_default as default
};
