// The jobs view (SPEC §13): its list on the page's shared stream, its DOM, the
// kernel transport, and the notifications. Time is virtual, the stream a
// hand-written EventSource, the server a fake fetch.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { subscribe, subscribeList } from "../src/connection.js";
import { createJobsView, rangeText } from "../src/jobsview.js";
import { KERNEL_ACTIVE_REFRESH_MS } from "../src/jobswidget.js";
import { KernelSource } from "../src/kernel.js";
import { Notifier, notifyControl, OPT_IN_KEY, pageNotifier } from "../src/notify.js";
import { fakeDocument } from "./fakedom.js";
import { FakeClock, flush, pageEnvironment, snap } from "./helpers.js";

const environment = () =>
  pageEnvironment({ watchdogInterval: 1000, watchdogTimeout: 3000, reconnectDelay: 500 });

const at = (minute) => `2024-01-01T00:${String(minute).padStart(2, "0")}:00Z`;

/** A jobs list on an open stream, over `jobs` (snapshots) on the fake server. */
async function liveList(jobs, extra = {}) {
  const env = environment();
  for (const job of jobs) env.server.jobs.set(job.id, job);
  const seen = [];
  const handle = subscribeList((info) => seen.push(info), { ...env.options, ...extra });
  env.ES.last.open();
  await flush();
  const list = {
    seen,
    handle,
    get last() {
      return seen.at(-1);
    },
    get ids() {
      return seen.at(-1).rows.map((row) => row.id);
    },
  };
  return { env, list };
}

describe("the jobs list on the page's stream", () => {
  test("it lists the server's jobs newest first, at once, then takes events live", async () => {
    const { env, list } = await liveList([
      snap("old", 4, { status: "completed", done: 10, createdAt: at(1) }),
      snap("mid", 2, { createdAt: at(2) }),
    ]);
    assert.deepEqual(list.ids, ["mid", "old"]);
    assert.equal(list.last.total, 2);
    assert.equal(list.last.connection, "live");
    assert.ok(list.last.loaded);

    env.ES.last.emit("progress", snap("mid", 3, { done: 4, createdAt: at(2) }));
    assert.equal(list.last.rows[0].done, 4);
    env.ES.last.emit("progress", snap("mid", 2, { done: 1, createdAt: at(2) }));
    assert.equal(list.last.rows[0].done, 4, "an older version is never shown");

    // A job submitted afterwards appears on top, and the count grows.
    env.ES.last.emit("progress", snap("new", 1, { status: "queued", createdAt: at(3) }));
    assert.deepEqual(list.ids, ["new", "mid", "old"]);
    assert.equal(list.last.total, 3);
    env.ES.last.emit("complete", snap("new", 5, { status: "completed", done: 10, createdAt: at(3) }));
    assert.equal(list.last.rows[0].status, "completed");
    assert.equal(env.ES.instances.length, 1);
    list.handle();
  });

  test("an event that comes while the page is fetched is applied on top of the answer", async () => {
    const env = environment();
    env.server.jobs.set("a", snap("a", 1, { createdAt: at(1) }));
    const seen = [];
    const handle = subscribeList((info) => seen.push(info), env.options);
    // The server has listed the page (only a); then b is created and its event comes first.
    env.server.jobs.set("b", snap("b", 1, { status: "queued", createdAt: at(2) }));
    env.ES.last.open();
    env.ES.last.emit("progress", snap("b", 2, { createdAt: at(2) }));
    await flush();
    const first = seen.find((info) => info.loaded);
    assert.deepEqual(first.rows.map((row) => row.id), ["b", "a"], "b shown with the first answer");
    assert.equal(first.total, 2);
    assert.equal(seen.at(-1).rows[0].version, 2, "the later fetch (b at v1) does not go back");
    handle();
  });

  test("a page holds at most `limit` rows; later pages and filters do not take new jobs", async () => {
    const jobs = [1, 2, 3].map((n) => snap(`j${n}`, 1, { status: "completed", createdAt: at(n) }));
    const { env, list } = await liveList(jobs, { limit: 2 });
    assert.deepEqual(list.ids, ["j3", "j2"]);
    assert.equal(list.last.total, 3);
    env.ES.last.emit("progress", snap("j4", 1, { createdAt: at(4) }));
    assert.deepEqual(list.ids, ["j4", "j3"], "the oldest row leaves the page");
    assert.equal(list.last.total, 4);
    // An event for an older job not on the page (a retry of j1) leaves the page as it is.
    env.ES.last.emit("progress", snap("j1", 2, { status: "queued", createdAt: at(1) }));
    assert.deepEqual(list.ids, ["j4", "j3"]);

    const second = await liveList(jobs, { limit: 2, offset: 2 });
    assert.deepEqual(second.list.ids, ["j1"]);
    second.env.ES.last.emit("progress", snap("j9", 1, { createdAt: at(9) }));
    assert.deepEqual(second.list.ids, ["j1"], "a new job belongs on the first page");

    const filtered = await liveList(jobs, { status: "processing" });
    assert.deepEqual(filtered.list.ids, []);
    filtered.env.ES.last.emit("progress", snap("q", 1, { status: "queued", createdAt: at(9) }));
    assert.deepEqual(filtered.list.ids, []);
    filtered.env.ES.last.emit("progress", snap("p", 1, { status: "processing", createdAt: at(9) }));
    assert.deepEqual(filtered.list.ids, ["p"]);
    for (const each of [list, second.list, filtered.list]) each.handle();
  });

  test("a deleted job leaves the page, which is fetched again to fill the place", async () => {
    const jobs = [1, 2, 3].map((n) => snap(`j${n}`, 1, { status: "completed", createdAt: at(n) }));
    const { env, list } = await liveList(jobs, { limit: 2 });
    const fetches = env.server.lists();
    env.server.jobs.delete("j3");
    env.ES.last.emit("deleted", { id: "j3" });
    await flush();
    assert.equal(env.server.lists(), fetches + 1);
    assert.deepEqual(list.ids, ["j2", "j1"]);
    assert.equal(list.last.total, 2);
    list.handle();
  });

  test("another page: the rows are fetched for it", async () => {
    const jobs = [1, 2, 3].map((n) => snap(`j${n}`, 1, { status: "completed", createdAt: at(n) }));
    const { env, list } = await liveList(jobs, { limit: 2 });
    list.handle.query({ offset: 2 });
    await flush();
    assert.deepEqual(list.ids, ["j1"]);
    assert.deepEqual(list.last.query, { status: "", limit: 2, offset: 2 });
    assert.match(env.server.calls.at(-1).url, /offset=2/);
    list.handle();
  });

  test("a reconnect catches up: the list is fetched again on open", async () => {
    const { env, list } = await liveList([snap("a", 1, { createdAt: at(1) })]);
    const fetches = env.server.lists();
    env.ES.last.fail();
    assert.equal(list.last.connection, "reconnecting");
    env.server.jobs.set("a", snap("a", 7, { status: "completed", done: 10, createdAt: at(1) }));
    env.server.jobs.set("b", snap("b", 1, { createdAt: at(2) }));
    await env.clock.advance(500);
    assert.equal(env.ES.instances.length, 2, "a new EventSource after reconnect_delay");
    env.ES.last.open();
    await flush();
    assert.equal(env.server.lists(), fetches + 1);
    assert.deepEqual(list.ids, ["b", "a"]);
    assert.equal(list.last.rows[1].version, 7);
    assert.equal(list.last.connection, "live");
    list.handle();
  });

  test("SSE dead from the start: the list is kept current by polling at the watchdog's cadence", async () => {
    const env = environment();
    env.ES.behaviour = "fail";
    env.server.jobs.set("a", snap("a", 1, { createdAt: at(1) }));
    const seen = [];
    const handle = subscribeList((info) => seen.push(info), env.options);
    await flush();
    assert.equal(seen.at(-1).rows[0].version, 1);
    env.server.jobs.set("a", snap("a", 2, { status: "completed", done: 10, createdAt: at(1) }));
    await env.clock.advance(3000 + 1000);
    assert.equal(seen.at(-1).connection, "polling");
    assert.equal(seen.at(-1).rows[0].status, "completed");
    const fetches = env.server.lists();
    await env.clock.advance(5000);
    assert.ok(env.server.lists() >= fetches + 4, "polled about every watchdog_interval");
    handle();
  });

  test("open but silent: the watchdog fetches an active list after watchdog_timeout", async () => {
    const { env, list } = await liveList([snap("a", 1, { createdAt: at(1) })]);
    env.server.jobs.set("a", snap("a", 3, { done: 5, createdAt: at(1) }));
    const fetches = env.server.lists();
    await env.clock.advance(2000);
    assert.equal(env.server.lists(), fetches, "no fetch while the stream may still speak");
    env.ES.last.emit("heartbeat", { time: 0, epoch: "e" });
    await env.clock.advance(2000);
    assert.equal(list.last.rows[0].done, 5, "fetched: no update for watchdog_timeout");
    list.handle();
  });

  test("the jobs view and three progress widgets share one EventSource and its events", async () => {
    const env = environment();
    for (const id of ["a", "b", "c"]) env.server.jobs.set(id, snap(id, 1));
    const rows = [];
    const shown = {};
    const listHandle = subscribeList((info) => rows.push(info), env.options);
    const widgets = ["a", "b", "c"].map((id) =>
      subscribe(id, (info) => (shown[id] = info), env.options));
    env.ES.last.open();
    await flush();
    assert.equal(env.ES.instances.length, 1);
    env.ES.last.emit("complete", snap("b", 9, { status: "completed", done: 10 }));
    assert.equal(shown.b.snapshot.status, "completed");
    assert.equal(rows.at(-1).rows.find((row) => row.id === "b").status, "completed");
    listHandle();
    for (const unsubscribe of widgets) unsubscribe();
    assert.equal(env.clock.pending, 0, "nothing left running");
  });
});

describe("the jobs view's DOM", () => {
  function mount() {
    const doc = fakeDocument();
    const el = doc.createElement("div");
    const controller = new AbortController();
    const calls = [];
    const frames = [];
    const view = createJobsView(el, {
      actions: {
        cancel: async (id) => {
          calls.push(["cancel", id]);
          throw Object.assign(new Error("job is already finished"), { status: 409 });
        },
        retry: async (id) => calls.push(["retry", id]),
        page: (offset) => calls.push(["page", offset]),
      },
      signal: controller.signal,
      frame: (fn) => {
        frames.push(fn);
        return () => frames.splice(frames.indexOf(fn), 1);
      },
      timers: { setInterval: () => 1, clearInterval: () => {} },
    });
    return { el, view, calls, root: el.children[0], close: () => controller.abort() };
  }

  function info(rows, extra = {}) {
    return {
      rows, total: rows.length, query: { status: "", limit: 2, offset: 0 }, loaded: true,
      connection: "live", reconnects: 0, polls: 1, lastUpdate: null, error: null, ...extra,
    };
  }

  test("one row per job with the data attributes, in order, with the right buttons", async () => {
    const { view, root, calls, close } = mount();
    const running = snap("a", 3, { done: 4, failed: 1, executor: "process", workers: 2 });
    const cancelled = snap("b", 7, { status: "cancelled", done: 2 });
    view.update(info([running, cancelled], { total: 5 }));
    view.flush();
    assert.equal(root.className, "bw-jobs");
    const rows = root.findAll("bw-job-row");
    assert.deepEqual(rows.map((row) => row.getAttribute("data-job-id")), ["a", "b"]);
    const [a, b] = rows;
    for (const [name, value] of Object.entries({
      "data-status": "processing", "data-connection": "live", "data-done": "4",
      "data-failed": "1", "data-total": "10", "data-version": "3", "data-executor": "process",
    })) assert.equal(a.getAttribute(name), value, name);
    assert.equal(a.find("bw-counts").textContent, "4 done · 1 failed · 5 pending of 10");
    assert.equal(a.find("bw-rate").textContent, "1.5 items/s");
    assert.equal(a.find("bw-executor").textContent, "on 2 processes");
    assert.equal(a.find("bw-bar").getAttribute("aria-valuenow"), "5");
    assert.equal(a.find("bw-cancel").hidden, false);
    assert.equal(a.find("bw-retry").hidden, true);
    assert.equal(b.find("bw-cancel").hidden, true);
    assert.equal(b.find("bw-retry").hidden, false);
    assert.equal(root.find("bw-jobs-range").textContent, "1–2 of 5 jobs");
    assert.equal(root.find("bw-newer").hidden, true);
    assert.equal(root.find("bw-older").hidden, false);

    // A refused Cancel says why on the row; the row's elements are kept across renders.
    a.find("bw-cancel").click();
    await flush();
    view.flush();
    assert.deepEqual(calls, [["cancel", "a"]]);
    assert.equal(a.find("bw-message").textContent, "Cancel failed: job is already finished (409)");
    view.update(info([snap("c", 1), running], { total: 6 }));
    view.flush();
    assert.equal(root.findAll("bw-job-row")[1], a, "the same element, moved");
    root.find("bw-older").click();
    assert.deepEqual(calls.at(-1), ["page", 2]);
    close();
  });

  test("no jobs, and a list that could not be fetched, say so", () => {
    const { view, root, close } = mount();
    view.update(info([]));
    view.flush();
    assert.match(root.find("bw-jobs-empty").textContent, /No jobs yet/);
    view.update(info([], { loaded: false, error: "Failed to fetch" }));
    view.flush();
    assert.equal(root.find("bw-jobs-range").textContent, "loading…");
    assert.equal(root.find("bw-jobs-empty").hidden, false);
    assert.equal(root.find("bw-jobs-empty").textContent, "Could not list the jobs: Failed to fetch");
    view.update(info([], { loaded: false }));
    view.flush();
    assert.equal(root.find("bw-jobs-empty").hidden, true, "nothing to say while it loads");
    close();
  });

  test("rangeText words the page", () => {
    const base = { rows: [snap("a", 1)], total: 230, query: { status: "", limit: 100, offset: 100 } };
    assert.equal(rangeText(/** @type {any} */ (base)), "101–101 of 230 jobs");
    assert.equal(rangeText(/** @type {any} */ ({ ...base, rows: [], total: 0,
      query: { status: "failed", limit: 100, offset: 0 } })), "no failed jobs");
  });
});

describe("the jobs view through the kernel", () => {
  /** A page of jobs through the kernel's channel: a list watch over a KernelSource. */
  const followListThroughKernel = (listener, { model, ...options }) =>
    subscribeList(listener, { source: new KernelSource(model), ...options });

  function kernelModel() {
    const state = { kernel_jobs: {}, status_filter: "", limit: 50, offset: 0 };
    const handlers = new Map();
    return {
      state,
      sent: [],
      get: (name) => state[name],
      set: (name, value) => (state[name] = value),
      save_changes() {},
      send(content) {
        this.sent.push(content);
      },
      on: (event, fn) => handlers.set(event, [...(handlers.get(event) || []), fn]),
      off: (event, fn) => handlers.set(event, (handlers.get(event) || []).filter((h) => h !== fn)),
      trigger(name, value) {
        state[name] = value;
        for (const fn of handlers.get(`change:${name}`) || []) fn();
      },
    };
  }

  test("it asks the kernel for the page: every second while a job moves, else every watchdog_interval", async () => {
    const clock = new FakeClock();
    const model = kernelModel();
    const seen = [];
    const controller = new AbortController();
    followListThroughKernel((info) => seen.push(info), {
      model, timers: clock.timers, now: clock.now, signal: controller.signal, watchdogInterval: 15000,
    });
    assert.deepEqual(model.sent, [{ type: "refresh" }]);
    model.trigger("kernel_jobs", { jobs: [snap("a", 2)], total: 1, version: 1 });
    assert.equal(seen.at(-1).connection, "kernel");
    assert.equal(seen.at(-1).rows[0].version, 2);
    await clock.advance(KERNEL_ACTIVE_REFRESH_MS);
    assert.equal(model.sent.length, 2);
    model.trigger("kernel_jobs", { jobs: [snap("a", 1)], total: 1, version: 2 });
    assert.equal(seen.at(-1).rows[0].version, 2, "never backwards");
    model.trigger("kernel_jobs", { jobs: [snap("a", 5, { status: "completed" })], total: 1, version: 3 });
    const sent = model.sent.length;
    await clock.advance(14000);
    assert.equal(model.sent.length, sent, "nothing moves: no refresh before watchdog_interval");
    await clock.advance(1000);
    assert.equal(model.sent.length, sent + 1);
    controller.abort();
    assert.equal(clock.pending, 0);
  });
});

describe("notifications", () => {
  function page({ permission = "granted", stored = null } = {}) {
    const listeners = [];
    const document = {
      title: "analysis.ipynb - JupyterLab",
      visibilityState: "visible",
      addEventListener: (type, fn) => listeners.push(fn),
    };
    const raised = [];
    class FakeNotification {
      static permission = permission;
      static requests = 0;
      static async requestPermission() {
        FakeNotification.requests += 1;
        return FakeNotification.permission;
      }
      constructor(title, options) {
        raised.push({ title, ...options });
      }
      close() {}
    }
    const store = new Map(stored ? [[OPT_IN_KEY, stored]] : []);
    const storage = {
      getItem: (key) => (store.has(key) ? store.get(key) : null),
      setItem: (key, value) => store.set(key, value),
      removeItem: (key) => store.delete(key),
    };
    const notifier = new Notifier({ document, Notification: FakeNotification, storage, focus: undefined });
    const setHidden = (hidden) => {
      document.visibilityState = hidden ? "hidden" : "visible";
      for (const fn of listeners) fn();
    };
    return { notifier, document, raised, store, setHidden, FakeNotification };
  }
  const running = snap("a", 2);
  const ended = snap("a", 3, { status: "completed", done: 10 });

  test("a job seen running that ends while the page is hidden: one notification and the title count", () => {
    const { notifier, document, raised, setHidden } = page({ stored: "on" });
    notifier.observe(running);
    notifier.observe(running); // a second widget showing the same job
    setHidden(true);
    notifier.observe(ended);
    notifier.observe(ended);
    assert.equal(raised.length, 1);
    assert.equal(raised[0].title, "job a: completed");
    assert.equal(raised[0].body, "10 done · 0 failed · 0 not run of 10");
    assert.equal(document.title, "(1 ended) analysis.ipynb - JupyterLab");
    notifier.observe(snap("b", 1));
    notifier.observe(snap("b", 2, { status: "failed" }));
    assert.equal(document.title, "(2 ended) analysis.ipynb - JupyterLab");
    setHidden(false);
    assert.equal(document.title, "analysis.ipynb - JupyterLab");
    assert.equal(notifier.unseen, 0);
  });

  test("none while the page is visible, none for a job first seen finished, none before the user asked", () => {
    const visible = page({ stored: "on" });
    visible.notifier.observe(running);
    visible.notifier.observe(ended);
    assert.equal(visible.raised.length, 0);
    assert.equal(visible.document.title, "analysis.ipynb - JupyterLab");

    const old = page({ stored: "on" });
    old.setHidden(true);
    old.notifier.observe(ended);
    assert.equal(old.raised.length, 0);
    assert.equal(old.notifier.unseen, 0);

    const notAsked = page();
    notAsked.notifier.observe(running);
    notAsked.setHidden(true);
    notAsked.notifier.observe(ended);
    assert.equal(notAsked.raised.length, 0, "the browser allows it, but the user did not ask");
    assert.equal(notAsked.document.title, "(1 ended) analysis.ipynb - JupyterLab");
  });

  test("the control asks the browser, remembers the choice and turns it off again", async () => {
    const { notifier, store, FakeNotification } = page({ permission: "default" });
    const doc = fakeDocument();
    const controller = new AbortController();
    const button = notifyControl(doc, notifier, controller.signal);
    assert.equal(button.getAttribute("data-notify"), "off");
    assert.equal(button.textContent, "Notify me");
    FakeNotification.permission = "granted"; // what the user answers in the browser's prompt
    button.click();
    await flush();
    assert.equal(FakeNotification.requests, 0, "already granted: no prompt");
    assert.equal(store.get(OPT_IN_KEY), "on");
    assert.equal(button.getAttribute("data-notify"), "on");
    button.click();
    assert.equal(store.has(OPT_IN_KEY), false);
    assert.equal(button.getAttribute("data-notify"), "off");
    controller.abort();
    assert.equal(notifier.listeners.size, 0);
  });

  test("a denied permission shows a disabled control; no Notification API hides it", () => {
    const denied = page({ permission: "denied" });
    const button = notifyControl(fakeDocument(), denied.notifier, new AbortController().signal);
    assert.equal(button.disabled, true);
    assert.equal(button.getAttribute("data-notify"), "blocked");
    const none = new Notifier({ document: undefined, Notification: undefined, storage: null, focus: undefined });
    const hidden = notifyControl(fakeDocument(), none, new AbortController().signal);
    assert.equal(hidden.hidden, true);
  });

  test("one notifier per page, whichever copy of the module asks", () => {
    const registry = {};
    const env = { document: undefined, Notification: undefined, storage: null, focus: undefined };
    const first = pageNotifier(registry, env);
    registry.__batchWidgetNotifier = first;
    assert.equal(pageNotifier(registry, env), first);
  });
});
