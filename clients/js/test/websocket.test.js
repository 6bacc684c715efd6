import assert from "node:assert/strict";
import { test } from "node:test";

import { WebSocketTransport } from "../src/transports/websocket.js";
import { FakeWebSocket, RecordingHost, withFakeWebSocket } from "./fakes.js";

/**
 * A /ws transport opened over a FakeWebSocket for `channels`, each channel's subscribe
 * answered unless `answer` is false. Returns {host, transport, ws}.
 */
async function opened({ channels = ["news"], cursors = {}, answer = true } = {}) {
  const host = new RecordingHost(channels);
  for (const [name, cursor] of Object.entries(cursors)) host.channel(name).moveTo(cursor);
  const transport = new WebSocketTransport(host);
  await withFakeWebSocket(() => transport.open());
  const ws = FakeWebSocket.instances[0];
  ws.accept();
  if (answer) {
    for (const frame of ws.sent) {
      if (frame.type === "subscribe" && !frame.cursor) {
        ws.deliver({ type: "subscribed", ref: frame.ref, channel: frame.channel, cursor: frame.channel + "-0" });
      }
    }
  }
  host.calls = [];
  return { host, transport, ws };
}

test("opening subscribes every channel, with its cursor when it has one", async () => {
  const { ws } = await opened({ channels: ["a", "b"], cursors: { b: "b-4" }, answer: false });

  assert.deepEqual(ws.sent, [
    { type: "subscribe", channel: "a", ref: 1 },
    { type: "subscribe", channel: "b", ref: 2, cursor: "b-4" },
  ]);
});

test("a message is delivered without its type", async () => {
  const { host, ws } = await opened();

  ws.deliver({ type: "message", channel: "news", id: "news-1", event: "x", data: { n: 1 } });

  assert.deepEqual(host.callsOf("deliver"), [[{ channel: "news", id: "news-1", event: "x", data: { n: 1 } }]]);
});

test("a message before the subscribe is answered belongs to an old subscription: dropped", async () => {
  const { host, ws } = await opened({ answer: false });

  ws.deliver({ type: "message", channel: "news", id: "news-1", data: 1 });

  assert.deepEqual(host.calls, []);
});

test("subscribed without recovered stores the cursor and reports no gap", async () => {
  const { host, ws } = await opened({ answer: false });

  ws.deliver({ type: "subscribed", ref: 1, channel: "news", cursor: "e-7" });

  assert.equal(host.channel("news").active, true);
  assert.deepEqual(host.calls, [["subscribed", "news", "e-7", undefined]]);
});

test("subscribed with recovered: true keeps the old cursor: the replay moves it", async () => {
  const { host, ws } = await opened({ cursors: { news: "e-3" }, answer: false });

  ws.deliver({ type: "subscribed", ref: 1, channel: "news", cursor: "e-9", recovered: true });

  assert.deepEqual(host.calls, [["subscribed", "news", "e-3", true]]);
});

test("subscribed with recovered: false moves the cursor and reports a gap", async () => {
  const { host, ws } = await opened({ cursors: { news: "e-3" }, answer: false });

  ws.deliver({ type: "subscribed", ref: 1, channel: "news", cursor: "f-1", recovered: false });

  assert.deepEqual(host.calls, [
    ["subscribed", "news", "f-1", false],
    ["gap", "news", "f-1"],
  ]);
});

test("an answer to a subscribe since undone is ignored", async () => {
  const { host, ws } = await opened({ answer: false });

  ws.deliver({ type: "subscribed", ref: 99, channel: "news", cursor: "e-0" });

  assert.equal(host.channel("news").active, false);
  assert.deepEqual(host.calls, []);
});

test("a gap frame moves the channel's cursor to where delivery continues and reports a gap", async () => {
  const { host, ws } = await opened();
  ws.deliver({ type: "message", channel: "news", id: "e-1", data: 1 });
  host.channel("news").accept("e-1");

  ws.deliver({ type: "gap", channel: "news", cursor: "e-5" });

  assert.equal(host.channel("news").cursor, "e-5");
  assert.deepEqual(host.calls.at(-1), ["gap", "news", "e-5"]);
});

test("a gap frame for a channel not subscribed, or not answered yet, is ignored", async () => {
  const { host, ws } = await opened({ channels: ["news", "late"], answer: false });
  ws.deliver({ type: "subscribed", ref: 1, channel: "news", cursor: "e-0" });
  host.calls = [];

  ws.deliver({ type: "gap", channel: "elsewhere", cursor: "x-1" });
  ws.deliver({ type: "gap", channel: "late", cursor: "l-1" });

  assert.deepEqual(host.calls, []);
  assert.equal(host.channel("late").cursor, null);
});

test("a gap frame without a channel or cursor is a bad frame", async () => {
  const { host, ws } = await opened();

  ws.deliver({ type: "gap", channel: "news" });
  ws.deliver({ type: "gap", cursor: "e-1" });

  assert.deepEqual(host.calls, [["badFrame", "gap without a channel and cursor"], ["badFrame", "gap without a channel and cursor"]]);
  assert.equal(host.channel("news").cursor, "news-0");
});

test("malformed frames are reported as bad frames, never thrown", async () => {
  const { host, ws } = await opened();
  const garbage = [
    "not json",
    "[1, 2]",
    "null",
    "42",
    '{"no": "type"}',
    '{"type": "wat"}',
    '{"type": "subscribed", "channel": "news", "ref": 1}',
    new Uint8Array([0, 1]),
  ];

  for (const frame of garbage) assert.doesNotThrow(() => ws.deliver(frame));

  assert.deepEqual(host.callsOf("badFrame"), [
    ["frame is not JSON"],
    ["frame is not a JSON object"],
    ["frame is not a JSON object"],
    ["frame is not a JSON object"],
    ["unknown frame type"],
    ["unknown frame type"],
    ["subscribed without a cursor"],
    ["binary frame"],
  ]);
  assert.deepEqual(host.calls.length, garbage.length);
});

test("a frame whose handling throws is reported as a bad frame", async () => {
  const { host, ws } = await opened();
  host.deliver = () => {
    throw new Error("boom");
  };

  assert.doesNotThrow(() => ws.deliver({ type: "message", channel: "news", id: "e-1", data: 1 }));

  assert.deepEqual(host.calls, [["badFrame", "frame handling failed: Error: boom"]]);
});

test("a pong, an unsubscribed and an unknown published answer report nothing", async () => {
  const { host, ws } = await opened();

  ws.deliver({ type: "pong", ref: 7 });
  ws.deliver({ type: "unsubscribed", ref: 8, channel: "news" });
  ws.deliver({ type: "published", ref: 9, channel: "news", id: "e-1" });

  assert.deepEqual(host.calls, []);
});

test("published resolves the publish with its ref; an error with that ref rejects another", async () => {
  const { ws, transport } = await opened();
  const first = transport.publish({ channel: "news", data: 1 }, 1000);
  const second = transport.publish({ channel: "news", data: 2 }, 1000);
  const [one, two] = ws.sent.filter((frame) => frame.type === "publish");

  ws.deliver({ type: "published", ref: one.ref, channel: "news", id: "e-1" });
  ws.deliver({ type: "error", ref: two.ref, code: "permission_denied", message: "no" });

  assert.deepEqual(await first, { channel: "news", id: "e-1" });
  await assert.rejects(second, { name: "PushwireError", code: "permission_denied", message: "no" });
});

test("an error with a subscribe's ref fails that subscription", async () => {
  const { host, ws } = await opened({ answer: false });

  ws.deliver({ type: "error", ref: 1, code: "limit_exceeded", message: "too many" });

  assert.deepEqual(host.calls, [["subscriptionFailed", "news", "limit_exceeded"]]);
});

test("invalid_cursor on a subscribe with a cursor: a gap, then a subscribe from now", async () => {
  const { host, ws } = await opened({ cursors: { news: "old-1" }, answer: false });

  ws.deliver({ type: "error", ref: 1, code: "invalid_cursor", message: "unknown epoch" });

  assert.deepEqual(host.calls, [["gap", "news", null]]);
  assert.deepEqual(ws.sent.at(-1), { type: "subscribe", channel: "news", ref: 2 });
});

test("an error without a ref, or without a code, is reported as it is", async () => {
  const { host, ws } = await opened();

  ws.deliver({ type: "error", code: "internal", message: "oops" });
  ws.deliver({ type: "error" });

  assert.deepEqual(host.calls, [["reportError", "internal"], ["reportError", "unknown"]]);
});

test("closing rejects unanswered publishes with disconnected and closes the socket", async () => {
  const { ws, transport } = await opened();
  const pending = transport.publish({ channel: "news", data: 1 }, 1000);

  transport.close();

  await assert.rejects(pending, { code: "disconnected" });
  assert.equal(ws.closeCode, 1000);
  assert.equal(ws.onmessage, null);
});

test("the socket closing fails the transport with ws_closed", async () => {
  const { host, ws } = await opened();

  ws.onclose({ code: 1011, reason: "internal" });

  assert.deepEqual(host.calls, [["lost", "ws_closed", { closeCode: 1011, closeReason: "internal" }]]);
  assert.equal(ws.onclose, null);
});

test("a join or leave is passed on checked; one without a channel or user is a bad frame", async () => {
  const { host, ws } = await opened();

  ws.deliver({ type: "join", channel: "news", user: "alice", info: { name: "A" } });
  ws.deliver({ type: "leave", channel: "news", user: "alice" });
  ws.deliver({ type: "join", channel: "news" });
  ws.deliver({ type: "leave", user: "alice", info: null });
  ws.deliver({ type: "join", channel: "news", user: 7 });

  assert.deepEqual(host.calls, [
    ["presenceEvent", { type: "join", channel: "news", user: "alice", info: { name: "A" } }],
    ["presenceEvent", { type: "leave", channel: "news", user: "alice", info: null }],
    ["badFrame", "join without a channel and user"],
    ["badFrame", "leave without a channel and user"],
    ["badFrame", "join without a channel and user"],
  ]);
});

test("unsubscribed without a ref is the server taking the channel away; without a channel, a bad frame", async () => {
  const { host, ws } = await opened();

  ws.deliver({ type: "unsubscribed", channel: "news" });
  ws.deliver({ type: "unsubscribed", channel: "never-subscribed" });
  ws.deliver({ type: "unsubscribed" });

  assert.deepEqual(host.calls, [["unsubscribedByServer", "news"], ["badFrame", "unsubscribed without a channel"]]);
});

test("refresh asks the host for a token and sends it with a ref; none to have, nothing sent", async () => {
  const { host, ws } = await opened();
  host.nextToken = "fresh";

  ws.deliver({ type: "refresh" });
  await new Promise((resolve) => setTimeout(resolve, 0));
  host.nextToken = null;
  ws.deliver({ type: "refresh" });
  await new Promise((resolve) => setTimeout(resolve, 0));

  assert.deepEqual(host.callsOf("renewToken"), [[], []]);
  assert.deepEqual(
    ws.sent.filter((frame) => frame.type === "refresh"),
    [{ type: "refresh", token: "fresh", ref: ws.lastSent("refresh").ref }]
  );
});

test("the token goes into the URL, encoded", async () => {
  const host = new RecordingHost([]);
  host.currentToken = "a.b/c=";

  await withFakeWebSocket(() => new WebSocketTransport(host).open());

  assert.equal(FakeWebSocket.instances[0].url, "ws://pushwire.test/ws?token=a.b%2Fc%3D");
});

test("an error reply to a presence request rejects it; a presence answer no one asked for is ignored", async () => {
  const { host, ws, transport } = await opened();
  const answer = transport.presence("news", 1000);
  const ask = ws.lastSent("presence");

  ws.deliver({ type: "presence", ref: 999, channel: "news", members: [] });
  ws.deliver({ type: "error", ref: ask.ref, code: "permission_denied", message: "not subscribed" });

  await assert.rejects(answer, { code: "permission_denied" });
  assert.deepEqual(host.calls, []);
});
