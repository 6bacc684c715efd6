// Test doubles: a TransportHost that records what a transport reports, and a WebSocket.
import { ChannelState } from "../src/cursors.js";
import { DEFAULTS } from "../src/options.js";

/** A TransportHost over real ChannelStates; `calls` lists every report, in order. */
export class RecordingHost {
  constructor(channelNames = [], options = {}) {
    this.options = { ...DEFAULTS, pingIntervalMs: 0, sseIdleTimeoutMs: 0, ...options };
    this.url = "http://pushwire.test";
    this.wsUrl = "ws://pushwire.test/ws";
    /** @type {Map<string, ChannelState>} */
    this.table = new Map(channelNames.map((name) => [name, new ChannelState(name, null)]));
    this.calls = [];
    this._ref = 0;
  }

  channels() {
    return Array.from(this.table.values());
  }

  channel(name) {
    return this.table.get(name);
  }

  nextRef() {
    return ++this._ref;
  }

  log() {}

  get token() {
    return this.currentToken ?? null;
  }

  async renewToken() {
    this.calls.push(["renewToken"]);
    return this.nextToken ?? null;
  }

  unsubscribedByServer(entry) {
    this.calls.push(["unsubscribedByServer", entry.name]);
  }

  presenceEvent(event) {
    this.calls.push(["presenceEvent", event]);
  }

  async request(path) {
    this.calls.push(["request", path]);
    throw new Error("no requests in unit tests");
  }

  opened() {
    this.calls.push(["opened"]);
  }

  lost(_transport, code, _reason, cause) {
    this.calls.push(cause ? ["lost", code, cause] : ["lost", code]);
  }

  deliver(message) {
    this.calls.push(["deliver", message]);
  }

  subscribed(entry, recovered) {
    this.calls.push(["subscribed", entry.name, entry.cursor, recovered]);
  }

  gap(entry) {
    this.calls.push(["gap", entry.name, entry.cursor]);
  }

  subscriptionFailed(entry, error) {
    this.calls.push(["subscriptionFailed", entry.name, error.code]);
  }

  badFrame(reason) {
    this.calls.push(["badFrame", reason]);
  }

  reportError(error) {
    this.calls.push(["reportError", error.code]);
  }

  /** The calls of one kind, without their names. */
  callsOf(kind) {
    return this.calls.filter((call) => call[0] === kind).map((call) => call.slice(1));
  }
}

/** Stands in for the browser's WebSocket; the test plays the server. */
export class FakeWebSocket {
  /** @type {FakeWebSocket[]} */
  static instances = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeWebSocket.instances.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close(code) {
    this.readyState = 3;
    this.closeCode = code;
  }

  /** Server side: accept the connection. */
  accept() {
    this.readyState = 1;
    this.onopen?.({});
  }

  /** Server side: send a frame (an object is sent as JSON). */
  deliver(frame) {
    this.onmessage?.({ data: typeof frame === "string" || frame instanceof Uint8Array ? frame : JSON.stringify(frame) });
  }

  /** The last frame the client sent of this type. */
  lastSent(type) {
    return this.sent.filter((frame) => frame.type === type).at(-1);
  }
}

/** Run `body` with FakeWebSocket as the global WebSocket. */
export async function withFakeWebSocket(body) {
  const saved = globalThis.WebSocket;
  globalThis.WebSocket = FakeWebSocket;
  FakeWebSocket.instances = [];
  try {
    return await body();
  } finally {
    if (saved === undefined) delete globalThis.WebSocket;
    else globalThis.WebSocket = saved;
  }
}

/** Wait for timers of `ms` (and the promises they settle) to run. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A Response with a JSON body. */
export function jsonResponse(status, body) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** A Response whose event stream sends `text` and then stays open until the request aborts. */
export function streamResponse(text, signal) {
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(text));
      signal?.addEventListener("abort", () => controller.error(new Error("aborted")));
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
}

/** A fetch() that never answers; it rejects when the request aborts. */
export function pending(signal) {
  return new Promise((_, reject) => signal?.addEventListener("abort", () => reject(new Error("aborted"))));
}

/**
 * Run `body` with a fake global fetch: `respond(url, init)` plays the server. Returns
 * body's result; `requests` (passed to body) lists {url, method, authorization, body}.
 */
export async function withFakeFetch(respond, body) {
  const saved = globalThis.fetch;
  const requests = [];
  globalThis.fetch = async (url, init = {}) => {
    const headers = init.headers || {};
    requests.push({ url: String(url), method: init.method || "GET", authorization: headers.Authorization ?? null, body: init.body });
    return respond(String(url), init);
  };
  try {
    return await body(requests);
  } finally {
    globalThis.fetch = saved;
  }
}
