// The page's one EventSource and its explicit phase (stream.js), on a virtual clock.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Stream } from "../src/stream.js";
import { FakeClock, fakeEventSourceClass } from "./helpers.js";

function setup() {
  const clock = new FakeClock();
  const ES = fakeEventSourceClass();
  const controller = new AbortController();
  const seen = [];
  const stream = new Stream(
    "/api/batch/events",
    {
      EventSource: ES,
      timers: clock.timers,
      now: clock.now,
      reconnectDelay: () => 5000,
      trace: () => {},
      signal: controller.signal,
    },
    {
      onOpen: (browserRetry) => seen.push(["open", browserRetry]),
      onError: (entered) => seen.push(["error", entered]),
      onRebuild: () => seen.push(["rebuild"]),
      onMessage: (type, data) => seen.push([type, JSON.parse(data).id]),
    },
  );
  return { clock, ES, controller, seen, stream };
}

test("phases: idle, connecting, open; a browser retry goes down and back on the same source", () => {
  const { ES, seen, stream } = setup();
  assert.equal(stream.phase, "idle");
  assert.equal(ES.instances.length, 0, "nothing is built before start");
  stream.start();
  assert.equal(stream.phase, "connecting");
  ES.last.open();
  assert.equal(stream.phase, "open");
  assert.equal(stream.downSince, null);
  ES.last.emit("progress", { id: "a" });
  ES.last.fail({ closed: false });
  assert.equal(stream.phase, "down");
  assert.notEqual(stream.downSince, null);
  ES.last.fail({ closed: false }); // still retrying: not a new descent
  ES.last.open();
  assert.equal(stream.phase, "open");
  assert.equal(ES.instances.length, 1, "the browser's own retry needs no new EventSource");
  assert.deepEqual(seen, [
    ["open", false],
    ["progress", "a"],
    ["error", true],
    ["error", false],
    ["open", true],
  ]);
});

test("a source closed for good is rebuilt after reconnectDelay; the stream stays down until open", async () => {
  const { clock, ES, seen, stream } = setup();
  stream.start();
  ES.last.open();
  ES.last.fail({ closed: true });
  assert.equal(stream.phase, "down");
  await clock.advance(4999);
  assert.equal(ES.instances.length, 1, "not before reconnectDelay");
  await clock.advance(1);
  assert.equal(ES.instances.length, 2);
  assert.equal(stream.phase, "down", "a rebuilt source is not open yet");
  ES.last.open();
  assert.equal(stream.phase, "open");
  assert.deepEqual(seen, [["open", false], ["error", true], ["rebuild"], ["open", false]]);
});

test("a first connection that fails is down without ever having opened", () => {
  const { ES, stream } = setup();
  stream.start();
  ES.last.fail({ closed: true });
  assert.equal(stream.phase, "down");
  assert.equal(stream.everOpened, false);
});

test("events of a replaced source are ignored", () => {
  const { ES, seen, stream } = setup();
  stream.start();
  const old = ES.last;
  old.open();
  stream.restart();
  assert.equal(stream.phase, "down");
  assert.equal(old.readyState, ES.CLOSED);
  old.readyState = ES.OPEN; // a late event from the old connection
  old.emit("progress", { id: "late" });
  assert.deepEqual(seen, [["open", false], ["rebuild"]]);
});

test("aborting the signal closes the stream for good and leaves no timer", async () => {
  const { clock, ES, controller, stream } = setup();
  stream.start();
  ES.last.fail({ closed: true }); // a rebuild is now pending
  assert.equal(clock.pending, 1);
  controller.abort();
  assert.equal(stream.phase, "closed");
  assert.equal(clock.pending, 0);
  await clock.advance(10_000);
  assert.equal(ES.instances.length, 1, "no rebuild after close");
});
