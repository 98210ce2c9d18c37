// widget.js end to end in Node: a fake model, a fake page, the shared hub.
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";

import { REGISTRY_KEY } from "../src/connection.js";
import widget from "../src/widget.js";
import { fakeDocument } from "./fakedom.js";
import { SAVE_INTERVAL_MS } from "../src/modelsync.js";
import { fakeEventSourceClass, flush, snap, until } from "./helpers.js";

// The mirror saves at most every SAVE_INTERVAL_MS, the view renders on the next
// frame (16 ms in Node): what a widget shows reaches the model within this.
const SAVED_WITHIN = SAVE_INTERVAL_MS * 8;

function fakeModel(values) {
  const state = {
    job_id: "a",
    reconnect_delay: 5000,
    watchdog_interval: 15000,
    watchdog_timeout: 60000,
    debug: false,
    status: "",
    total: 0,
    done: 0,
    failed: 0,
    version: 0,
    connection: "connecting",
    reconnects: 0,
    polls: 0,
    transport: "auto",
    kernel_snapshot: {},
    kernel_extras: {},
    ...values,
  };
  const handlers = new Map();
  return {
    state,
    saves: [],
    sent: [],
    send(content) {
      this.sent.push(content);
    },
    get: (name) => state[name],
    set: (name, value) => {
      state[name] = value;
    },
    save_changes() {
      this.saves.push({ ...state });
    },
    on: (event, fn) => handlers.set(event, [...(handlers.get(event) || []), fn]),
    off: (event, fn) => handlers.set(event, (handlers.get(event) || []).filter((h) => h !== fn)),
    trigger(name, value) {
      state[name] = value;
      for (const fn of handlers.get(`change:${name}`) || []) fn();
    },
    listeners: () => [...handlers.values()].reduce((n, list) => n + list.length, 0),
  };
}

const saved = {};
/** The page's fetches of the current test: `{url, init}`. */
let fetched = [];
beforeEach(() => {
  fetched = [];
  for (const name of ["document", "EventSource", "fetch", REGISTRY_KEY]) saved[name] = globalThis[name];
  globalThis.document = fakeDocument({
    config: { baseUrl: "/user/x/", token: "s3cret" },
    cookie: "_xsrf=2|abc|def; other=1",
  });
  globalThis.EventSource = fakeEventSourceClass();
  globalThis.fetch = async (url, init = {}) => {
    fetched.push({ url: String(url), init });
    const id = /jobs\/([^/?]+)/.exec(url)[1];
    if (init.method === "POST") {
      return Response.json({ ...snap(id, 50, { status: "cancelled" }) });
    }
    if (url.includes("/outputs")) return Response.json({ outputs: [] });
    return Response.json(snap(id, 1));
  };
});
afterEach(() => {
  for (const [name, value] of Object.entries(saved)) globalThis[name] = value;
});

test("initialize returns at once; render mirrors state into the model and cleans up", async () => {
  const model = fakeModel();
  const cleanup = widget.initialize({ model });
  assert.equal(typeof cleanup, "function");

  const el = globalThis.document.createElement("div");
  // anywidget's render props carry no AbortSignal: the view ends when its cleanup is called.
  const dispose = widget.render({ model, el });
  await flush(); // the page server answers for the job: the stream transport
  const es = globalThis.EventSource.last;
  assert.equal(es.url, "/user/x/api/batch/events", "no token in the stream's URL");
  es.open();
  await flush();
  es.emit("progress", snap("a", 2, { done: 4 }));
  es.emit("progress", snap("b", 9, { done: 9 })); // another widget's job
  await until(() => model.state.done === 4 && el.children[0].getAttribute("data-done") === "4",
    "progress saved and shown", SAVED_WITHIN);
  assert.equal(model.state.connection, "live");
  assert.equal(model.state.done, 4);
  assert.equal(model.state.version, 2);
  assert.equal(model.state.polls, 1);
  assert.ok(model.saves.length <= 3, `throttled saves: ${model.saves.length}`);
  const root = el.children[0];
  assert.equal(root.getAttribute("data-done"), "4");
  assert.equal(root.getAttribute("data-connection"), "live");

  es.emit("complete", snap("a", 3, { status: "completed", done: 10 }));
  assert.equal(model.state.status, "completed", "the terminal state is saved at once");
  assert.equal(model.saves.at(-1).status, "completed");
  assert.ok(!JSON.stringify(model.saves).includes("s3cret"), "no credential in widget state");
  await until(() => fetched.some((call) => call.url.includes("/outputs")), "outputs asked for",
    SAVED_WITHIN);
  assert.ok(fetched.length >= 2, "the job and its outputs");
  for (const { url, init } of fetched) {
    assert.ok(!url.includes("token"), `no token in ${url}`);
    assert.equal(init.headers.Authorization, "token s3cret", `the header on ${url}`);
  }
  assert.ok(fetched.some((call) => call.url === "/user/x/api/batch/jobs/a/outputs?limit=20"));

  dispose();
  assert.equal(model.state.connection, "closed");
  assert.equal(es.readyState, globalThis.EventSource.CLOSED);
  assert.equal(globalThis[REGISTRY_KEY].size, 0);
  assert.equal(model.listeners(), 0, "model listeners removed");
});

test("Cancel posts with the XSRF cookie and token header and applies the answer", async () => {
  const posts = [];
  const plainFetch = globalThis.fetch;
  globalThis.fetch = async (url, init = {}) => {
    if (init.method === "POST") posts.push({ url, headers: init.headers });
    return plainFetch(url, init);
  };
  const model = fakeModel();
  const el = globalThis.document.createElement("div");
  const cleanup = widget.render({ model, el });
  await flush(); // the page server answers for the job: the stream transport
  globalThis.EventSource.last.open();
  await flush();
  await until(() => el.children[0].getAttribute("data-status") === "processing",
    "the job shown", SAVED_WITHIN);
  el.children[0].find("bw-cancel").click();
  await flush();
  assert.equal(posts.length, 1);
  assert.equal(posts[0].url, "/user/x/api/batch/jobs/a/cancel");
  assert.equal(posts[0].headers["X-XSRFToken"], "2|abc|def");
  assert.equal(posts[0].headers.Authorization, "token s3cret");
  assert.equal(model.state.status, "cancelled");
  cleanup();
  assert.equal(globalThis[REGISTRY_KEY].size, 0);
});

test("a refused Cancel shows why and polls at once to show where the job is now", async () => {
  let polls = 0;
  let probed = false;
  globalThis.fetch = async (url, init = {}) => {
    if (init.method === "POST") {
      return Response.json({ message: "job a is already cancelled" }, { status: 409 });
    }
    if (url.includes("/outputs")) return Response.json({ outputs: [] });
    if (url.includes("/items")) return Response.json({ items: [], total: 0 });
    if (!probed) {
      probed = true; // render asks once whether the page's server answers for the job
      return Response.json(snap("a", 1));
    }
    polls += 1;
    // The first poll (catch-up on open) still sees it running; then it has ended.
    return Response.json(
      polls === 1 ? snap("a", 1) : snap("a", 7, { status: "cancelled", done: 3 }),
    );
  };
  const model = fakeModel();
  const el = globalThis.document.createElement("div");
  const cleanup = widget.render({ model, el });
  await flush(); // the page server answers for the job: the stream transport
  try {
    globalThis.EventSource.last.open();
    await flush();
    await until(() => model.state.status === "processing", "the job shown", SAVED_WITHIN);
    el.children[0].find("bw-cancel").click();
    await until(() => model.state.status === "cancelled" &&
      el.children[0].find("bw-message").textContent !== "", "the refusal shown", SAVED_WITHIN);
    assert.equal(polls, 2, "the refusal triggered a poll");
    assert.equal(model.state.status, "cancelled");
    assert.equal(model.state.version, 7);
    const message = el.children[0].find("bw-message").textContent;
    assert.match(message, /Cancel failed: job a is already cancelled \(409\)/);
  } finally {
    cleanup(); // a failed assertion must not leave timers keeping node alive
  }
});

test("changing job_id follows the new job on the same stream", async () => {
  const model = fakeModel();
  const el = globalThis.document.createElement("div");
  const cleanup = widget.render({ model, el });
  await flush(); // the page server answers for the job: the stream transport
  const es = globalThis.EventSource.last;
  es.open();
  await flush();
  model.trigger("job_id", "b");
  await flush();
  assert.equal(globalThis.EventSource.instances.length, 1, "the stream was kept");
  es.emit("complete", snap("b", 7, { status: "completed", done: 10 }));
  assert.equal(model.state.status, "completed");
  assert.equal(model.state.connection, "live");
  model.trigger("debug", true);
  cleanup();
});

test("transport 'kernel': updates come from the kernel, Cancel goes to it, no request is made", async () => {
  const requests = [];
  globalThis.fetch = async (url) => {
    requests.push(url);
    return Response.json({}, { status: 500 });
  };
  const model = fakeModel({ transport: "kernel" });
  const el = globalThis.document.createElement("div");
  const cleanup = widget.render({ model, el });
  await flush();
  try {
    assert.equal(globalThis.EventSource.last, undefined, "no EventSource at all");
    model.trigger("kernel_snapshot", snap("a", 3, { done: 2 }));
    await until(() => model.state.done === 2 && el.children[0].getAttribute("data-done") === "2",
      "the kernel's snapshot saved and shown", SAVED_WITHIN);
    assert.equal(model.state.connection, "kernel");
    assert.equal(model.state.done, 2);
    assert.equal(el.children[0].getAttribute("data-connection"), "kernel");

    el.children[0].find("bw-cancel").click();
    await flush();
    assert.deepEqual(model.sent.at(-1), { type: "cancel" });

    model.trigger("kernel_extras", {
      version: 9,
      failed_items: { items: [{ index: 4, input: 4, status: "failed", error: "ValueError: 4" }], total: 1 },
      outputs: ["out/1.txt"],
      outputs_total: 5000, // the kernel sends the first outputs and the count
    });
    model.trigger("kernel_snapshot", snap("a", 9, { status: "completed", done: 9, failed: 1 }));
    await until(() => /ValueError: 4/.test(el.children[0].find("bw-failures").textContent),
      "the failed items shown", SAVED_WITHIN);
    await until(() => el.children[0].findAll("bw-outputs-more").length === 1,
      "the outputs shown", SAVED_WITHIN);
    assert.equal(el.children[0].find("bw-outputs-more").textContent, "and 4,999 more");
    assert.equal(model.state.status, "completed");
    assert.match(el.children[0].find("bw-failures").textContent, /ValueError: 4/);
    assert.deepEqual(requests, [], "the page's server was never asked");
  } finally {
    cleanup();
  }
});
