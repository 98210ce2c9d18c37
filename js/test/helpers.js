// Test doubles for the connection layer: a virtual clock with countable
// timers, a hand-written EventSource, and a fake Jupyter server behind fetch.

/** Let pending promise chains (fake fetch answers) run to completion. */
export async function flush() {
  for (let i = 0; i < 10; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** A virtual clock: timers only fire from `advance`, and `pending` counts them. */
export class FakeClock {
  constructor(start = Date.UTC(2024, 0, 1)) {
    this.time = start;
    this.start = start;
    this.entries = new Map();
    this.nextId = 1;
    this.now = () => this.time;
    const add = (fn, ms, interval) => {
      const id = this.nextId++;
      const delay = Math.max(0, Number(ms) || 0);
      this.entries.set(id, { fn, at: this.time + delay, interval: interval ? Math.max(1, delay) : null });
      return id;
    };
    const clear = (id) => {
      this.entries.delete(id);
    };
    this.timers = {
      setTimeout: (fn, ms) => add(fn, ms, false),
      setInterval: (fn, ms) => add(fn, ms, true),
      clearTimeout: clear,
      clearInterval: clear,
    };
  }

  /** Milliseconds since the clock started. */
  get elapsed() {
    return this.time - this.start;
  }

  get pending() {
    return this.entries.size;
  }

  /** Move time forward by `ms`, firing every due timer in order. */
  async advance(ms) {
    const end = this.time + ms;
    await flush();
    for (;;) {
      let nextId = null;
      let next = null;
      for (const [id, entry] of this.entries) {
        if (entry.at <= end && (next === null || entry.at < next.at)) {
          next = entry;
          nextId = id;
        }
      }
      if (next === null) break;
      this.time = next.at;
      if (next.interval) next.at += next.interval;
      else this.entries.delete(nextId);
      next.fn();
      await flush();
    }
    this.time = end;
    await flush();
  }
}

/**
 * A fresh EventSource class with its own list of instances. `behaviour`
 * "fail" makes every new instance fail (CLOSED) right after construction,
 * like a server answering non-200.
 */
export function fakeEventSourceClass() {
  class FakeEventSource extends EventTarget {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSED = 2;
    static instances = [];
    static behaviour = "manual";

    constructor(url) {
      super();
      this.url = url;
      this.readyState = FakeEventSource.CONNECTING;
      this.onopen = null;
      this.onerror = null;
      FakeEventSource.instances.push(this);
      if (FakeEventSource.behaviour === "fail") queueMicrotask(() => this.fail());
    }

    static get last() {
      return FakeEventSource.instances.at(-1);
    }

    static get openCount() {
      return FakeEventSource.instances.filter((es) => es.readyState !== FakeEventSource.CLOSED)
        .length;
    }

    close() {
      this.readyState = FakeEventSource.CLOSED;
    }

    open() {
      this.readyState = FakeEventSource.OPEN;
      const event = new Event("open");
      this.dispatchEvent(event);
      if (this.onopen) this.onopen(event);
    }

    emit(type, data) {
      if (this.readyState !== FakeEventSource.OPEN) throw new Error("emit on a stream that is not open");
      this.dispatchEvent(new MessageEvent(type, { data: JSON.stringify(data) }));
    }

    /** An error: `closed` true is a final failure, false a browser retry in progress. */
    fail({ closed = true } = {}) {
      this.readyState = closed ? FakeEventSource.CLOSED : FakeEventSource.CONNECTING;
      const event = new Event("error");
      this.dispatchEvent(event);
      if (this.onerror) this.onerror(event);
    }
  }
  return FakeEventSource;
}

/** A job snapshot of SPEC §2. */
export function snap(
  id,
  version,
  {
    status = "processing", done = 0, failed = 0, total = 10, executor = undefined, workers = undefined,
    createdAt = "2024-01-01T00:00:00Z", retrying = undefined,
  } = {},
) {
  return {
    ...(executor === undefined ? {} : { executor }),
    ...(retrying === undefined ? {} : { retrying }),
    ...(workers === undefined ? {} : { workers }),
    id,
    name: `job ${id}`,
    processor: "batch_widget.processors:sleep",
    status,
    total,
    done,
    failed,
    pending: total - done - failed,
    version,
    created_at: createdAt,
    started_at: "2024-01-01T00:00:00Z",
    finished_at: ["completed", "failed", "cancelled", "interrupted"].includes(status)
      ? "2024-01-01T00:01:00Z"
      : null,
    rate: 1.5,
    eta: 4,
    error: null,
  };
}

/** A fake Jupyter server: `jobs` holds the snapshot each GET answers with. */
export function fakeServer() {
  const server = {
    jobs: new Map(),
    calls: [],
    down: false,
    fetch: async (url, init = {}) => {
      server.calls.push({ url: String(url), init });
      if (server.down) throw new TypeError("Failed to fetch");
      const match = /api\/batch\/jobs\/([^/?]+)(\/[a-z]+)?/.exec(String(url));
      const json = (status, body) =>
        new Response(JSON.stringify(body), {
          status,
          headers: { "Content-Type": "application/json" },
        });
      const list = /api\/batch\/jobs(\?(.*))?$/.exec(String(url));
      if (list && !init.method) {
        const query = new URLSearchParams(list[2] || "");
        const status = query.get("status");
        const offset = Number(query.get("offset") || 0);
        const limit = Number(query.get("limit") || 100);
        const jobs = [...server.jobs.values()]
          .filter((job) => !status || job.status === status)
          .sort((a, b) => (a.created_at > b.created_at ? -1 : a.created_at < b.created_at ? 1 : 0));
        return json(200, { jobs: jobs.slice(offset, offset + limit), total: jobs.length });
      }
      if (!match) return json(404, { message: "no route" });
      const id = decodeURIComponent(match[1]);
      const job = server.jobs.get(id);
      if (!job) return json(404, { message: `no job ${id}` });
      if (!match[2]) return json(200, job);
      if (match[2] === "/cancel") {
        if (["completed", "failed", "cancelled", "interrupted"].includes(job.status)) {
          return json(409, { message: "job is already finished" });
        }
        return json(200, { ...job, status: "cancelled", version: job.version + 1 });
      }
      return json(404, { message: "no route" });
    },
    /** GET fetches of the job list so far. */
    lists() {
      return server.calls.filter((call) => !call.init.method && /api\/batch\/jobs(\?|$)/.test(call.url))
        .length;
    },
    /** GET polls of one job so far. */
    polls(id) {
      return server.calls.filter(
        (call) => !call.init.method && new RegExp(`api/batch/jobs/${id}(\\?|$)`).test(call.url),
      ).length;
    },
  };
  return server;
}

/**
 * A page for the connection layer: a virtual clock, a fresh EventSource class,
 * a fake server and a private hub registry; `options` for `subscribe`.
 */
export function pageEnvironment(extra = {}) {
  const clock = new FakeClock();
  const ES = fakeEventSourceClass();
  const server = fakeServer();
  const registry = {};
  const logs = [];
  const options = {
    baseUrl: "/base/",
    EventSource: ES,
    fetch: server.fetch,
    now: clock.now,
    timers: clock.timers,
    registry,
    log: (...args) => logs.push(args.map(String).join(" ")),
    ...extra,
  };
  return { clock, ES, server, registry, logs, options };
}

/**
 * Wait (in real time, for code that runs on the global timers) until `predicate()`
 * holds, at most `ms`; throw naming `what` otherwise.
 */
export async function until(predicate, what, ms) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
