import assert from "node:assert/strict";
import { test } from "node:test";

import { Pushwire } from "../src/client.js";
import { FakeWebSocket, withFakeWebSocket } from "./fakes.js";

/** A client over a FakeWebSocket with "news" subscribed and confirmed; events recorded. */
async function connected({ cursor } = {}) {
  return withFakeWebSocket(() => {
    const client = new Pushwire("http://pushwire.test", { transports: ["ws"], autoConnect: false, pingIntervalMs: 0 });
    const seen = [];
    for (const type of ["state", "error", "close"]) {
      client.addEventListener(type, (event) => seen.push([type, event.state ?? event.error?.code ?? event.code]));
    }
    const subscription = client.subscribe("news", undefined, cursor ? { cursor } : undefined);
    for (const type of ["message", "gap", "subscribed", "error"]) {
      subscription.addEventListener(type, (event) =>
        seen.push([type, event.message?.id ?? event.error?.code ?? { channel: event.channel, cursor: event.cursor }])
      );
    }
    client.connect();
    const ws = FakeWebSocket.instances.at(-1);
    ws.accept();
    const subscribe = ws.lastSent("subscribe");
    ws.deliver({ type: "subscribed", ref: subscribe.ref, channel: "news", cursor: "e-0" });
    return { client, subscription, ws, seen };
  });
}

test("a gap frame sets the channel's cursor and dispatches gap with it", async () => {
  const { client, subscription, ws, seen } = await connected();
  ws.deliver({ type: "message", channel: "news", id: "e-1", data: 1 });

  ws.deliver({ type: "gap", channel: "news", cursor: "e-5" });

  assert.equal(subscription.cursor, "e-5");
  assert.deepEqual(seen.slice(-2), [
    ["message", "e-1"],
    ["gap", { channel: "news", cursor: "e-5" }],
  ]);
  client.close();
});

test("after a gap frame, a resubscribe resumes from the gap's cursor", async () => {
  const { client, ws } = await connected();
  ws.deliver({ type: "gap", channel: "news", cursor: "e-5" });

  await withFakeWebSocket(async () => {
    ws.onclose({ code: 1006, reason: "" });
    client._online(); // reconnect at once instead of after the back-off
    const again = FakeWebSocket.instances.at(-1);
    again.accept();

    assert.equal(again.lastSent("subscribe").cursor, "e-5");
  });
  client.close();
});

test("a duplicate message is dropped, and the cursor follows the messages", async () => {
  const { client, subscription, ws, seen } = await connected();

  for (const id of ["e-1", "e-1", "e-2"]) ws.deliver({ type: "message", channel: "news", id, data: id });

  assert.deepEqual(
    seen.filter(([type]) => type === "message"),
    [
      ["message", "e-1"],
      ["message", "e-2"],
    ]
  );
  assert.equal(subscription.cursor, "e-2");
  client.close();
});

test("a message without an id is an error event with bad_frame, not an exception", async () => {
  const { client, ws, seen } = await connected();

  assert.doesNotThrow(() => ws.deliver({ type: "message", channel: "news", data: 1 }));

  assert.deepEqual(seen.at(-1), ["error", "bad_frame"]);
  assert.equal(client.state, "open");
  client.close();
});

test("the states go idle, connecting, open, then closed", async () => {
  const { client, seen } = await connected();

  client.close();

  assert.deepEqual(
    seen.filter(([type]) => type === "state").map(([, state]) => state),
    ["connecting", "open", "closed"]
  );
});

test("the public API hangs off the class as before", async () => {
  const index = await import("../src/index.js");

  assert.equal(index.default, index.Pushwire);
  assert.equal(index.Pushwire.version, index.VERSION);
  assert.equal(index.Pushwire.PushwireError, index.PushwireError);
  assert.equal(index.Pushwire.Subscription, index.Subscription);
});
