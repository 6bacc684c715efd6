import assert from "node:assert/strict";
import { test } from "node:test";

import { PollTransport } from "../src/transports/poll.js";
import { SSETransport } from "../src/transports/sse.js";
import { RecordingHost } from "./fakes.js";

/** A host over `channels`, each at cursor "<name>-0". */
function hostAt(channels) {
  const host = new RecordingHost(channels);
  for (const name of channels) host.channel(name).moveTo(name + "-0");
  return host;
}

/** SSE events as SSEParser gives them. */
const message = (channel, id, extra = {}) => ({
  event: extra.event || "",
  data: JSON.stringify({ channel, id, data: 1, ...extra }),
  id: extra.streamId ?? null,
});

test("an SSE event's id moves every channel to its part of the stream cursor", () => {
  const host = hostAt(["a", "b"]);
  const sse = new SSETransport(host);

  sse.receive({ event: "", data: null, id: "a-3.b-5" }, ["a", "b"]);

  assert.equal(host.channel("a").cursor, "a-3");
  assert.equal(host.channel("b").cursor, "b-5");
  assert.deepEqual(host.calls, []);
});

test("an SSE stream cursor that does not match the channels is a bad frame", () => {
  const host = hostAt(["a", "b"]);

  new SSETransport(host).receive({ event: "", data: null, id: "a-3" }, ["a", "b"]);

  assert.deepEqual(host.calls, [["badFrame", "stream cursor does not match the channels"]]);
  assert.equal(host.channel("a").cursor, "a-0");
});

test("an SSE publication is delivered, also one named like a gap if it has an id", () => {
  const host = hostAt(["news"]);
  const sse = new SSETransport(host);

  sse.receive(message("news", "news-1"), ["news"]);
  sse.receive(message("news", "news-2", { event: "pushwire.gap" }), ["news"]);

  assert.deepEqual(
    host.callsOf("deliver").map(([value]) => value.id),
    ["news-1", "news-2"]
  );
});

test("an SSE gap in the middle of the stream moves the cursor and reports a gap", () => {
  const host = hostAt(["alerts", "news"]);
  const sse = new SSETransport(host);
  sse.receive({ ...message("news", "news-1"), id: "alerts-0.news-1" }, ["alerts", "news"]);

  sse.receive(
    { event: "pushwire.gap", data: '{"channel":"news","cursor":"news-9","recovered":false}', id: "alerts-0.news-9" },
    ["alerts", "news"]
  );
  sse.receive({ ...message("news", "news-10"), id: "alerts-0.news-10" }, ["alerts", "news"]);

  assert.deepEqual(host.calls.map((call) => call.slice(0, 2)), [
    ["deliver", host.calls[0][1]],
    ["gap", "news"],
    ["deliver", host.calls[2][1]],
  ]);
  assert.deepEqual(host.callsOf("gap"), [["news", "news-9"]]);
  assert.equal(host.channel("alerts").cursor, "alerts-0");
});

test("an SSE gap for a channel no longer subscribed is ignored", () => {
  const host = hostAt(["news"]);

  new SSETransport(host).receive({ event: "pushwire.gap", data: '{"channel":"old","cursor":"o-1"}', id: null }, ["news"]);

  assert.deepEqual(host.calls, []);
});

test("SSE data that is not JSON is a bad frame", () => {
  const host = hostAt(["news"]);

  assert.doesNotThrow(() => new SSETransport(host).receive({ event: "", data: "{nope", id: null }, ["news"]));

  assert.deepEqual(host.calls, [["badFrame", "event data is not JSON"]]);
});

test("an SSE stream read in odd chunks: messages, a gap mid-stream, more messages", async () => {
  const host = hostAt(["news"]);
  const sse = new SSETransport(host);
  const text =
    "retry: 2000\r\n: ping\r\nid: news-1\r\n\r\n" +
    'id: news-2\r\ndata: {"channel":"news","id":"news-2","data":2}\r\n\r\n' +
    'id: news-7\r\nevent: pushwire.gap\r\ndata: {"channel":"news","cursor":"news-7","recovered":false}\r\n\r\n' +
    'id: news-8\r\ndata: {"channel":"news","id":"news-8","data":8}\r\n\r\n';
  const bytes = new TextEncoder().encode(text);
  const body = new ReadableStream({
    start(controller) {
      for (let at = 0; at < bytes.length; at += 7) controller.enqueue(bytes.slice(at, at + 7));
      controller.close();
    },
  });
  const saved = globalThis.fetch;
  globalThis.fetch = async () => new Response(body, { headers: { "Content-Type": "text/event-stream" } });

  try {
    await assert.rejects(sse.run(["news"], new AbortController().signal), { code: "stream_ended" });
  } finally {
    globalThis.fetch = saved;
  }

  assert.deepEqual(
    host.calls.map(([kind, value]) => (kind === "deliver" ? [kind, value.id] : [kind])),
    [["opened"], ["subscribed"], ["deliver", "news-2"], ["gap"], ["deliver", "news-8"]]
  );
  assert.deepEqual(host.callsOf("gap"), [["news", "news-7"]]);
  assert.equal(host.channel("news").cursor, "news-8");
});

test("a poll answer delivers its messages, then moves the cursors", () => {
  const host = hostAt(["a", "b"]);

  new PollTransport(host).receive({ messages: [{ channel: "a", id: "a-1", data: 1 }], cursor: "a-1.b-0" }, ["a", "b"]);

  assert.deepEqual(host.callsOf("deliver"), [[{ channel: "a", id: "a-1", data: 1 }]]);
  assert.equal(host.channel("a").cursor, "a-1");
});

test("gaps in a poll answer are reported after its messages; unknown channels are ignored", () => {
  const host = hostAt(["a", "b"]);

  new PollTransport(host).receive(
    { messages: [{ channel: "b", id: "b-1", data: 1 }], cursor: "a-4.b-1", gaps: ["a", "gone", 7] },
    ["a", "b"]
  );

  assert.deepEqual(host.calls.map((call) => call[0]), ["deliver", "gap"]);
  assert.deepEqual(host.callsOf("gap"), [["a", "a-4"]]);
});

test("gaps that are not a list are a bad frame; the messages still count", () => {
  const host = hostAt(["a"]);

  new PollTransport(host).receive({ messages: [], cursor: "a-2", gaps: "a" }, ["a"]);

  assert.deepEqual(host.calls, [["badFrame", "poll answer with gaps that are not a list"]]);
  assert.equal(host.channel("a").cursor, "a-2");
});

test("the poll loop reports gaps in any answer, not only the first", async () => {
  const host = hostAt(["news"]);
  const poll = new PollTransport(host);
  const controller = new AbortController();
  const answers = [
    { messages: [], cursor: "news-0" },
    { messages: [{ channel: "news", id: "news-1", data: 1 }], cursor: "news-1" },
    { messages: [], cursor: "news-5", gaps: ["news"] },
  ];
  const paths = [];
  host.request = async (path) => {
    paths.push(path);
    if (!answers.length) controller.abort(); // the application closed the client meanwhile
    return answers.shift() ?? { messages: [], cursor: "news-5" };
  };

  await poll.run(["news"], controller.signal);

  assert.deepEqual(paths, [
    "/poll?channel=news&cursor=news-0&timeout=0",
    "/poll?channel=news&cursor=news-0&timeout=25",
    "/poll?channel=news&cursor=news-1&timeout=25",
    "/poll?channel=news&cursor=news-5&timeout=25",
  ]);
  assert.deepEqual(host.calls.map((call) => call[0]), ["opened", "subscribed", "deliver", "gap"]);
  assert.deepEqual(host.callsOf("gap"), [["news", "news-5"]]);
});

test("SSE pushwire.join and pushwire.leave are passed on; malformed ones are bad frames", () => {
  const host = hostAt(["news"]);
  const sse = new SSETransport(host);

  sse.receive({ event: "pushwire.join", data: '{"channel":"news","user":"alice","info":{"n":1}}', id: "news-3" }, ["news"]);
  sse.receive({ event: "pushwire.leave", data: '{"channel":"news","user":"alice","info":null}', id: null }, ["news"]);
  sse.receive({ event: "pushwire.join", data: '{"channel":"news"}', id: null }, ["news"]);
  sse.receive({ event: "pushwire.leave", data: '"alice"', id: null }, ["news"]);

  assert.deepEqual(host.calls, [
    ["presenceEvent", { type: "join", channel: "news", user: "alice", info: { n: 1 } }],
    ["presenceEvent", { type: "leave", channel: "news", user: "alice", info: null }],
    ["badFrame", "pushwire.join without a channel and user"],
    ["badFrame", "pushwire.leave without a channel and user"],
  ]);
  assert.equal(host.channel("news").cursor, "news-3");
});

test("SSE pushwire.disconnect fails the transport with the server's code; a malformed one is a bad frame", () => {
  const host = hostAt(["news"]);
  const sse = new SSETransport(host);

  sse.receive({ event: "pushwire.disconnect", data: '{"reason":"x"}', id: null }, ["news"]);
  sse.receive({ event: "pushwire.disconnect", data: '{"code":4000,"reason":"disconnected by server","reconnect":false}', id: null }, ["news"]);

  assert.deepEqual(host.calls, [
    ["badFrame", "pushwire.disconnect without a code and reconnect"],
    ["lost", "stream_ended", { closeCode: 4000, closeReason: "disconnected by server", reconnect: false }],
  ]);
  assert.equal(sse.isClosed, true);
});

test("a 401 for the token fails the SSE transport with the token error, unreported", async () => {
  const host = hostAt(["news"]);
  const sse = new SSETransport(host);
  const saved = globalThis.fetch;
  globalThis.fetch = async () =>
    new Response('{"error":"token_expired","message":"expired"}', { status: 401, headers: { "Content-Type": "application/json" } });

  try {
    sse.open();
    await new Promise((resolve) => setTimeout(resolve, 10));
  } finally {
    globalThis.fetch = saved;
  }

  assert.equal(host.calls.length, 1);
  const [kind, code, cause] = host.calls[0];
  assert.deepEqual([kind, code, cause.tokenError.code, cause.tokenError.status], ["lost", "token_expired", "token_expired", 401]);
});

test("poll answer events: joins and leaves after the messages; malformed ones are bad frames", () => {
  const host = hostAt(["a"]);
  const poll = new PollTransport(host);

  poll.receive(
    {
      messages: [{ channel: "a", id: "a-1", data: 1 }],
      cursor: "a-1",
      events: [
        { type: "join", channel: "a", user: "u", info: null },
        { type: "wave", channel: "a", user: "u" },
        { type: "leave", channel: "a" },
        "join",
      ],
    },
    ["a"]
  );
  poll.receive({ messages: [], cursor: "a-1", events: { type: "join" } }, ["a"]);

  assert.deepEqual(host.calls.map((call) => call[0] + (call[0] === "badFrame" ? ": " + call[1] : "")), [
    "deliver",
    "presenceEvent",
    "badFrame: poll answer with an event that is not a join or leave",
    "badFrame: poll answer with an event that is not a join or leave",
    "badFrame: poll answer with an event that is not a join or leave",
    "badFrame: poll answer with events that are not a list",
  ]);
  assert.deepEqual(host.callsOf("presenceEvent"), [[{ type: "join", channel: "a", user: "u", info: null }]]);
});
