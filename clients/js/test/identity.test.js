// Tokens, refresh, the server's ends (4000, 4401, 401 answers), server-side unsubscribe,
// presence and join/leave, through the client as the application sees it.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { Pushwire } from "../src/client.js";
import {
  FakeWebSocket,
  jsonResponse,
  pending,
  sleep,
  streamResponse,
  withFakeFetch,
  withFakeWebSocket,
} from "./fakes.js";

const URL = "http://pushwire.test";
const FAST = { autoConnect: false, pingIntervalMs: 0, minReconnectDelayMs: 1, maxReconnectDelayMs: 4 };

// A failed check must not leave a client reconnecting forever (and the test run hanging).
const clients = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

/** A client with "news" subscribed; every client and subscription event recorded in `seen`. */
function makeClient(options) {
  const client = new Pushwire(URL, { ...FAST, ...options });
  clients.push(client);
  const seen = [];
  for (const type of ["state", "error", "close", "disconnected"]) {
    client.addEventListener(type, (event) => seen.push({ type, ...pick(event) }));
  }
  const subscription = client.subscribe("news", undefined, { cursor: "news-0" });
  for (const type of ["unsubscribed", "join", "leave", "subscribed"]) {
    subscription.addEventListener(type, (event) => seen.push({ type, ...pick(event) }));
  }
  return { client, subscription, seen };
}

function pick(event) {
  const fields = {};
  for (const key of ["state", "code", "reason", "channel", "user", "info", "willReconnect"]) {
    if (event[key] !== undefined) fields[key] = event[key];
  }
  if (event.error) fields.error = event.error.code;
  return fields;
}

/** Answer every subscribe the socket sent. */
function confirm(ws) {
  for (const frame of ws.sent.filter((f) => f.type === "subscribe")) {
    ws.deliver({ type: "subscribed", ref: frame.ref, channel: frame.channel, cursor: frame.channel + "-0" });
  }
}

/** A getToken that hands out "t1", "t2", ... and counts its calls. */
function counter() {
  const getToken = async () => "t" + ++getToken.calls;
  getToken.calls = 0;
  return getToken;
}

const tokenOf = (ws) => new globalThis.URL(ws.url).searchParams.get("token");

// Presenting the token.

test("a token goes into the WebSocket URL as ?token=", async () => {
  await withFakeWebSocket(async () => {
    const { client } = makeClient({ transports: ["ws"], token: "a b+c" });

    client.connect();

    assert.equal(FakeWebSocket.instances[0].url, "ws://pushwire.test/ws?token=a%20b%2Bc");
    client.close();
  });
});

test("a token is added with & to a wsUrl that has a query", async () => {
  await withFakeWebSocket(async () => {
    const { client } = makeClient({ transports: ["ws"], token: "t", wsUrl: "ws://elsewhere/ws?x=1" });

    client.connect();

    assert.equal(FakeWebSocket.instances[0].url, "ws://elsewhere/ws?x=1&token=t");
    client.close();
  });
});

test("without a token the WebSocket URL has none", async () => {
  await withFakeWebSocket(async () => {
    const { client } = makeClient({ transports: ["ws"] });

    client.connect();

    assert.equal(FakeWebSocket.instances[0].url, "ws://pushwire.test/ws");
    client.close();
  });
});

test("SSE sends the token as Authorization: Bearer, never in the URL", async () => {
  await withFakeFetch(
    (url, init) => streamResponse("id: news-0\n\n", init.signal),
    async (requests) => {
      const { client } = makeClient({ transports: ["sse"], token: "secret-token" });

      client.connect();
      await sleep(5);

      assert.equal(client.state, "open");
      assert.equal(requests[0].authorization, "Bearer secret-token");
      assert.match(requests[0].url, /^http:\/\/pushwire\.test\/sse\?channel=news/);
      assert.ok(!requests[0].url.includes("secret-token"));
      client.close();
    }
  );
});

test("polls and POST /publish send the token as Authorization: Bearer", async () => {
  await withFakeFetch(
    (url, init) => {
      if (url.includes("/publish")) return jsonResponse(200, { channel: "news", id: "news-1" });
      if (url.includes("timeout=0")) return jsonResponse(200, { messages: [], cursor: "news-0" });
      return pending(init.signal);
    },
    async (requests) => {
      const { client } = makeClient({ transports: ["poll"], token: "tok" });
      client.connect();
      await sleep(5);

      await client.publish("news", 1);

      assert.deepEqual(
        requests.map((r) => [r.url.split("?")[0], r.authorization]),
        [
          ["http://pushwire.test/poll", "Bearer tok"],
          ["http://pushwire.test/poll", "Bearer tok"],
          ["http://pushwire.test/publish", "Bearer tok"],
        ]
      );
      client.close();
    }
  );
});

test("token and getToken are checked in the constructor", () => {
  assert.throws(() => new Pushwire(URL, { autoConnect: false, token: 5 }), { name: "TypeError", message: "token must be a non-empty string" });
  assert.throws(() => new Pushwire(URL, { autoConnect: false, token: "" }), { name: "TypeError" });
  assert.throws(() => new Pushwire(URL, { autoConnect: false, getToken: "nope" }), {
    name: "TypeError",
    message: "getToken must be a function that returns (a promise of) a token",
  });
});

// getToken.

test("getToken is called at connect and again at every reconnect", async () => {
  await withFakeWebSocket(async () => {
    const getToken = counter();
    const { client } = makeClient({ transports: ["ws"], getToken });

    client.connect();
    await sleep(0);
    const first = FakeWebSocket.instances[0];
    first.accept();
    first.onclose({ code: 1001, reason: "server shutting down" });
    await sleep(20);

    assert.equal(getToken.calls, 2);
    assert.deepEqual(FakeWebSocket.instances.map(tokenOf), ["t1", "t2"]);
    client.close();
  });
});

test("a given token serves the first connect; getToken the ones after", async () => {
  await withFakeWebSocket(async () => {
    const getToken = counter();
    const { client } = makeClient({ transports: ["ws"], token: "t0", getToken });

    client.connect();
    const first = FakeWebSocket.instances[0];
    first.accept();
    first.onclose({ code: 1011, reason: "" });
    await sleep(20);

    assert.deepEqual(FakeWebSocket.instances.map(tokenOf), ["t0", "t1"]);
    client.close();
  });
});

test("a getToken that fails is reported as token_failed and retried with back-off, on the same transport", async () => {
  await withFakeWebSocket(() => withFakeFetch((url, init) => pending(init.signal), async () => {
    let calls = 0;
    const getToken = async () => {
      calls += 1;
      if (calls === 1) throw new Error("backend down");
      return "ok";
    };
    const { client, seen } = makeClient({ transports: ["ws", "sse"], transportAttempts: 1, getToken });

    client.connect();
    await sleep(20);

    assert.deepEqual(seen.filter((e) => e.type === "error").map((e) => e.error), ["token_failed"]);
    // Not the transport's fault: still on ws.
    assert.deepEqual(FakeWebSocket.instances.map(tokenOf), ["ok"]);
    client.close();
  }));
});

// Refresh over /ws.

test("refresh: getToken gives a new token, sent with a ref; refreshed answers it", async () => {
  await withFakeWebSocket(async () => {
    const getToken = counter();
    const { client, seen } = makeClient({ transports: ["ws"], getToken });
    client.connect();
    await sleep(0);
    const ws = FakeWebSocket.instances[0];
    ws.accept();
    confirm(ws);

    ws.deliver({ type: "refresh" });
    await sleep(0);
    const refresh = ws.lastSent("refresh");
    ws.deliver({ type: "refreshed", ref: refresh.ref });

    assert.deepEqual(refresh, { type: "refresh", token: "t2", ref: refresh.ref });
    assert.equal(client._connection.pending.has(refresh.ref), false);
    assert.deepEqual(seen.filter((e) => e.type === "error"), []);
    assert.equal(client.state, "open");
    client.close();
  });
});

test("refresh with a fixed token: an error token_expired, nothing sent", async () => {
  await withFakeWebSocket(async () => {
    const { client, seen } = makeClient({ transports: ["ws"], token: "fixed" });
    client.connect();
    const ws = FakeWebSocket.instances[0];
    ws.accept();
    confirm(ws);

    ws.deliver({ type: "refresh" });
    await sleep(0);

    assert.equal(ws.lastSent("refresh"), undefined);
    assert.deepEqual(seen.filter((e) => e.type === "error").map((e) => e.error), ["token_expired"]);
    client.close();
  });
});

// The server's ends.

test("close 4000 is the end: state closed, disconnected with code and reason, no reconnect", async () => {
  await withFakeWebSocket(async () => {
    const { client, seen } = makeClient({ transports: ["ws", "sse"], token: "t" });
    client.connect();
    const ws = FakeWebSocket.instances[0];
    ws.accept();

    ws.onclose({ code: 4000, reason: "disconnected by server" });
    await sleep(20);

    assert.equal(client.state, "closed");
    assert.equal(FakeWebSocket.instances.length, 1);
    assert.deepEqual(seen.slice(-3), [
      { type: "close", code: "ws_closed", reason: "WebSocket closed: 4000 disconnected by server", willReconnect: false },
      { type: "state", state: "closed" },
      { type: "disconnected", code: 4000, reason: "disconnected by server" },
    ]);
  });
});

test("after 4000, connect() starts again", async () => {
  await withFakeWebSocket(async () => {
    const { client } = makeClient({ transports: ["ws"] });
    client.connect();
    FakeWebSocket.instances[0].accept();
    FakeWebSocket.instances[0].onclose({ code: 4000, reason: "" });

    client.connect();

    assert.equal(FakeWebSocket.instances.length, 2);
    assert.equal(client.state, "connecting");
    client.close();
  });
});

test("close 4401 with getToken: a new token, then a reconnect with it", async () => {
  await withFakeWebSocket(async () => {
    const getToken = counter();
    const { client, seen } = makeClient({ transports: ["ws"], getToken });
    client.connect();
    await sleep(0);
    FakeWebSocket.instances[0].accept();

    FakeWebSocket.instances[0].onclose({ code: 4401, reason: "token expired" });
    await sleep(30);

    assert.deepEqual(FakeWebSocket.instances.map(tokenOf), ["t1", "t2"]);
    assert.deepEqual(seen.filter((e) => e.type === "error"), []);
    assert.notEqual(client.state, "closed");
    client.close();
  });
});

test("close 4401 with a fixed token: stop, error token_expired or invalid_token", async () => {
  for (const [reason, code] of [
    ["token expired", "token_expired"],
    ["token refused: the token is for another user", "invalid_token"],
  ]) {
    await withFakeWebSocket(async () => {
      const { client, seen } = makeClient({ transports: ["ws"], token: "fixed" });
      client.connect();
      FakeWebSocket.instances[0].accept();

      FakeWebSocket.instances[0].onclose({ code: 4401, reason });
      await sleep(20);

      assert.equal(client.state, "closed");
      assert.equal(FakeWebSocket.instances.length, 1);
      assert.deepEqual(seen.at(-1), { type: "error", error: code });
    });
  }
});

test("close 4429 reconnects with back-off like other errors", async () => {
  await withFakeWebSocket(async () => {
    const { client, seen } = makeClient({ transports: ["ws"], token: "t" });
    client.connect();
    FakeWebSocket.instances[0].accept();

    FakeWebSocket.instances[0].onclose({ code: 4429, reason: "rate limit exceeded" });

    assert.equal(client.state, "reconnecting");
    await sleep(20);
    assert.equal(FakeWebSocket.instances.length, 2);
    assert.deepEqual(seen.filter((e) => e.type === "error" || e.type === "disconnected"), []);
    client.close();
  });
});

test("a 401 on the SSE fallback with a fixed token: stop with its code", async () => {
  await withFakeWebSocket(() =>
    withFakeFetch(
      () => jsonResponse(401, { error: "token_expired", message: "the token expired" }),
      async (requests) => {
        const { client, seen } = makeClient({ transports: ["ws", "sse"], transportAttempts: 1, token: "old" });
        client.connect();
        FakeWebSocket.instances[0].onclose({ code: 1006, reason: "" }); // the refused upgrade

        await sleep(20);

        assert.equal(client.state, "closed");
        assert.equal(requests.length, 1);
        assert.deepEqual(seen.at(-1), { type: "error", error: "token_expired" });
      }
    )
  );
});

test("a 401 on the SSE fallback with getToken: a new token, and back to ws with it", async () => {
  await withFakeWebSocket(() =>
    withFakeFetch(
      () => jsonResponse(401, { error: "invalid_token", message: "bad signature" }),
      async (requests) => {
        const getToken = counter();
        const { client, seen } = makeClient({ transports: ["ws", "sse"], transportAttempts: 1, getToken });
        client.connect();
        await sleep(0);
        FakeWebSocket.instances[0].onclose({ code: 1006, reason: "" });

        await sleep(30);

        assert.deepEqual(requests.map((r) => r.authorization), ["Bearer t2"]);
        assert.deepEqual(FakeWebSocket.instances.map(tokenOf), ["t1", "t3"]);
        assert.deepEqual(seen.filter((e) => e.type === "error"), []);
        client.close();
      }
    )
  );
});

test("a 401 on a poll with a fixed token: stop with its code", async () => {
  await withFakeFetch(
    () => jsonResponse(401, { error: "invalid_token", message: "bad" }),
    async (requests) => {
      const { client, seen } = makeClient({ transports: ["poll"], token: "bad" });
      client.connect();

      await sleep(20);

      assert.equal(client.state, "closed");
      assert.equal(requests.length, 1);
      assert.deepEqual(seen.at(-1), { type: "error", error: "invalid_token" });
    }
  );
});

test("a 401 on a poll with getToken: the next poll has the new token", async () => {
  let refuse = true;
  await withFakeFetch(
    (url, init) => {
      if (refuse) {
        refuse = false;
        return jsonResponse(401, { error: "token_expired", message: "expired" });
      }
      if (url.includes("timeout=0")) return jsonResponse(200, { messages: [], cursor: "news-0" });
      return pending(init.signal);
    },
    async (requests) => {
      const getToken = counter();
      const { client } = makeClient({ transports: ["poll"], getToken });
      client.connect();

      await sleep(30);

      assert.equal(client.state, "open");
      assert.deepEqual(requests.slice(0, 2).map((r) => r.authorization), ["Bearer t1", "Bearer t2"]);
      client.close();
    }
  );
});

test("a 401 for an anonymous client is reported and retried as before", async () => {
  await withFakeFetch(
    () => jsonResponse(401, { error: "unauthorized", message: "this server needs a connection token" }),
    async () => {
      const { client, seen } = makeClient({ transports: ["poll"] });
      client.connect();

      await sleep(20);

      assert.notEqual(client.state, "closed");
      assert.equal(seen.find((e) => e.type === "error").error, "unauthorized");
      client.close();
    }
  );
});

test("a backend that keeps minting refused tokens makes no hot loop: the waits grow", async () => {
  await withFakeFetch(
    () => jsonResponse(401, { error: "invalid_token", message: "bad" }),
    async () => {
      const getToken = counter();
      const { client } = makeClient({ transports: ["sse"], getToken, minReconnectDelayMs: 10, maxReconnectDelayMs: 10000 });
      client.connect();

      await sleep(200);

      // Waits of at least 10, 20, 40, 80 ms: five tokens at most in 200 ms, where
      // waits that did not grow would have asked for dozens.
      assert.ok(getToken.calls >= 2 && getToken.calls <= 5, "getToken called " + getToken.calls + " times");
      client.close();
    }
  );
});

test("a POST /publish refused for the token rejects, and a fixed-token client stops", async () => {
  await withFakeFetch(
    () => jsonResponse(401, { error: "token_expired", message: "expired" }),
    async () => {
      const { client, seen } = makeClient({ transports: ["poll"], token: "old" });

      await assert.rejects(client.publish("news", 1), { code: "token_expired", status: 401 });

      assert.equal(client.state, "closed");
      assert.deepEqual(seen.at(-1), { type: "error", error: "token_expired" });
    }
  );
});

// SSE pushwire.disconnect.

test("SSE pushwire.disconnect with reconnect false is the end, like close 4000", async () => {
  await withFakeFetch(
    (url, init) =>
      streamResponse(
        'id: news-0\n\nevent: pushwire.disconnect\ndata: {"code":4000,"reason":"disconnected by server","reconnect":false}\n\n',
        init.signal
      ),
    async (requests) => {
      const { client, seen } = makeClient({ transports: ["sse"], token: "t" });
      client.connect();

      await sleep(20);

      assert.equal(client.state, "closed");
      assert.equal(requests.length, 1);
      assert.deepEqual(seen.at(-1), { type: "disconnected", code: 4000, reason: "disconnected by server" });
    }
  );
});

test("SSE pushwire.disconnect 4401 with getToken: a new token for the next stream", async () => {
  let count = 0;
  await withFakeFetch(
    (url, init) =>
      count++ === 0
        ? streamResponse('id: news-0\n\nevent: pushwire.disconnect\ndata: {"code":4401,"reason":"token expired","reconnect":true}\n\n', init.signal)
        : streamResponse("id: news-0\n\n", init.signal),
    async (requests) => {
      const getToken = counter();
      const { client, seen } = makeClient({ transports: ["sse"], getToken });
      client.connect();

      await sleep(30);

      assert.deepEqual(requests.map((r) => r.authorization), ["Bearer t1", "Bearer t2"]);
      assert.equal(client.state, "open");
      assert.deepEqual(seen.filter((e) => e.type === "error"), []);
      client.close();
    }
  );
});

test("SSE pushwire.disconnect 1001 reconnects", async () => {
  let count = 0;
  await withFakeFetch(
    (url, init) =>
      count++ === 0
        ? streamResponse('id: news-0\n\nevent: pushwire.disconnect\ndata: {"code":1001,"reason":"server shutting down","reconnect":true}\n\n', init.signal)
        : streamResponse("id: news-0\n\n", init.signal),
    async (requests) => {
      const { client } = makeClient({ transports: ["sse"] });
      client.connect();

      await sleep(30);

      assert.equal(requests.length, 2);
      assert.equal(client.state, "open");
      client.close();
    }
  );
});

// The server takes a channel away.

test("unsubscribed without a ref ends the channel's subscriptions; no resubscribe after a reconnect", async () => {
  await withFakeWebSocket(async () => {
    const { client, subscription, seen } = makeClient({ transports: ["ws"], token: "t" });
    const other = client.subscribe("news");
    const otherSeen = [];
    other.addEventListener("unsubscribed", (event) => otherSeen.push(event.channel));
    client.subscribe("alerts");
    client.connect();
    const ws = FakeWebSocket.instances[0];
    ws.accept();
    confirm(ws);

    ws.deliver({ type: "unsubscribed", channel: "news" });
    ws.onclose({ code: 1006, reason: "" });
    await sleep(20);
    FakeWebSocket.instances[1].accept();

    assert.deepEqual(seen.filter((e) => e.type === "unsubscribed"), [{ type: "unsubscribed", channel: "news" }]);
    assert.deepEqual(otherSeen, ["news"]);
    assert.equal(subscription.closed, true);
    assert.equal(other.closed, true);
    assert.equal(ws.lastSent("unsubscribe"), undefined);
    assert.deepEqual(FakeWebSocket.instances[1].sent.map((f) => f.channel), ["alerts"]);
    client.close();
  });
});

// Presence.

test("presence() over the WebSocket resolves with the members", async () => {
  await withFakeWebSocket(async () => {
    const { client, subscription } = makeClient({ transports: ["ws"], token: "t" });
    client.connect();
    const ws = FakeWebSocket.instances[0];
    ws.accept();
    confirm(ws);
    const members = [{ user: "alice", info: { name: "Alice" }, connections: 2 }];

    const answer = subscription.presence();
    const ask = ws.lastSent("presence");
    ws.deliver({ type: "presence", ref: ask.ref, channel: "news", members });

    assert.deepEqual(ask, { type: "presence", channel: "news", ref: ask.ref });
    assert.deepEqual(await answer, members);
    client.close();
  });
});

test("presence() over the WebSocket rejects with the error reply's code", async () => {
  await withFakeWebSocket(async () => {
    const { client, subscription } = makeClient({ transports: ["ws"] });
    client.connect();
    const ws = FakeWebSocket.instances[0];
    ws.accept();

    const answer = subscription.presence();
    const ask = ws.lastSent("presence");
    ws.deliver({ type: "error", ref: ask.ref, code: "bad_request", message: "presence is off for news" });

    await assert.rejects(answer, { name: "PushwireError", code: "bad_request", message: "presence is off for news" });
    client.close();
  });
});

test("a presence answer without a members list rejects with bad_frame and is reported", async () => {
  await withFakeWebSocket(async () => {
    const { client, subscription, seen } = makeClient({ transports: ["ws"] });
    client.connect();
    const ws = FakeWebSocket.instances[0];
    ws.accept();

    const answer = subscription.presence();
    ws.deliver({ type: "presence", ref: ws.lastSent("presence").ref, channel: "news", members: "alice" });

    await assert.rejects(answer, { code: "bad_frame" });
    assert.deepEqual(seen.at(-1), { type: "error", error: "bad_frame" });
    client.close();
  });
});

test("presence() without a WebSocket asks GET /presence with the Bearer token", async () => {
  const members = [{ user: "bob", info: null, connections: 1 }];
  await withFakeFetch(
    (url, init) => {
      if (url.includes("/presence")) return jsonResponse(200, { channel: "news", members });
      if (url.includes("timeout=0")) return jsonResponse(200, { messages: [], cursor: "news-0" });
      return pending(init.signal);
    },
    async (requests) => {
      const { client, subscription } = makeClient({ transports: ["poll"], token: "tok" });
      client.connect();
      await sleep(5);

      const answer = await subscription.presence();

      const asked = requests.find((r) => r.url.includes("/presence"));
      assert.deepEqual(answer, members);
      assert.equal(asked.url, "http://pushwire.test/presence?channel=news");
      assert.equal(asked.authorization, "Bearer tok");
      client.close();
    }
  );
});

test("a presence answer over HTTP with members that are not users rejects with bad_frame", async () => {
  await withFakeFetch(
    () => jsonResponse(200, { channel: "news", members: [{ name: "no user field" }] }),
    async () => {
      const { subscription } = makeClient({ transports: ["poll"] });

      await assert.rejects(subscription.presence(), { code: "bad_frame" });
    }
  );
});

test("presence() over HTTP rejects with the server's code", async () => {
  await withFakeFetch(
    () => jsonResponse(403, { error: "permission_denied", message: "no" }),
    async () => {
      const { client, subscription } = makeClient({ transports: ["poll"] });

      await assert.rejects(subscription.presence(), { code: "permission_denied", status: 403 });
      assert.equal(client.state, "idle");
    }
  );
});

test("presence() on a closed subscription rejects with closed", async () => {
  const { subscription } = makeClient({ transports: ["poll"] });
  subscription.close();

  await assert.rejects(subscription.presence(), { code: "closed" });
});

// Join and leave.

test("join and leave over /ws are dispatched on the channel's subscriptions", async () => {
  await withFakeWebSocket(async () => {
    const { client, seen } = makeClient({ transports: ["ws"], token: "t" });
    client.connect();
    const ws = FakeWebSocket.instances[0];
    ws.accept();
    confirm(ws);

    ws.deliver({ type: "join", channel: "news", user: "alice", info: { name: "Alice" } });
    ws.deliver({ type: "leave", channel: "news", user: "alice", info: { name: "Alice" } });
    ws.deliver({ type: "join", channel: "elsewhere", user: "bob", info: null });

    assert.deepEqual(seen.slice(-2), [
      { type: "join", channel: "news", user: "alice", info: { name: "Alice" } },
      { type: "leave", channel: "news", user: "alice", info: { name: "Alice" } },
    ]);
    client.close();
  });
});

test("join and leave over SSE are dispatched on the channel's subscriptions", async () => {
  await withFakeFetch(
    (url, init) =>
      streamResponse(
        "id: news-0\n\n" +
          'id: news-0\nevent: pushwire.join\ndata: {"channel":"news","user":"alice","info":{"name":"Alice"}}\n\n' +
          'id: news-0\nevent: pushwire.leave\ndata: {"channel":"news","user":"bob","info":null}\n\n',
        init.signal
      ),
    async () => {
      const { client, seen } = makeClient({ transports: ["sse"], token: "t" });
      client.connect();

      await sleep(20);

      assert.deepEqual(
        seen.filter((e) => e.type === "join" || e.type === "leave"),
        [
          { type: "join", channel: "news", user: "alice", info: { name: "Alice" } },
          { type: "leave", channel: "news", user: "bob", info: null },
        ]
      );
      client.close();
    }
  );
});

test("join and leave in poll answers are dispatched on the channel's subscriptions", async () => {
  await withFakeFetch(
    (url, init) => {
      if (url.includes("timeout=0")) {
        return jsonResponse(200, {
          messages: [],
          cursor: "news-0",
          events: [
            { type: "join", channel: "news", user: "carol", info: { n: 1 } },
            { type: "leave", channel: "news", user: "carol", info: { n: 1 } },
          ],
        });
      }
      return pending(init.signal);
    },
    async () => {
      const { client, seen } = makeClient({ transports: ["poll"] });
      client.connect();

      await sleep(20);

      assert.deepEqual(
        seen.filter((e) => e.type === "join" || e.type === "leave"),
        [
          { type: "join", channel: "news", user: "carol", info: { n: 1 } },
          { type: "leave", channel: "news", user: "carol", info: { n: 1 } },
        ]
      );
      client.close();
    }
  );
});
