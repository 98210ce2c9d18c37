import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { canRetry, countsText, createView, formatDuration, formatRate, whereText } from "../src/view.js";
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
      if (overrides.notFound) throw Object.assign(new Error(`no job ${id}`), { status: 404 });
      return overrides.failedItems
        ? overrides.failedItems()
        : {
            items: [
              { index: 3, input: "c.txt", status: "failed", error: "ValueError: c", traceback: "tb", log: "reading c.txt\n" },
              { index: 5, input: "e.txt", status: "failed", error: "OSError: e", traceback: "tb", log: null },
            ],
            total: 2,
          };
    },
    outputs: async (id, limit) => {
      calls.push(["outputs", id, limit]);
      if (overrides.notFound) throw Object.assign(new Error(`no job ${id}`), { status: 404 });
      return overrides.outputs ? overrides.outputs() : { outputs: ["out/a b.gz", "c.gz"] };
    },
    gone: (id) => calls.push(["gone", id]),
  };
  let ticker = null;
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
    timers: {
      setInterval: (fn) => {
        ticker = fn;
        return 1;
      },
      clearInterval: () => {
        ticker = null;
      },
    },
  });
  const runFrames = () => {
    while (frames.length) frames.shift()();
  };
  const tick = () => ticker && ticker();
  return { el, view, calls, controller, frames, runFrames, tick, root: view.root };
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
  const logs = root.findAll("bw-failure-log");
  assert.equal(logs.length, 1, "only an item that wrote something has an output section");
  assert.equal(logs[0].tagName.toLowerCase(), "details", "collapsed until opened");
  assert.match(logs[0].textContent, /output.*reading c\.txt/s);
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

test("a job of many outputs lists the first 20 (its first page) and counts the rest", async () => {
  const paths = Array.from({ length: 30 }, (_, i) => `out/${i}.txt`); // 20 items, some with two
  const { view, root, calls, runFrames } = mount({
    outputs: () => ({ outputs: paths, total: 100_000, next_after: 19 }),
  });
  view.update(info(snap("a", 9, { status: "completed", done: 10 })));
  await flush();
  runFrames();
  assert.deepEqual(calls.filter(([kind]) => kind === "outputs"), [["outputs", "a", 20]],
    "only the first page is asked for");
  const links = root.findAll("bw-output");
  assert.deepEqual(links.map((link) => link.textContent), paths.slice(0, 20));
  assert.equal(root.find("bw-outputs").find("bw-section-title").textContent,
    "Outputs (100,000)");
  assert.equal(root.find("bw-outputs-more").textContent, "and 99,980 more");
});

test("a job with few outputs shows them all, with no 'more'", async () => {
  const { view, root, runFrames } = mount({
    outputs: () => ({ outputs: ["a.gz", "b.gz"], total: 2, next_after: null }),
  });
  view.update(info(snap("a", 9, { status: "completed", done: 10 })));
  await flush();
  runFrames();
  assert.equal(root.findAll("bw-output").length, 2);
  assert.equal(root.findAll("bw-outputs-more").length, 0);
});

test("a job whose item logs were cut says so; one whose logs were not, does not", () => {
  const { view, root, runFrames } = mount();
  view.update(info(snap("a", 2)));
  runFrames();
  assert.equal(root.find("bw-logs-cut").hidden, true);
  view.update(info({ ...snap("a", 3, { status: "completed", done: 10 }), logs_cut: true }));
  runFrames();
  const note = root.find("bw-logs-cut");
  assert.equal(note.hidden, false);
  assert.equal(note.textContent, "item logs were cut: the job reached its log limit");
  view.update(info({ ...snap("a", 4, { status: "completed", done: 10 }), logs_cut: false }));
  runFrames();
  assert.equal(root.find("bw-logs-cut").hidden, true);
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

test("the job id is shown, and carried as data-job-id", () => {
  const { view, root, runFrames } = mount();
  view.update(info(snap("3f2ab1c4d5e6", 2)));
  runFrames();
  assert.equal(root.find("bw-id").textContent, "3f2ab1c4d5e6");
  assert.equal(root.getAttribute("data-job-id"), "3f2ab1c4d5e6");
  assert.equal(root.find("bw-name").textContent, "job 3f2ab1c4d5e6");
});

test("items a finished job did not run read 'not run', not 'pending'", () => {
  const { view, root, runFrames } = mount();
  view.update(info(snap("a", 7, { status: "cancelled", done: 12, failed: 10, total: 120 })));
  runFrames();
  assert.equal(root.find("bw-counts").textContent, "12 done · 10 failed · 98 not run of 120");
  assert.equal(
    countsText(snap("a", 3, { status: "queued", done: 12, total: 120 })),
    "12 done · 0 failed · 108 pending of 120",
  );
});

test("failed items waiting for another attempt read 'N retrying' beside pending", () => {
  const { view, root, runFrames } = mount();
  view.update(info(snap("a", 5, { status: "processing", done: 90, failed: 2, total: 120, retrying: 3 })));
  runFrames();
  assert.equal(root.find("bw-counts").textContent, "90 done · 2 failed · 28 pending (3 retrying) of 120");
  view.update(info(snap("a", 6, { status: "completed", done: 118, failed: 2, total: 120, retrying: 0 })));
  runFrames();
  assert.equal(root.find("bw-counts").textContent, "118 done · 2 failed · 0 not run of 120");
});

test("where the job runs: on Dask with its workers, its processes or threads", () => {
  const { view, root, runFrames } = mount();
  view.update(info(snap("a", 2, { executor: "dask", workers: 4 })));
  runFrames();
  assert.equal(root.find("bw-where").textContent, "on Dask · 4 workers");
  assert.equal(root.getAttribute("data-executor"), "dask");
  view.update(info(snap("a", 3, { executor: "dask", workers: 1 })));
  runFrames();
  assert.equal(root.find("bw-where").textContent, "on Dask · 1 worker", "a worker lost shows");
  view.update(info(snap("a", 4, { executor: "dask", workers: null, status: "completed", done: 10 })));
  runFrames();
  assert.equal(root.find("bw-where").textContent, "on Dask");
  const where = (fields) => whereText(snap("b", 1, fields));
  assert.equal(where({ executor: "process", workers: 2 }), "on 2 processes");
  assert.equal(where({ executor: "thread", workers: 1 }), "on 1 thread");
  assert.equal(where({ executor: "thread", workers: 4, status: "completed" }), "");
  assert.equal(where({}), "", "an older server that does not say");
});

test("right after Retry no rate is shown until an item of the new run ends", () => {
  const { view, root, runFrames } = mount();
  view.update(info({ ...snap("a", 8, { done: 4 }), rate: null, eta: null }));
  runFrames();
  assert.equal(root.find("bw-rate").textContent, "");
  assert.equal(root.find("bw-eta").textContent, "");
  view.update(info({ ...snap("a", 9, { done: 5 }), rate: 0 }));
  runFrames();
  assert.equal(root.find("bw-rate").textContent, "", "never '0.0 items/s'");
  view.update(info(snap("a", 10, { done: 6 })));
  runFrames();
  assert.equal(root.find("bw-rate").textContent, "1.5 items/s");
});

describe("the failed-items list across a Retry", () => {
  const failedPage = (errors) => () => ({
    items: errors.map((error, i) => ({ index: [1, 4][i], input: [1, 4][i], status: "failed", error, traceback: null })),
    total: errors.length,
  });
  const run = (version, status, failed, finishedAt) => ({
    ...snap("a", version, { status, done: 6 - failed - (status === "completed" ? 0 : 6 - failed), failed, total: 6 }),
    done: status === "completed" ? 6 - failed : 0,
    pending: status === "completed" ? 0 : 6 - failed,
    finished_at: finishedAt,
  });

  test("a Retry that fails as many items fetches and shows the new list", async () => {
    let errors = ["ValueError: first run"];
    const { view, root, calls, runFrames } = mount({ failedItems: () => failedPage(errors)() });
    view.update(info(run(9, "completed", 2, "2024-01-01T00:01:00Z")));
    await flush();
    runFrames();
    assert.match(root.find("bw-failures").textContent, /first run/);
    errors = ["ValueError: second run", "ValueError: second run"];
    view.update(info(run(10, "queued", 0, null)));
    runFrames();
    assert.equal(root.find("bw-failures").hidden, true, "no list while nothing has failed");
    view.update(info(run(11, "processing", 0, null)));
    view.update(info(run(14, "completed", 2, "2024-01-01T00:02:00Z")));
    await flush();
    runFrames();
    assert.equal(calls.filter(([kind]) => kind === "failedItems").length, 2);
    assert.equal(root.find("bw-failures").hidden, false, "the list is back after the Retry");
    assert.equal(root.findAll("bw-failure").length, 2);
    assert.match(root.find("bw-failures").textContent, /second run/);
  });

  test("also when the stream coalesced the Retry into one terminal snapshot", async () => {
    let errors = ["ValueError: first run"];
    const { view, root, calls, runFrames } = mount({ failedItems: () => failedPage(errors)() });
    view.update(info(run(9, "completed", 2, "2024-01-01T00:01:00Z")));
    await flush();
    errors = ["ValueError: second run"];
    view.update(info(run(14, "completed", 2, "2024-01-01T00:02:00Z")));
    await flush();
    runFrames();
    assert.equal(calls.filter(([kind]) => kind === "failedItems").length, 2);
    assert.match(root.find("bw-failures").textContent, /second run/);
  });
});

describe("a deleted job", () => {
  test("reads deleted, hides Cancel and Retry, and asks for nothing", async () => {
    const { view, root, calls, runFrames, tick } = mount();
    const last = snap("a", 9, { status: "failed", done: 4, failed: 2, total: 6 });
    view.update(info(last, { deleted: true, connection: "closed" }));
    for (let i = 0; i < 5; i += 1) tick();
    await flush();
    runFrames();
    assert.equal(root.getAttribute("data-status"), "deleted");
    assert.equal(root.getAttribute("data-connection"), "closed");
    assert.equal(root.find("bw-status").textContent, "deleted");
    assert.equal(root.find("bw-cancel").hidden, true);
    assert.equal(root.find("bw-retry").hidden, true);
    assert.match(root.find("bw-job-error").textContent, /not on the server any more: it was deleted/);
    assert.deepEqual(calls, [], "no fetch of failed items or outputs for a deleted job");
  });

  test("after a reload (no snapshot at all) it reads deleted, not loading", () => {
    const { view, root, runFrames } = mount();
    view.update({ ...info(snap("a", 1), { deleted: true, connection: "closed" }), snapshot: null });
    runFrames();
    assert.equal(root.find("bw-status").textContent, "deleted");
    assert.equal(root.find("bw-id").textContent, "a");
    assert.equal(root.find("bw-retry").hidden, true);
  });

  test("a 404 for its outputs says the job is gone, once, and is not asked again", async () => {
    const { view, calls, tick } = mount({ notFound: true });
    view.update(info(snap("a", 9, { status: "completed", done: 8, failed: 2 })));
    await flush();
    for (let i = 0; i < 5; i += 1) tick();
    await flush();
    assert.equal(calls.filter(([kind]) => kind === "outputs").length, 1);
    assert.equal(calls.filter(([kind]) => kind === "failedItems").length, 1);
    assert.ok(calls.some(([kind]) => kind === "gone"));
  });
});
