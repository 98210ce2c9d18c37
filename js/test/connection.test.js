// One test per row of the seed design's Error Recovery Matrix, plus the
// sharing rules of SPEC §8. Time is virtual (FakeClock), the stream a
// hand-written EventSource, the server a fake fetch.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { DEFAULTS, hubStats, REGISTRY_KEY, subscribe } from "../src/connection.js";
import { flush, pageEnvironment, snap } from "./helpers.js";

const environment = () => pageEnvironment();

/** A fresh page with one widget following `jobId` (at v1) on an open stream. */
async function liveWidget(jobId) {
  const env = environment();
  env.server.jobs.set(jobId, snap(jobId, 1));
  const widget = follow(env, jobId);
  env.ES.last.open();
  await flush();
  return { env, widget };
}

function follow(env, jobId, extra = {}) {
  const seen = [];
  const unsubscribe = subscribe(jobId, (info) => seen.push(info), { ...env.options, ...extra });
  return {
    seen,
    unsubscribe,
    get last() {
      return seen.at(-1);
    },
    get version() {
      const { snapshot } = seen.at(-1);
      return snapshot ? snapshot.version : null;
    },
  };
}

describe("error recovery matrix", () => {
  test("normal operation: events flow, state live, no watchdog polls", async () => {
    const env = environment();
    env.server.jobs.set("a", snap("a", 1));
    const widget = follow(env, "a");
    assert.equal(widget.last.connection, "connecting");
    assert.equal(env.ES.instances.length, 1);
    assert.equal(env.ES.last.url, "/base/api/batch/events");

    env.ES.last.open();
    await flush();
    assert.equal(widget.last.connection, "live");
    assert.equal(env.server.polls("a"), 1, "one catch-up poll on open");
    assert.equal(widget.version, 1);

    for (let v = 2; v <= 13; v += 1) {
      await env.clock.advance(10_000);
      env.ES.last.emit("progress", snap("a", v, { done: v - 2 }));
      if (v % 2) env.ES.last.emit("heartbeat", { time: env.clock.now() / 1000, epoch: "e1" });
    }
    assert.equal(widget.version, 13);
    assert.equal(widget.last.snapshot.done, 11);
    env.ES.last.emit("complete", snap("a", 14, { status: "completed", done: 10 }));
    for (let i = 0; i < 20; i += 1) {
      await env.clock.advance(15_000);
      env.ES.last.emit("heartbeat", { time: env.clock.now() / 1000, epoch: "e1" });
    }

    assert.equal(widget.last.snapshot.status, "completed");
    assert.equal(widget.last.connection, "live");
    assert.equal(widget.last.polls, 1);
    assert.equal(widget.last.reconnects, 0);
    assert.equal(env.server.polls("a"), 1, "the watchdog stayed dormant");
    assert.equal(env.ES.instances.length, 1);
    widget.unsubscribe();
  });

  test("brief drop: a new EventSource after reconnect_delay, then a catch-up poll", async () => {
    const env = environment();
    env.server.jobs.set("a", snap("a", 1));
    const widget = follow(env, "a", { reconnectDelay: 5000 });
    env.ES.last.open();
    await flush();
    env.ES.last.emit("progress", snap("a", 2, { done: 1 }));

    env.ES.last.fail({ closed: true });
    assert.equal(widget.last.connection, "reconnecting");
    env.server.jobs.set("a", snap("a", 4, { done: 3 })); // progress made while away

    await env.clock.advance(4999);
    assert.equal(env.ES.instances.length, 1, "not before reconnect_delay");
    assert.equal(widget.last.connection, "reconnecting");
    await env.clock.advance(1);
    assert.equal(env.ES.instances.length, 2, "rebuilt after reconnect_delay");
    assert.equal(env.ES.instances[0].readyState, env.ES.CLOSED);
    assert.equal(widget.last.reconnects, 1);
    assert.equal(widget.last.connection, "reconnecting");

    env.ES.last.open();
    await flush();
    assert.equal(widget.last.connection, "live");
    assert.equal(env.server.polls("a"), 2, "catch-up poll on the new open");
    assert.equal(widget.version, 4);
    assert.equal(widget.last.snapshot.done, 3);
    widget.unsubscribe();
  });

  test("brief drop the browser retries itself (CONNECTING): no second EventSource", async () => {
    const { env, widget } = await liveWidget("a");
    env.ES.last.fail({ closed: false });
    assert.equal(widget.last.connection, "reconnecting");
    await env.clock.advance(10_000);
    assert.equal(env.ES.instances.length, 1);
    env.server.jobs.set("a", snap("a", 3));
    env.ES.last.open();
    await flush();
    assert.equal(widget.last.connection, "live");
    assert.equal(widget.last.reconnects, 1);
    assert.equal(widget.version, 3);
    widget.unsubscribe();
  });

  test("extended drop: polls after watchdog_timeout, at watchdog cadence, live again on open", async () => {
    const { env, widget } = await liveWidget("a");
    env.ES.last.emit("progress", snap("a", 2));
    assert.equal(env.server.polls("a"), 1);

    env.ES.behaviour = "fail"; // every rebuilt stream fails too
    env.ES.last.fail({ closed: true });
    await env.clock.advance(59_999);
    assert.equal(widget.last.connection, "reconnecting");
    assert.equal(env.server.polls("a"), 1, "no poll before watchdog_timeout");
    assert.ok(env.ES.instances.length >= 11, "kept trying to reconnect every 5 s");

    await env.clock.advance(1);
    assert.equal(widget.last.connection, "polling");
    assert.equal(env.server.polls("a"), 2, "the watchdog polled at watchdog_timeout");

    env.server.jobs.set("a", snap("a", 5, { done: 4 }));
    await env.clock.advance(15_000);
    assert.equal(env.server.polls("a"), 3);
    assert.equal(widget.version, 5, "UI updated via polling while SSE is down");
    await env.clock.advance(30_000);
    assert.equal(env.server.polls("a"), 5, "one poll per watchdog_interval");
    assert.equal(widget.last.connection, "polling");

    env.ES.behaviour = "manual";
    await env.clock.advance(5000);
    const stream = env.ES.last;
    assert.equal(stream.readyState, env.ES.CONNECTING);
    env.server.jobs.set("a", snap("a", 7, { done: 6 }));
    stream.open();
    await flush();
    assert.equal(widget.last.connection, "live");
    assert.equal(widget.version, 7);
    const polls = env.server.polls("a");
    stream.emit("progress", snap("a", 8));
    await env.clock.advance(30_000);
    stream.emit("progress", snap("a", 9));
    await env.clock.advance(20_000);
    assert.equal(env.server.polls("a"), polls, "polling stops once live again");
    widget.unsubscribe();
  });

  test("extended drop mid-interval: polls exactly watchdog_timeout after the drop", async () => {
    const { env, widget } = await liveWidget("a");
    assert.equal(env.server.polls("a"), 1);

    await env.clock.advance(7_000); // between two watchdog ticks
    env.ES.last.emit("progress", snap("a", 2));
    env.ES.behaviour = "fail";
    env.ES.last.fail({ closed: true });
    await env.clock.advance(59_999);
    assert.equal(widget.last.connection, "reconnecting");
    assert.equal(env.server.polls("a"), 1, "no poll before watchdog_timeout");
    env.server.jobs.set("a", snap("a", 4, { done: 3 }));
    await env.clock.advance(1);
    assert.equal(widget.last.connection, "polling", "polling as soon as the timeout is up");
    assert.equal(env.server.polls("a"), 2, "and it really polls then, not at the next tick");
    assert.equal(widget.version, 4);
    widget.unsubscribe();
  });

  test("SSE dead from the start: the job still reaches completed by polling alone", async () => {
    const env = environment();
    env.ES.behaviour = "fail";
    env.server.jobs.set("a", snap("a", 1));
    const widget = follow(env, "a");
    await flush();
    assert.equal(widget.last.connection, "polling");
    assert.equal(env.server.polls("a"), 1, "polls at once: nothing was ever shown");
    assert.equal(widget.version, 1);

    env.server.jobs.set("a", snap("a", 3, { done: 5 }));
    await env.clock.advance(15_000);
    assert.equal(widget.last.snapshot.done, 5);
    env.server.jobs.set("a", snap("a", 9, { status: "completed", done: 10 }));
    await env.clock.advance(15_000);
    assert.equal(widget.last.snapshot.status, "completed");
    const polls = env.server.polls("a");
    await env.clock.advance(120_000);
    assert.equal(env.server.polls("a"), polls, "no polling of a terminal job");
    assert.equal(widget.last.connection, "polling");
    widget.unsubscribe();
  });

  test("broadcaster silent while the stream stays open: the watchdog notices and polls", async () => {
    const { env, widget } = await liveWidget("a");
    assert.equal(env.server.polls("a"), 1);
    env.server.jobs.set("a", snap("a", 6, { done: 5 })); // changes no event reports

    let pollAt = null;
    for (let t = 0; t < 120_000 && pollAt === null; t += 5000) {
      await env.clock.advance(5000);
      env.ES.last.emit("heartbeat", { time: 0, epoch: "e1" }); // alive, but no job news
      if (env.server.polls("a") > 1) pollAt = env.clock.elapsed;
    }
    const { watchdogTimeout, watchdogInterval } = DEFAULTS;
    assert.ok(pollAt !== null && pollAt <= watchdogTimeout + watchdogInterval, `polled at ${pollAt}`);
    assert.equal(widget.version, 6);
    assert.equal(widget.last.connection, "live");
    assert.equal(env.ES.instances.length, 1, "heartbeats keep the stream");
    widget.unsubscribe();
  });

  test("a mute stream (no heartbeats either) is polled and rebuilt", async () => {
    const { env, widget } = await liveWidget("a");
    env.server.jobs.set("a", snap("a", 2));
    await env.clock.advance(DEFAULTS.watchdogTimeout + DEFAULTS.watchdogInterval);
    assert.ok(env.server.polls("a") >= 2);
    assert.equal(widget.version, 2);
    assert.equal(env.ES.instances.length, 2, "the silent stream was replaced");
    widget.unsubscribe();
  });

  test("a stale poll answer never overwrites a newer SSE snapshot", async () => {
    const env = environment();
    env.server.jobs.set("a", snap("a", 3, { done: 2 }));
    const widget = follow(env, "a");
    env.ES.last.open(); // the catch-up poll leaves now and answers v3
    env.ES.last.emit("progress", snap("a", 5, { done: 4 }));
    await flush();
    assert.equal(env.server.polls("a"), 1);
    assert.equal(widget.version, 5);
    assert.equal(widget.last.snapshot.done, 4);
    // And an older SSE event (a coalescing race) is ignored as well.
    env.ES.last.emit("progress", snap("a", 4, { done: 3 }));
    assert.equal(widget.version, 5);
    widget.unsubscribe();
  });
});

describe("sharing one EventSource per page", () => {
  test("two widgets share one stream; closing one keeps the other receiving", async () => {
    const env = environment();
    env.server.jobs.set("a", snap("a", 1));
    env.server.jobs.set("b", snap("b", 1));
    const first = follow(env, "a");
    const second = follow(env, "b");
    assert.equal(env.ES.instances.length, 1);
    assert.ok(env.registry[REGISTRY_KEY] instanceof Map);
    env.ES.last.open();
    await flush();
    assert.equal(first.last.connection, "live");
    assert.equal(second.last.connection, "live");

    env.ES.last.emit("progress", snap("a", 2, { done: 1 }));
    env.ES.last.emit("progress", snap("b", 2, { done: 7 }));
    assert.equal(first.last.snapshot.done, 1);
    assert.equal(second.last.snapshot.done, 7);

    first.unsubscribe();
    assert.equal(first.last.connection, "closed");
    assert.equal(env.ES.last.readyState, env.ES.OPEN, "the stream stays for the other widget");
    env.ES.last.emit("progress", snap("b", 3, { done: 8 }));
    assert.equal(second.last.snapshot.done, 8);
    assert.deepEqual(hubStats(env.registry)[0].jobs, ["b"]);
    second.unsubscribe();
  });

  test("two widgets of the same job share polls and snapshots", async () => {
    const env = environment();
    env.server.jobs.set("a", snap("a", 1));
    const first = follow(env, "a");
    env.ES.last.open();
    await flush();
    const second = follow(env, "a");
    await flush();
    assert.equal(second.version, 1, "a late widget sees the current snapshot at once");
    assert.equal(env.server.polls("a"), 1);
    await env.clock.advance(60_000);
    assert.equal(env.server.polls("a"), 2, "one watchdog poll for both widgets");
    first.unsubscribe();
    second.unsubscribe();
  });

  test("destroying the last widget closes the stream and clears every timer", async () => {
    const env = environment();
    env.server.jobs.set("a", snap("a", 1));
    env.server.jobs.set("b", snap("b", 1));
    const controllers = [new AbortController(), new AbortController()];
    follow(env, "a", { signal: controllers[0].signal });
    const other = follow(env, "b", { signal: controllers[1].signal, debug: true });
    env.ES.last.open();
    await flush();
    env.ES.last.fail({ closed: true }); // a reconnect timer is now pending
    assert.ok(env.clock.pending >= 3, "watchdogs and the reconnect timer");

    controllers[0].abort();
    assert.ok(env.clock.pending > 0);
    controllers[1].abort();
    assert.equal(other.last.connection, "closed");
    assert.equal(env.clock.pending, 0, "no timer left behind");
    assert.ok(env.ES.instances.every((es) => es.readyState === env.ES.CLOSED));
    assert.equal(env.registry[REGISTRY_KEY].size, 0);

    const calls = env.server.calls.length;
    const streams = env.ES.instances.length;
    await env.clock.advance(600_000);
    assert.equal(env.server.calls.length, calls);
    assert.equal(env.ES.instances.length, streams);
  });

  test("a widget created after the stream closed opens a new one", async () => {
    const env = environment();
    const first = follow(env, "a");
    first.unsubscribe();
    const second = follow(env, "a");
    assert.equal(env.ES.instances.length, 2);
    assert.equal(second.last.connection, "connecting");
    second.unsubscribe();
    assert.equal(env.clock.pending, 0);
  });
});

describe("diagnostics and options", () => {
  test("debug logs transitions, polls and watchdog firings with timestamps", async () => {
    const env = environment();
    env.server.jobs.set("a", snap("a", 1));
    const widget = follow(env, "a", { debug: true });
    env.ES.last.open();
    await flush();
    await env.clock.advance(15_000);
    const text = env.logs.join("\n");
    assert.match(text, /\[batch_widget 2024-01-01T00:00:\d\d\.\d{3}Z\] a: connecting → live/);
    assert.match(text, /poll a \(catch-up on open\)/);
    assert.match(text, /watchdog a: last update 15 s ago/);
    widget.unsubscribe.update({ debug: false });
    const count = env.logs.length;
    await env.clock.advance(15_000);
    assert.equal(env.logs.length, count, "quiet once debug is off");
    widget.unsubscribe();
  });

  test("a page token goes in the Authorization header of polls, never into a URL", async () => {
    const env = environment();
    env.server.jobs.set("a b", snap("a b", 1));
    const widget = follow(env, "a b", { token: "s3cret", baseUrl: "/user/x" });
    assert.equal(env.ES.last.url, "/user/x/api/batch/events", "the cookie authenticates it");
    env.ES.last.open();
    await flush();
    const [poll] = env.server.calls;
    assert.equal(poll.url, "/user/x/api/batch/jobs/a%20b");
    assert.equal(poll.init.headers.Authorization, "token s3cret");
    assert.equal(poll.init.credentials, "same-origin");
    assert.ok(!JSON.stringify(widget.seen).includes("s3cret"));
    widget.unsubscribe();
  });

  test("a stream refused (a token but no login cookie) falls back to polling with the header", async () => {
    const env = environment();
    env.ES.behaviour = "fail"; // the server answers 403: the EventSource closes for good
    env.server.jobs.set("a", snap("a", 1));
    const widget = follow(env, "a", { token: "s3cret" });
    await flush();
    assert.equal(widget.last.connection, "polling", "nothing shown yet: it polls at once");
    env.server.jobs.set("a", snap("a", 2, { done: 4 }));
    await env.clock.advance(60_000);
    assert.equal(widget.version, 2, "kept current by polls while every stream is refused");
    assert.ok(env.ES.instances.length > 2, "the stream is rebuilt every reconnect_delay");
    // The header's answer sets the login cookie (jupyter_server does): the next stream opens.
    env.ES.behaviour = "manual";
    await env.clock.advance(DEFAULTS.reconnectDelay);
    env.ES.last.open();
    await flush();
    assert.equal(widget.last.connection, "live");
    const urls = [...env.ES.instances.map((es) => es.url), ...env.server.calls.map((c) => c.url)];
    assert.ok(urls.every((url) => !url.includes("token")), urls.join(" "));
    assert.ok(env.server.calls.every((c) => c.init.headers.Authorization === "token s3cret"));
    widget.unsubscribe();
  });

  test("a failing poll reports an error and keeps the last snapshot", async () => {
    const { env, widget } = await liveWidget("a");
    env.server.down = true;
    await env.clock.advance(60_000);
    assert.equal(widget.last.error, "Failed to fetch");
    assert.equal(widget.version, 1);
    env.server.down = false;
    await env.clock.advance(15_000);
    assert.equal(widget.last.error, null);
    widget.unsubscribe();
  });
});

describe("deleted jobs", () => {
  test("a deleted event: the widget reads deleted and closed, and nothing is asked for it again", async () => {
    const { env, widget } = await liveWidget("a");
    env.server.jobs.set("b", snap("b", 1));
    const other = follow(env, "b");
    await flush();
    env.ES.last.emit("complete", snap("a", 2, { status: "completed", done: 10 }));
    env.server.jobs.delete("a");
    env.ES.last.emit("deleted", { ...snap("a", 3, { status: "completed", done: 10 }), status: "deleted" });
    await flush();
    assert.equal(widget.last.deleted, true);
    assert.equal(widget.last.connection, "closed");
    assert.equal(widget.last.snapshot.status, "completed", "the last known state stays shown");
    const requests = env.server.calls.length;
    env.ES.last.fail(); // the stream drops and stays down: polling time for active jobs
    await env.clock.advance(5 * 60_000);
    const asked = env.server.calls.slice(requests).filter((call) => call.url.includes("/jobs/a"));
    assert.deepEqual(asked, [], "no request for the deleted job");
    assert.ok(env.server.polls("b") > 1, "the other job is still polled");
    assert.equal(other.last.deleted, false);
    widget.unsubscribe();
    other.unsubscribe();
  });

  test("after a reload, a job the server no longer has reads deleted after one 404", async () => {
    const env = environment();
    const widget = follow(env, "gone");
    env.ES.last.open();
    await flush();
    assert.equal(env.server.polls("gone"), 1);
    assert.equal(widget.last.deleted, true);
    assert.equal(widget.last.connection, "closed");
    assert.equal(widget.last.snapshot, null);
    await env.clock.advance(5 * 60_000);
    env.ES.last.fail();
    await env.clock.advance(5 * 60_000);
    assert.equal(env.server.polls("gone"), 1, "never polled again");
    const late = follow(env, "gone");
    await flush();
    assert.equal(late.last.deleted, true, "a second widget of the same id reads deleted at once");
    assert.equal(env.server.polls("gone"), 1);
    widget.unsubscribe();
    late.unsubscribe();
  });
});
