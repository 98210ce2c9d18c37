// The kernel transport of SPEC §12: the `auto` choice, and a job followed through the model.

/** Follow `jobId` through the kernel's channel: the hub's watches over a KernelSource. */
const followThroughKernel = (jobId, listener, { model, ...options }) =>
  subscribe(jobId, listener, { source: new KernelSource(model), ...options });
import assert from "node:assert/strict";
import { test } from "node:test";

import { subscribe } from "../src/connection.js";
import { AUTO_PROBE_MS, chooseTransport, KernelSource } from "../src/kernel.js";
import { FakeClock, flush, snap } from "./helpers.js";

function kernelModel(snapshot = {}) {
  const state = { kernel_snapshot: snapshot };
  const handlers = new Map();
  return {
    state,
    sent: [],
    send(content) {
      this.sent.push(content);
    },
    get: (name) => state[name],
    on: (event, fn) => handlers.set(event, [...(handlers.get(event) || []), fn]),
    off: (event, fn) => handlers.set(event, (handlers.get(event) || []).filter((h) => h !== fn)),
    /** What the kernel does: set the trait, which fires change:kernel_snapshot. */
    push(value) {
      state.kernel_snapshot = value;
      for (const fn of handlers.get("change:kernel_snapshot") || []) fn();
    },
    listeners: () => [...handlers.values()].reduce((n, list) => n + list.length, 0),
  };
}

test("auto uses the page's server when it answers for the job, else the kernel", async () => {
  const clock = new FakeClock();
  const signal = new AbortController().signal;
  const options = { timers: clock.timers, signal };
  assert.equal(await chooseTransport("server", () => Promise.reject(new Error("x")), options), "server");
  assert.equal(await chooseTransport("kernel", () => Promise.resolve({}), options), "kernel");
  assert.equal(await chooseTransport("auto", () => Promise.resolve({}), options), "server");
  const notFound = () => Promise.reject(Object.assign(new Error("Not Found"), { status: 404 }));
  assert.equal(await chooseTransport("auto", notFound, options), "kernel", "no extension there");
  const gone = () => Promise.reject(Object.assign(new Error("no job a"), { status: 404, json: true }));
  assert.equal(await chooseTransport("auto", gone, options), "server", "the job was deleted");

  // A server that never answers (a proxy that blocks api/batch/): the kernel after 2 s.
  let aborted = false;
  const hanging = (/** @type {AbortSignal} */ probeSignal) =>
    new Promise((_, reject) => {
      probeSignal.addEventListener("abort", () => {
        aborted = true;
        reject(new Error("aborted"));
      });
    });
  const choice = chooseTransport("auto", hanging, options);
  await clock.advance(AUTO_PROBE_MS - 1);
  assert.equal(aborted, false);
  await clock.advance(1);
  assert.equal(await choice, "kernel");
  assert.equal(clock.pending, 0, "no timer left behind");
});

test("through the kernel: newer snapshots only, 'kernel' as the connection", async () => {
  const clock = new FakeClock();
  const model = kernelModel(snap("a", 2, { done: 1 }));
  const infos = [];
  const controller = new AbortController();
  followThroughKernel("a", (info) => infos.push(info), {
    model,
    timers: clock.timers,
    now: clock.now,
    signal: controller.signal,
  });
  assert.equal(infos.at(-1).connection, "kernel");
  assert.equal(infos.at(-1).snapshot.done, 1, "the snapshot the kernel already sent is shown");

  model.push(snap("a", 5, { done: 4 }));
  model.push(snap("a", 3, { done: 2 })); // older: ignored
  model.push(snap("b", 9, { done: 9 })); // another job: ignored
  assert.equal(infos.at(-1).snapshot.version, 5);
  assert.equal(infos.at(-1).snapshot.done, 4);

  model.push({ ...snap("a", 6), status: "deleted" });
  assert.equal(infos.at(-1).deleted, true);
  assert.equal(infos.at(-1).connection, "closed");
  controller.abort();
  assert.equal(model.listeners(), 0);
  assert.equal(clock.pending, 0);
});

test("the watchdog asks the kernel for a fresh snapshot when updates stop", async () => {
  const clock = new FakeClock();
  const model = kernelModel(snap("a", 1));
  const controller = new AbortController();
  const infos = [];
  followThroughKernel("a", (info) => infos.push(info), {
    model,
    timers: clock.timers,
    now: clock.now,
    signal: controller.signal,
    watchdogInterval: 1000,
    // Between two ticks: the page's rule (age >= watchdogTimeout) polls at the tick after it.
    watchdogTimeout: 3500,
  });
  await clock.advance(3000);
  assert.deepEqual(model.sent, [], "not before watchdogTimeout");
  await clock.advance(1000);
  assert.deepEqual(model.sent, [{ type: "refresh" }]);
  assert.equal(infos.at(-1).polls, 1);
  model.push(snap("a", 2, { status: "completed", done: 10 }));
  await clock.advance(60_000);
  assert.equal(model.sent.length, 1, "a finished job is not refreshed");
  controller.abort();
  await flush();
});
