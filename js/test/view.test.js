import assert from "node:assert/strict";
import { test } from "node:test";

import { canRetry, createView, formatDuration, formatRate } from "../src/view.js";
import { fakeDocument } from "./fakedom.js";
import { flush, snap } from "./helpers.js";

function mount(overrides = {}) {
  const doc = fakeDocument();
  const el = doc.createElement("div");
  const controller = new AbortController();
  const calls = [];
  const actions = {
    cancel: async (id) => {
      calls.push(["cancel", id]);
      if (overrides.cancelFails) {
        throw Object.assign(new Error("job is already finished"), { status: 409 });
      }
    },
    retry: async (id) => calls.push(["retry", id]),
    failedItems: async (id, limit) => {
      calls.push(["failedItems", id, limit]);
      return {
        items: [{ index: 3, input: "c.txt", status: "failed", error: "ValueError: c", traceback: "tb" }],
        total: 1,
      };
    },
    outputs: async (id) => {
      calls.push(["outputs", id]);
      return { outputs: ["out/a b.gz", "c.gz"] };
    },
  };
  const frames = [];
  const view = createView(el, {
    actions,
    fileHref: (path) => `/base/lab/tree/${path.split("/").map(encodeURIComponent).join("/")}`,
    downloadHref: (path) => `/base/files/${path.split("/").map(encodeURIComponent).join("/")}`,
    signal: controller.signal,
    frame: (fn) => {
      frames.push(fn);
      return () => frames.splice(frames.indexOf(fn), 1);
    },
    now: () => Date.parse("2024-01-01T00:00:30Z"),
    timers: { setInterval: () => 1, clearInterval: () => {} },
  });
  const runFrames = () => {
    while (frames.length) frames.shift()();
  };
  return { el, view, calls, controller, frames, runFrames, root: view.root };
}

const info = (snapshot, extra = {}) => ({
  jobId: snapshot.id,
  snapshot,
  connection: "live",
  reconnects: 0,
  polls: 1,
  lastUpdate: Date.parse("2024-01-01T00:00:27Z"),
  error: null,
  ...extra,
});

test("data attributes, progress bar and counts follow the snapshot", () => {
  const { view, root, frames, runFrames } = mount();
  assert.equal(root.className, "bw-progress");
  view.update(info(snap("a", 4, { done: 3, failed: 1 })));
  view.update(info(snap("a", 5, { done: 4, failed: 1 })));
  assert.equal(frames.length, 1, "DOM updates are batched into one frame");
  runFrames();
  assert.equal(root.getAttribute("data-status"), "processing");
  assert.equal(root.getAttribute("data-connection"), "live");
  assert.equal(root.getAttribute("data-done"), "4");
  assert.equal(root.getAttribute("data-failed"), "1");
  assert.equal(root.getAttribute("data-total"), "10");
  assert.equal(root.getAttribute("data-version"), "5");
  const bar = root.find("bw-bar");
  assert.equal(bar.getAttribute("role"), "progressbar");
  assert.equal(bar.getAttribute("aria-valuemin"), "0");
  assert.equal(bar.getAttribute("aria-valuemax"), "10");
  assert.equal(bar.getAttribute("aria-valuenow"), "5");
  assert.match(bar.getAttribute("aria-label"), /5 of 10/);
  assert.equal(root.find("bw-counts").textContent, "4 done · 1 failed · 5 pending of 10");
  assert.equal(root.find("bw-rate").textContent, "1.5 items/s");
  assert.equal(root.find("bw-eta").textContent, "ETA 4 s");
  assert.equal(root.find("bw-elapsed").textContent, "elapsed 30 s");
  assert.equal(root.find("bw-connection").textContent, "live · updated 3 s ago");
  assert.equal(root.find("bw-cancel").hidden, false);
  assert.equal(root.find("bw-retry").hidden, true);
});

test("failed items and outputs are fetched and shown; Retry appears", async () => {
  const { view, root, calls, runFrames } = mount();
  view.update(info(snap("a", 9, { status: "completed", done: 9, failed: 1 })));
  await flush();
  runFrames();
  assert.deepEqual(calls.filter(([kind]) => kind === "failedItems"), [["failedItems", "a", 20]]);
  const failure = root.find("bw-failure");
  assert.match(failure.textContent, /#3.*c\.txt.*ValueError: c/);
  const links = root.findAll("bw-output");
  assert.equal(links.length, 2);
  assert.equal(links[0].getAttribute("href"), "/base/lab/tree/out/a%20b.gz");
  const downloads = root.findAll("bw-download");
  assert.equal(downloads.length, 2, "each output can also be downloaded");
  assert.equal(downloads[0].getAttribute("href"), "/base/files/out/a%20b.gz");
  assert.equal(downloads[0].getAttribute("download"), "a b.gz");
  assert.equal(root.find("bw-cancel").hidden, true);
  assert.equal(root.find("bw-retry").hidden, false);
  root.find("bw-retry").click();
  await flush();
  assert.deepEqual(calls.at(-1), ["retry", "a"]);
});

test("a refused Cancel shows a short message instead of throwing", async () => {
  const { view, root, runFrames } = mount({ cancelFails: true });
  view.update(info(snap("a", 2)));
  runFrames();
  root.find("bw-cancel").click();
  await flush();
  runFrames();
  assert.equal(root.find("bw-message").textContent, "Cancel failed: job is already finished (409)");
});

test("debug shows the counters; an aborted view stops rendering", () => {
  const { view, root, frames, runFrames, controller } = mount();
  view.setDebug(true);
  view.update(info(snap("a", 2), { reconnects: 2, polls: 7 }));
  runFrames();
  assert.equal(root.find("bw-debug").hidden, false);
  assert.match(root.find("bw-debug").textContent, /reconnects 2 · polls 7/);
  controller.abort();
  view.update(info(snap("a", 3)));
  assert.equal(frames.length, 0);
});

test("formatting helpers", () => {
  assert.equal(formatDuration(4.4), "4 s");
  assert.equal(formatDuration(125), "2 min 05 s");
  assert.equal(formatDuration(3720), "1 h 02 min");
  assert.equal(formatDuration(null), "—");
  assert.equal(formatRate(null), "—");
  assert.equal(formatRate(12.6), "13 items/s");
  assert.equal(canRetry(snap("a", 1, { status: "completed" })), false);
  assert.equal(canRetry(snap("a", 1, { status: "completed", failed: 1 })), true);
  assert.equal(canRetry(snap("a", 1, { status: "interrupted" })), true);
  assert.equal(canRetry(snap("a", 1, { status: "processing" })), false);
  // Cancelled after its last item finished: nothing left to retry.
  assert.equal(canRetry(snap("a", 1, { status: "cancelled", done: 10 })), false);
});
