/*
 * pushwire.mjs: the browser client for pushwire. Reference: docs/client-js.md.
 *
 * GENERATED from clients/js/src by esbuild: do not edit. To change it, edit the
 * sources and run `npm ci && npm run build` in clients/js (`npm run check` verifies).
 *
 * An ES module: `import { Pushwire } from "https://HOST/pushwire.mjs"` (also the default export).
 *
 * Receives over WebSocket (/ws), Server-Sent Events (/sse, read with fetch so that
 * every named event and every keep-alive comment is seen) or long-polling (/poll);
 * publishes over the open WebSocket, otherwise with POST /publish.
 */

// src/backoff.js
var Backoff = class {
  /** @param {BackoffOptions} options */
  constructor({ minReconnectDelayMs, maxReconnectDelayMs, random = Math.random }) {
    this.minMs = minReconnectDelayMs;
    this.maxMs = maxReconnectDelayMs;
    this.random = random;
    this.attempts = 0;
  }
  /** A connect attempt starts; returns its number (1 for the first since a reset). */
  countAttempt() {
    this.attempts += 1;
    return this.attempts;
  }
  /** A connection opened: the next failure waits as little as the first. */
  reset() {
    this.attempts = 0;
  }
  /**
   * The wait before the next attempt: uniform in [0, min(max, min × 2^attempts)).
   * Full jitter, so that many clients cut off together don't come back together.
   */
  delayMs() {
    return this.random() * this._ceilingMs();
  }
  /**
   * Like delayMs(), but at least half the ceiling ("equal jitter"): for failures that
   * must not repeat quickly even by chance (a backend that keeps minting refused tokens).
   */
  halfJitterDelayMs() {
    const ceiling = this._ceilingMs();
    return ceiling / 2 + this.random() * ceiling / 2;
  }
  _ceilingMs() {
    return Math.min(this.maxMs, this.minMs * 2 ** this.attempts);
  }
};

// src/errors.js
var PushwireError = class extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number} [status] the HTTP status, when the error is an HTTP answer
   */
  constructor(code, message, status) {
    super(message);
    this.name = "PushwireError";
    this.code = code;
    this.status;
    if (status !== void 0) this.status = status;
  }
};

// src/cursors.js
var SEEN_IDS = 1e3;
var ChannelState = class {
  /**
   * @param {string} name
   * @param {string | null} cursor where to resume; null: from now
   * @param {number} [seenIds] how many delivered ids to remember
   */
  constructor(name, cursor, seenIds = SEEN_IDS) {
    this.name = name;
    this.cursor = cursor;
    this.active = false;
    this.ref = null;
    this._seenIds = seenIds;
    this._seen = /* @__PURE__ */ new Set();
  }
  /**
   * A message arrived: record its id and move the cursor to it.
   * @param {string} id
   * @returns {boolean} false for an id delivered before: drop the message
   */
  accept(id) {
    if (this._seen.has(id)) return false;
    this._seen.add(id);
    if (this._seen.size > this._seenIds) {
      const oldest = this._seen.values().next();
      if (!oldest.done) this._seen.delete(oldest.value);
    }
    this.cursor = id;
    return true;
  }
  /**
   * The server says the channel continues from `cursor` (a subscribe answer or a gap);
   * null: the old cursor is unusable, resume from now.
   * @param {string | null} cursor
   */
  moveTo(cursor) {
    this.cursor = cursor;
  }
};
function joinStreamCursor(channels, lookup) {
  const parts = [];
  for (const name of channels) {
    const entry = lookup(name);
    if (!entry) return null;
    if (!entry.cursor) throw new PushwireError("bad_frame", "the server gave no position for " + name);
    parts.push(entry.cursor);
  }
  return parts.join(".");
}
function splitStreamCursor(channels, cursor) {
  const parts = String(cursor).split(".");
  return parts.length === channels.length ? parts : null;
}

// src/events.js
function pushwireEvent(type, fields) {
  return Object.assign(new Event(type), fields);
}

// src/http.js
async function requestJson(baseUrl, path, { method = "GET", body, signal, token, timeoutMs, log }) {
  const name = method + " " + path.split("?")[0];
  const controller = new AbortController();
  const abort = () => controller.abort();
  if (signal) signal.addEventListener("abort", abort);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const init = { method, signal: controller.signal, cache: "no-store" };
  const headers = {};
  if (body !== void 0) {
    init.body = body;
    headers["Content-Type"] = "application/json";
  }
  if (token) headers.Authorization = "Bearer " + token;
  if (Object.keys(headers).length) init.headers = headers;
  log(method, path);
  try {
    const response = await fetch(baseUrl + path, init);
    if (!response.ok) throw await errorOf(response);
    try {
      return await response.json();
    } catch (error) {
      if (controller.signal.aborted) throw error;
      throw new PushwireError("bad_frame", name + " answered with something not JSON");
    }
  } catch (error) {
    if (error instanceof PushwireError) throw error;
    if (timedOut) throw new PushwireError("timeout", name + " timed out");
    throw new PushwireError("network", name + " failed: " + messageOf(error));
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener("abort", abort);
  }
}
async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
  }
  const code = body && typeof body.error === "string" ? body.error : "http_" + response.status;
  const message = body && typeof body.message === "string" ? body.message : "HTTP " + response.status;
  return new PushwireError(code, message, response.status);
}
function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}

// src/options.js
var TRANSPORTS = Object.freeze(["ws", "sse", "poll"]);
var DEFAULTS = Object.freeze({
  transports: (
    /** @type {TransportName[]} */
    ["ws", "sse", "poll"]
  ),
  wsUrl: null,
  transportAttempts: 2,
  minReconnectDelayMs: 500,
  maxReconnectDelayMs: 3e4,
  connectTimeoutMs: 1e4,
  maxAttempts: Infinity,
  pingIntervalMs: 25e3,
  pingTimeoutMs: 1e4,
  sseIdleTimeoutMs: 45e3,
  pollTimeoutMs: 25e3,
  publishTimeoutMs: 1e4,
  autoConnect: true,
  debug: false,
  token: null,
  getToken: null
});
function resolveOptions(options) {
  const resolved = Object.assign({}, DEFAULTS, { transports: TRANSPORTS.slice() });
  const target = resolved;
  for (const [key, value] of Object.entries(options || {})) {
    if (!(key in DEFAULTS)) throw new TypeError("unknown option " + JSON.stringify(key));
    if (value !== void 0) target[key] = value;
  }
  for (const name of resolved.transports) {
    if (!TRANSPORTS.includes(name)) throw new TypeError("unknown transport " + JSON.stringify(name));
  }
  if (resolved.token !== null && (typeof resolved.token !== "string" || !resolved.token)) {
    throw new TypeError("token must be a non-empty string");
  }
  if (resolved.getToken !== null && typeof resolved.getToken !== "function") {
    throw new TypeError("getToken must be a function that returns (a promise of) a token");
  }
  return resolved;
}

// src/presence.js
function presenceEventOf(type, value) {
  if (type !== "join" && type !== "leave") return null;
  if (value === null || typeof value !== "object") return null;
  const { channel, user, info } = (
    /** @type {any} */
    value
  );
  if (typeof channel !== "string" || typeof user !== "string") return null;
  return { type, channel, user, info: info === void 0 ? null : info };
}
function membersOf(answer) {
  if (answer === null || typeof answer !== "object") return null;
  const members = (
    /** @type {any} */
    answer.members
  );
  if (!Array.isArray(members)) return null;
  const usable = members.every((member) => member !== null && typeof member === "object" && typeof member.user === "string");
  return usable ? members : null;
}

// src/state.js
var TRANSITIONS = Object.freeze({
  // connect(): "offline" when the browser is offline already.
  idle: Object.freeze(
    /** @type {const} */
    ["connecting", "offline", "closed"]
  ),
  connecting: Object.freeze(
    /** @type {const} */
    ["open", "reconnecting", "offline", "closed"]
  ),
  open: Object.freeze(
    /** @type {const} */
    ["reconnecting", "offline", "closed"]
  ),
  reconnecting: Object.freeze(
    /** @type {const} */
    ["connecting", "offline", "closed"]
  ),
  offline: Object.freeze(
    /** @type {const} */
    ["connecting", "closed"]
  ),
  // connect() again, with the same subscriptions.
  closed: Object.freeze(
    /** @type {const} */
    ["connecting", "offline"]
  )
});
function canTransition(from, to) {
  return TRANSITIONS[from].includes(to);
}
function checkTransition(from, to) {
  if (!canTransition(from, to)) {
    throw new Error("pushwire: no transition from state " + from + " to " + to);
  }
}

// src/subscription.js
var Subscription = class extends EventTarget {
  /**
   * @param {string} channel
   * @param {SubscriptionOwner} owner
   */
  constructor(channel, owner) {
    super();
    this.channel = channel;
    this.closed = false;
    this._owner = owner;
  }
  /** The id of the last message delivered on this channel (or the subscribe position). */
  get cursor() {
    return this._owner.cursorOf(this.channel);
  }
  /**
   * Who is on the channel now (a channel whose rule has `presence = true`): over the open
   * WebSocket, else with `GET /presence`.
   * @returns {Promise<PresenceMember[]>} sorted by user
   * @throws {PushwireError} (rejects) the server's code (`bad_request` for a channel without
   *   presence, `permission_denied`, ...), `timeout`, `network`, `disconnected`; `closed`
   *   for a closed subscription
   */
  presence() {
    if (this.closed) return Promise.reject(new PushwireError("closed", "the subscription is closed"));
    return this._owner.presence(this.channel);
  }
  /** Stop receiving; the channel is unsubscribed once no subscription is left on it. */
  close() {
    if (!this.closed) {
      this.closed = true;
      this._owner.release(this);
    }
  }
};

// src/tokens.js
var TOKEN_ERRORS = Object.freeze(["invalid_token", "token_expired", "unauthorized"]);
var TOKEN_CLOSE_CODE = 4401;
function isTokenRefusal(error) {
  return error instanceof PushwireError && error.status === 401 && TOKEN_ERRORS.includes(error.code);
}
function tokenCloseError(reason) {
  const expired = reason === "" || reason.startsWith("token expired");
  return new PushwireError(expired ? "token_expired" : "invalid_token", reason || "token expired");
}
var TokenSource = class {
  /**
   * @param {string | null} token used for the first connect (then getToken(), if given)
   * @param {(() => Promise<string> | string) | null} getToken
   */
  constructor(token, getToken) {
    this.current = token;
    this._getToken = getToken;
    this._fresh = token !== null;
  }
  /** Whether the client presents a token at all. */
  get present() {
    return this.current !== null || this._getToken !== null;
  }
  /** Whether a new token can be had (getToken was given). */
  get renewable() {
    return this._getToken !== null;
  }
  /**
   * The token for a new connection: getToken()'s (except that a given `token` serves the
   * first connect), else the fixed one, else null (anonymous). Only a call to getToken()
   * makes it a promise, so that a connection without one opens at once.
   * @returns {Promise<string> | string | null} the promise rejects with a PushwireError,
   *   token_failed, if getToken() fails or gives no string
   */
  forConnect() {
    if (this._fresh || this._getToken === null) {
      this._fresh = false;
      return this.current;
    }
    return this.renew();
  }
  /**
   * A new token from getToken(); it becomes `current`.
   * @returns {Promise<string>}
   * @throws {PushwireError} token_failed if getToken() fails or gives no string
   */
  async renew() {
    if (this._getToken === null) throw new PushwireError("token_expired", "no getToken() to renew the token with");
    let token;
    try {
      token = await this._getToken();
    } catch (error) {
      throw new PushwireError("token_failed", "getToken() failed: " + (error instanceof Error ? error.message : String(error)));
    }
    if (typeof token !== "string" || !token) {
      throw new PushwireError("token_failed", "getToken() gave " + (token === "" ? "an empty string" : typeof token) + ", not a token");
    }
    this.current = token;
    return token;
  }
};

// src/transports/base.js
var Transport = class {
  /**
   * @param {TransportHost} host
   * @param {TransportName} name
   */
  constructor(host, name) {
    this.host = host;
    this.name = name;
    this.isOpen = false;
    this.isClosed = false;
  }
  /** Start connecting; report with host.opened() or, through fail(), host.lost(). */
  open() {
  }
  /** Release sockets, requests and timers. */
  teardown() {
  }
  /**
   * The application is closing the client for good: say goodbye if the transport must
   * (a poller, which the server would otherwise count present until its grace runs out).
   * @param {string[]} _channels
   */
  leave(_channels) {
  }
  /**
   * A channel was subscribed while this transport is the client's current one. (At open,
   * a transport subscribes host.channels() itself.)
   * @param {ChannelState} _entry
   */
  channelAdded(_entry) {
  }
  /**
   * A channel's last subscription closed.
   * @param {ChannelState} _entry
   */
  channelRemoved(_entry) {
  }
  /** Whether publish() and presence() work: only over a transport that carries requests (ws). */
  get canPublish() {
    return false;
  }
  /**
   * Publish over this transport (see canPublish).
   * @param {{channel: string, data: unknown, event?: unknown}} _body
   * @param {number} _timeoutMs
   * @returns {Promise<{channel: string, id: string}>}
   */
  publish(_body, _timeoutMs) {
    return Promise.reject(new Error("the " + this.name + " transport cannot publish"));
  }
  /**
   * Ask for a channel's presence over this transport (see canPublish).
   * @param {string} _channel
   * @param {number} _timeoutMs
   * @returns {Promise<unknown[]>}
   */
  presence(_channel, _timeoutMs) {
    return Promise.reject(new Error("the " + this.name + " transport cannot ask for presence"));
  }
  /** Report the transport open, once. */
  opened() {
    if (!this.isClosed && !this.isOpen) {
      this.isOpen = true;
      this.host.opened(this);
    }
  }
  /**
   * The connection is dead: release it and let the client decide what next.
   * @param {string} code
   * @param {string} reason
   * @param {LossCause} [cause] what the server said about it, if anything
   */
  fail(code, reason, cause) {
    if (this.isClosed) return;
    this.close();
    this.host.lost(this, code, reason, cause);
  }
  /** Release everything without telling the client (it asked for this). */
  close() {
    if (!this.isClosed) {
      this.isClosed = true;
      this.teardown();
    }
  }
};

// src/transports/http.js
function channelQuery(channels) {
  return channels.map((name) => "channel=" + encodeURIComponent(name)).join("&");
}
var HttpTransport = class extends Transport {
  /**
   * @param {TransportHost} host
   * @param {"sse" | "poll"} name
   */
  constructor(host, name) {
    super(host, name);
    this.controller = null;
    this.restartQueued = false;
  }
  open() {
    this._restart();
  }
  teardown() {
    if (this.controller) this.controller.abort();
  }
  // The channel set changed: reopen once, after the caller's synchronous changes.
  channelAdded() {
    this._queueRestart();
  }
  channelRemoved() {
    this._queueRestart();
  }
  /**
   * Receive over `channels` until the signal aborts; rejects when the request fails.
   * @param {string[]} _channels sorted
   * @param {AbortSignal} _signal
   * @returns {Promise<void>}
   */
  async run(_channels, _signal) {
  }
  _queueRestart() {
    if (this.restartQueued || this.isClosed) return;
    this.restartQueued = true;
    queueMicrotask(() => {
      this.restartQueued = false;
      if (!this.isClosed) this._restart();
    });
  }
  _restart() {
    if (this.controller) this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    const channels = this.host.channels().map((entry) => entry.name).sort();
    this.run(channels, controller.signal).catch((error) => {
      if (controller.signal.aborted || this.isClosed) return;
      if (isTokenRefusal(error)) {
        this.fail(error.code, error.message, { tokenError: error });
        return;
      }
      if (error.code === "invalid_cursor") this._forgetCursors(channels);
      if (!(error instanceof PushwireError) || error.code === "bad_frame" || Number(error.status) < 500) {
        this.host.reportError(error);
      }
      this.fail(error.code || "network", error.message);
    });
  }
  /**
   * The stream cursor over `channels`; null if one was unsubscribed meanwhile (a restart is queued).
   * @param {readonly string[]} channels
   */
  streamCursor(channels) {
    return joinStreamCursor(channels, (name) => this.host.channel(name));
  }
  /**
   * Move every channel to its part of a stream cursor from the server.
   * @param {readonly string[]} channels
   * @param {string} cursor
   */
  setStreamCursor(channels, cursor) {
    const parts = splitStreamCursor(channels, cursor);
    if (!parts) {
      this.host.badFrame("stream cursor does not match the channels", cursor);
      return;
    }
    channels.forEach((name, index) => {
      const entry = this.host.channel(name);
      if (entry) entry.moveTo(parts[index]);
    });
  }
  /**
   * The request over `channels` is answered: each of them is subscribed.
   * @param {readonly string[]} channels
   */
  streamOpened(channels) {
    for (const name of channels) {
      const entry = this.host.channel(name);
      if (entry && !entry.active) {
        entry.active = true;
        this.host.subscribed(entry, void 0);
      }
    }
  }
  /**
   * The server cannot resume from these channels' cursors: restart from now, report a gap.
   * @param {readonly string[]} channels
   */
  _forgetCursors(channels) {
    for (const name of channels) {
      const entry = this.host.channel(name);
      if (entry && entry.cursor) {
        entry.moveTo(null);
        this.host.gap(entry);
      }
    }
  }
  /**
   * A stream cursor needs a position for every channel: ask the server where
   * channels without one stand now (a short poll without a cursor starts from now).
   * @param {readonly string[]} channels
   * @param {AbortSignal} signal
   */
  async ensureCursors(channels, signal) {
    const missing = channels.filter((name) => {
      const entry = this.host.channel(name);
      return entry && !entry.cursor;
    });
    if (!missing.length) return;
    const answer = await this.host.request("/poll?" + channelQuery(missing) + "&timeout=0", { signal });
    if (!answer || typeof answer.cursor !== "string") {
      throw new PushwireError("bad_frame", "poll answer without a cursor");
    }
    const parts = answer.cursor.split(".");
    missing.forEach((name, index) => {
      const entry = this.host.channel(name);
      if (entry && !entry.cursor && parts[index]) entry.moveTo(parts[index]);
    });
    if (answer.events !== void 0) this.presenceEvents(answer.events, answer);
  }
  /**
   * A poll answer's `events`: joins and leaves, [{type, channel, user, info}, ...].
   * @param {unknown} events
   * @param {unknown} answer for a bad-frame report
   */
  presenceEvents(events, answer) {
    const host = this.host;
    if (!Array.isArray(events)) {
      host.badFrame("poll answer with events that are not a list", answer);
      return;
    }
    for (const value of events) {
      const type = value !== null && typeof value === "object" ? (
        /** @type {any} */
        value.type
      ) : void 0;
      const event = presenceEventOf(type, value);
      if (event) host.presenceEvent(event);
      else host.badFrame("poll answer with an event that is not a join or leave", value);
    }
  }
  /**
   * Without channels there is nothing to stream: check the server answers, then wait.
   * @param {AbortSignal} signal
   */
  async idle(signal) {
    if (!this.isOpen) await this.host.request("/health", { signal });
    this.opened();
  }
};

// src/transports/poll.js
var PollTransport = class extends HttpTransport {
  /** @param {TransportHost} host */
  constructor(host) {
    super(host, "poll");
  }
  /**
   * @param {string[]} channels
   * @param {AbortSignal} signal
   */
  async run(channels, signal) {
    const host = this.host;
    if (!channels.length) return this.idle(signal);
    let first = true;
    while (!signal.aborted) {
      await this.ensureCursors(channels, signal);
      const cursor = this.streamCursor(channels);
      if (signal.aborted || cursor === null) return;
      const waitMs = first ? 0 : host.options.pollTimeoutMs;
      const path = "/poll?" + channelQuery(channels) + "&cursor=" + encodeURIComponent(cursor) + "&timeout=" + waitMs / 1e3;
      const answer = await host.request(path, { signal, timeoutMs: waitMs + host.options.connectTimeoutMs });
      if (signal.aborted) return;
      if (!answer || !Array.isArray(answer.messages) || typeof answer.cursor !== "string") {
        throw new PushwireError("bad_frame", "poll answer without messages and cursor");
      }
      this.opened();
      if (first) this.streamOpened(channels);
      first = false;
      this.receive(answer, channels);
    }
  }
  /**
   * One poll answer over `channels`, already checked to have messages and a cursor.
   * Never throws: what cannot be used is a bad frame. Gaps, joins and leaves may come in
   * any answer; an answer cannot say where they fell among its messages, so they follow them.
   * @param {{messages: unknown[], cursor: string, gaps?: unknown, events?: unknown}} answer
   * @param {readonly string[]} channels
   */
  receive(answer, channels) {
    const host = this.host;
    for (const message of answer.messages) host.deliver(message, message);
    this.setStreamCursor(channels, answer.cursor);
    if (answer.gaps !== void 0) {
      if (Array.isArray(answer.gaps)) {
        for (const channel of answer.gaps) {
          const entry = typeof channel === "string" ? host.channel(channel) : void 0;
          if (entry) host.gap(entry);
        }
      } else {
        host.badFrame("poll answer with gaps that are not a list", answer);
      }
    }
    if (answer.events !== void 0) this.presenceEvents(answer.events, answer);
  }
  /**
   * The application closed the client: tell the server this poller is gone, so that it
   * leaves presence at once rather than after the grace between two polls.
   * @param {string[]} channels
   */
  leave(channels) {
    if (!channels.length) return;
    this.host.request("/poll?" + channelQuery(channels) + "&leave=1", { timeoutMs: 2e3 }).catch(() => {
    });
  }
};

// src/sse-parser.js
var SSEParser = class {
  constructor() {
    this._buffer = "";
    this._skipLineFeed = false;
    this._data = [];
    this._event = "";
    this._id = null;
    this.retryMs = null;
  }
  /**
   * Parse the next piece of decoded text.
   * @param {string} text
   * @returns {SSEEvent[]} the events completed by this piece, in order
   */
  push(text) {
    const events = [];
    let buffer = this._buffer + text;
    if (this._skipLineFeed && buffer !== "") {
      this._skipLineFeed = false;
      if (buffer[0] === "\n") buffer = buffer.slice(1);
    }
    const lineEnd = /\r\n|\r|\n/g;
    let start = 0;
    let match;
    while ((match = lineEnd.exec(buffer)) !== null) {
      if (match[0] === "\r" && lineEnd.lastIndex === buffer.length) this._skipLineFeed = true;
      const event = this._line(buffer.slice(start, match.index));
      if (event) events.push(event);
      start = lineEnd.lastIndex;
    }
    this._buffer = buffer.slice(start);
    return events;
  }
  /**
   * @param {string} line
   * @returns {SSEEvent | null}
   */
  _line(line) {
    if (line === "") return this._dispatch();
    if (line[0] === ":") return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    if (field === "data") this._data.push(value);
    else if (field === "event") this._event = value;
    else if (field === "id") {
      if (!value.includes("\0")) this._id = value;
    } else if (field === "retry") {
      if (/^[0-9]+$/.test(value)) this.retryMs = Number(value);
    }
    return null;
  }
  /** @returns {SSEEvent | null} */
  _dispatch() {
    let event = null;
    if (this._data.length || this._id !== null) {
      event = { event: this._event, data: this._data.length ? this._data.join("\n") : null, id: this._id };
    }
    this._data = [];
    this._event = "";
    this._id = null;
    return event;
  }
};

// src/transports/sse.js
var GAP_EVENT = "pushwire.gap";
var DISCONNECT_EVENT = "pushwire.disconnect";
var JOIN_EVENT = "pushwire.join";
var LEAVE_EVENT = "pushwire.leave";
var SSETransport = class extends HttpTransport {
  /** @param {TransportHost} host */
  constructor(host) {
    super(host, "sse");
    this.lastDataAt = 0;
    this.idleTimer = void 0;
  }
  teardown() {
    super.teardown();
    clearTimeout(this.idleTimer);
  }
  /**
   * @param {string[]} channels
   * @param {AbortSignal} signal
   */
  async run(channels, signal) {
    const host = this.host;
    clearTimeout(this.idleTimer);
    if (!channels.length) return this.idle(signal);
    if (this.isOpen) this._alive();
    await this.ensureCursors(channels, signal);
    const cursor = this.streamCursor(channels);
    if (signal.aborted || cursor === null) return;
    const url = host.url + "/sse?" + channelQuery(channels) + "&lastEventId=" + encodeURIComponent(cursor);
    host.log("GET", url);
    const init = { signal, cache: "no-store" };
    if (host.token) init.headers = { Authorization: "Bearer " + host.token };
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      throw new PushwireError("network", "GET /sse failed: " + messageOf(error));
    }
    if (!response.ok) throw await errorOf(response);
    if (!response.body) throw new PushwireError("bad_frame", "GET /sse answered without a body");
    this.opened();
    this.streamOpened(channels);
    clearTimeout(this.idleTimer);
    this._alive();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SSEParser();
    for (; ; ) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        throw new PushwireError("network", "event stream broke: " + messageOf(error));
      }
      if (signal.aborted) return;
      if (chunk.done) throw new PushwireError("stream_ended", "the server ended the event stream");
      this.lastDataAt = Date.now();
      for (const event of parser.push(decoder.decode(chunk.value, { stream: true }))) {
        if (signal.aborted) return;
        this.receive(event, channels);
      }
    }
  }
  /**
   * One event from the stream over `channels`. Never throws: what cannot be used is a bad frame.
   * @param {SSEEvent} event
   * @param {readonly string[]} channels
   */
  receive(event, channels) {
    const host = this.host;
    if (event.id !== null) this.setStreamCursor(channels, event.id);
    if (event.data === null) return;
    let value;
    try {
      value = JSON.parse(event.data);
    } catch (error) {
      host.badFrame("event data is not JSON", event.data);
      return;
    }
    if (event.event === GAP_EVENT && value && typeof value.channel === "string" && !("id" in value)) {
      const entry = host.channel(value.channel);
      if (!entry) return;
      if (typeof value.cursor === "string") entry.moveTo(value.cursor);
      host.gap(entry);
      return;
    }
    if (event.event === DISCONNECT_EVENT) {
      this._disconnect(value, event.data);
      return;
    }
    if (event.event === JOIN_EVENT || event.event === LEAVE_EVENT) {
      const presence = presenceEventOf(event.event === JOIN_EVENT ? "join" : "leave", value);
      if (presence) host.presenceEvent(presence);
      else host.badFrame(event.event + " without a channel and user", event.data);
      return;
    }
    host.deliver(value, event.data);
  }
  /**
   * The server ends the stream on purpose and says why, and whether to come back.
   * @param {any} value the event's data: {code, reason, reconnect}
   * @param {string} data
   */
  _disconnect(value, data) {
    if (!value || typeof value.code !== "number" || typeof value.reconnect !== "boolean") {
      this.host.badFrame(DISCONNECT_EVENT + " without a code and reconnect", data);
      return;
    }
    const reason = typeof value.reason === "string" ? value.reason : "";
    this.fail("stream_ended", "the server ended the event stream: " + value.code + (reason ? " " + reason : ""), {
      closeCode: value.code,
      closeReason: reason,
      reconnect: value.reconnect
    });
  }
  // Watchdog: a stream silent for longer than sseIdleTimeoutMs is dead.
  _alive() {
    const timeout = this.host.options.sseIdleTimeoutMs;
    if (!(timeout > 0)) return;
    this.lastDataAt = Date.now();
    const check = () => {
      const silent = Date.now() - this.lastDataAt;
      if (silent < timeout) this.idleTimer = setTimeout(check, timeout - silent);
      else this.fail("idle_timeout", "no data on the event stream for " + timeout + " ms");
    };
    this.idleTimer = setTimeout(check, timeout);
  }
};

// src/transports/websocket.js
var CONNECTING = 0;
var OPEN = 1;
var WebSocketTransport = class extends Transport {
  /** @param {TransportHost} host */
  constructor(host) {
    super(host, "ws");
    this.ws = null;
    this.pending = /* @__PURE__ */ new Map();
    this.pingTimer = void 0;
    this.lastFrameAt = 0;
  }
  get canPublish() {
    return true;
  }
  open() {
    let url = this.host.wsUrl;
    const token = this.host.token;
    if (token) url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.opened();
      if (this.isClosed) return;
      for (const entry of this.host.channels()) this.channelAdded(entry);
      this._schedulePing();
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.fail("ws_closed", "WebSocket closed: " + event.code + (event.reason ? " " + event.reason : ""), {
      closeCode: event.code,
      closeReason: event.reason || ""
    });
    ws.onerror = () => {
    };
  }
  teardown() {
    clearTimeout(this.pingTimer);
    const ws = this.ws;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      if (ws.readyState === CONNECTING || ws.readyState === OPEN) ws.close(1e3);
    }
    for (const request of this.pending.values()) {
      if (request.reject) {
        clearTimeout(request.timer);
        request.reject(new PushwireError("disconnected", "the connection closed before the server answered"));
      }
    }
    this.pending.clear();
  }
  /** @param {object} frame */
  _send(frame) {
    this.host.log("send", frame);
    if (this.ws) this.ws.send(JSON.stringify(frame));
  }
  /** @param {ChannelState} entry */
  channelAdded(entry) {
    if (!this.isOpen || this.isClosed) return;
    const ref = this.host.nextRef();
    entry.ref = ref;
    entry.active = false;
    this.pending.set(ref, { kind: "subscribe", channel: entry.name });
    const frame = { type: "subscribe", channel: entry.name, ref };
    if (entry.cursor) frame.cursor = entry.cursor;
    this._send(frame);
  }
  /** @param {ChannelState} entry */
  channelRemoved(entry) {
    if (!this.isOpen || this.isClosed) return;
    const ref = this.host.nextRef();
    this.pending.set(ref, { kind: "unsubscribe", channel: entry.name });
    this._send({ type: "unsubscribe", channel: entry.name, ref });
  }
  /**
   * @param {{channel: string, data: unknown, event?: unknown}} body
   * @param {number} timeoutMs
   * @returns {Promise<{channel: string, id: string}>}
   */
  publish(body, timeoutMs) {
    return this._ask("publish", Object.assign({ type: "publish" }, body), timeoutMs);
  }
  /**
   * @param {string} channel
   * @param {number} timeoutMs
   * @returns {Promise<unknown[]>}
   */
  presence(channel, timeoutMs) {
    return this._ask("presence", { type: "presence", channel }, timeoutMs);
  }
  /**
   * Send a request that a call awaits: its answer (or an error with its ref) settles it.
   * @param {"publish" | "presence"} kind
   * @param {object} frame without its ref
   * @param {number} timeoutMs
   * @returns {Promise<any>}
   */
  _ask(kind, frame, timeoutMs) {
    return new Promise((resolve, reject) => {
      const ref = this.host.nextRef();
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new PushwireError("timeout", "no answer to " + kind + " within " + timeoutMs + " ms"));
      }, timeoutMs);
      this.pending.set(ref, { kind, resolve, reject, timer });
      this._send(Object.assign({}, frame, { ref }));
    });
  }
  /** The server asks for a new token (ours expired): send one, or it closes with 4401. */
  _refresh() {
    this.host.renewToken().then(
      (token) => {
        if (token === null || this.isClosed) return;
        const ref = this.host.nextRef();
        this.pending.set(ref, { kind: "refresh" });
        this._send({ type: "refresh", token, ref });
      },
      (error) => {
        if (!this.isClosed) this.host.reportError(error);
      }
    );
  }
  // Heartbeat: browsers cannot send WebSocket pings, so ask with {"type":"ping"}.
  // Any frame that arrives after the ping shows the connection is alive.
  _schedulePing() {
    const { pingIntervalMs, pingTimeoutMs } = this.host.options;
    if (!(pingIntervalMs > 0)) return;
    this.pingTimer = setTimeout(() => {
      const sentAt = Date.now();
      this._send({ type: "ping", ref: this.host.nextRef() });
      this.pingTimer = setTimeout(() => {
        if (this.lastFrameAt >= sentAt) this._schedulePing();
        else this.fail("ping_timeout", "no answer to ping within " + pingTimeoutMs + " ms");
      }, pingTimeoutMs);
    }, pingIntervalMs);
  }
  /**
   * One frame from the server. Never throws: what cannot be used is a bad frame.
   * @param {unknown} text
   */
  receive(text) {
    this.lastFrameAt = Date.now();
    const host = this.host;
    if (typeof text !== "string") {
      host.badFrame("binary frame", text);
      return;
    }
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (error) {
      host.badFrame("frame is not JSON", text);
      return;
    }
    if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
      host.badFrame("frame is not a JSON object", text);
      return;
    }
    host.log("receive", frame);
    try {
      this._dispatch(frame, text);
    } catch (error) {
      host.badFrame("frame handling failed: " + error, text);
    }
  }
  /**
   * @param {any} frame a JSON object
   * @param {string} text
   */
  _dispatch(frame, text) {
    const host = this.host;
    const request = frame.ref !== void 0 ? this.pending.get(frame.ref) : void 0;
    switch (frame.type) {
      case "message": {
        const entry = host.channel(frame.channel);
        if (entry && !entry.active) return;
        const message = Object.assign({}, frame);
        delete message.type;
        host.deliver(message, text);
        return;
      }
      case "subscribed":
        if (request) this.pending.delete(frame.ref);
        this._subscribed(frame, text);
        return;
      case "gap":
        this._gap(frame, text);
        return;
      case "published":
        if (request && request.kind === "publish") {
          this.pending.delete(frame.ref);
          clearTimeout(request.timer);
          if (request.resolve) request.resolve({ channel: frame.channel, id: frame.id });
        }
        return;
      case "unsubscribed":
        if (frame.ref === void 0) this._unsubscribedByServer(frame, text);
        else if (request) this.pending.delete(frame.ref);
        return;
      case "pong":
      case "refreshed":
        if (request) this.pending.delete(frame.ref);
        return;
      case "refresh":
        this._refresh();
        return;
      case "presence":
        if (request && request.kind === "presence") this._presence(frame, request, text);
        return;
      case "join":
      case "leave": {
        const event = presenceEventOf(frame.type, frame);
        if (event) host.presenceEvent(event);
        else host.badFrame(frame.type + " without a channel and user", text);
        return;
      }
      case "error":
        this._error(frame, request);
        return;
      default:
        host.badFrame("unknown frame type", text);
    }
  }
  /**
   * @param {any} frame
   * @param {string} text
   */
  _subscribed(frame, text) {
    const host = this.host;
    const entry = host.channel(frame.channel);
    if (!entry || entry.ref !== frame.ref) return;
    if (typeof frame.cursor !== "string") {
      host.badFrame("subscribed without a cursor", text);
      return;
    }
    entry.active = true;
    if (frame.recovered !== true) entry.moveTo(frame.cursor);
    host.subscribed(entry, frame.recovered);
    if (frame.recovered === false) host.gap(entry);
  }
  /**
   * Live delivery found a hole that history could not fill; it goes on from frame.cursor.
   * @param {any} frame
   * @param {string} text
   */
  _gap(frame, text) {
    const host = this.host;
    if (typeof frame.channel !== "string" || typeof frame.cursor !== "string") {
      host.badFrame("gap without a channel and cursor", text);
      return;
    }
    const entry = host.channel(frame.channel);
    if (!entry || !entry.active) return;
    entry.moveTo(frame.cursor);
    host.gap(entry);
  }
  /**
   * @param {any} frame
   * @param {string} text
   */
  _unsubscribedByServer(frame, text) {
    if (typeof frame.channel !== "string") {
      this.host.badFrame("unsubscribed without a channel", text);
      return;
    }
    const entry = this.host.channel(frame.channel);
    if (entry) this.host.unsubscribedByServer(entry);
  }
  /**
   * The answer to a presence request.
   * @param {any} frame
   * @param {PendingRequest} request
   * @param {string} text
   */
  _presence(frame, request, text) {
    this.pending.delete(frame.ref);
    clearTimeout(request.timer);
    const members = membersOf(frame);
    if (members) {
      if (request.resolve) request.resolve(members);
      return;
    }
    this.host.badFrame("presence answer without a members list", text);
    if (request.reject) request.reject(new PushwireError("bad_frame", "presence answer without a members list"));
  }
  /**
   * @param {any} frame
   * @param {PendingRequest | undefined} request
   */
  _error(frame, request) {
    const host = this.host;
    const error = new PushwireError(
      typeof frame.code === "string" ? frame.code : "unknown",
      typeof frame.message === "string" ? frame.message : "error from the server"
    );
    if (!request) {
      host.reportError(error);
      return;
    }
    this.pending.delete(frame.ref);
    if (request.kind === "publish" || request.kind === "presence") {
      clearTimeout(request.timer);
      if (request.reject) request.reject(error);
      return;
    }
    const entry = request.channel === void 0 ? void 0 : host.channel(request.channel);
    if (request.kind !== "subscribe" || !entry || entry.ref !== frame.ref) {
      host.reportError(error);
    } else if (error.code === "invalid_cursor" && entry.cursor) {
      entry.moveTo(null);
      host.gap(entry);
      this.channelAdded(entry);
    } else {
      host.subscriptionFailed(entry, error);
    }
  }
};

// src/client.js
var DISCONNECTED_CODE = 4e3;
var CHANNEL = /^[A-Za-z0-9_.:@/#,=+-]{1,255}$/;
var TRANSPORTS2 = Object.freeze({ ws: WebSocketTransport, sse: SSETransport, poll: PollTransport });
var Channel = class extends ChannelState {
  /**
   * @param {string} name
   * @param {string | null} cursor
   * @param {Subscription} subscription the first one
   */
  constructor(name, cursor, subscription) {
    super(name, cursor);
    this.subscriptions = /* @__PURE__ */ new Set([subscription]);
  }
};
function asChannel(entry) {
  return (
    /** @type {Channel} */
    entry
  );
}
function isMessage(value) {
  return value !== null && typeof value === "object" && typeof /** @type {any} */
  value.channel === "string" && typeof /** @type {any} */
  value.id === "string" && "data" in value;
}
var Pushwire = class extends EventTarget {
  /**
   * @param {string} [url] the server's HTTP address; default: the page's origin
   * @param {Partial<ClientOptions>} [options]
   * @throws {TypeError} for an unknown option or transport, or none that can run here
   */
  constructor(url, options) {
    super();
    const base = globalThis.location ? globalThis.location.href : void 0;
    this.url = new URL(url || "/", base).href.replace(/[?#].*$/, "").replace(/\/+$/, "");
    this.options = resolveOptions(options);
    this._order = this.options.transports.filter(
      (name) => name === "ws" ? typeof WebSocket === "function" : typeof fetch === "function"
    );
    if (!this._order.length) throw new TypeError("none of the transports can run here");
    this.state = "idle";
    this.transport = null;
    this._channels = /* @__PURE__ */ new Map();
    this._connection = null;
    this._timer = void 0;
    this._index = 0;
    this._failures = 0;
    this._backoff = new Backoff(this.options);
    this._tokens = new TokenSource(this.options.token, this.options.getToken);
    this._tokenBackoff = new Backoff(this.options);
    this._lastTokenLossAt = 0;
    this._proven = false;
    this._ref = 0;
    this._host = this._makeHost();
    this._owner = Object.freeze({
      /** @param {string} channel */
      cursorOf: (channel) => {
        const entry = this._channels.get(channel);
        return entry ? entry.cursor : null;
      },
      /** @param {Subscription} subscription */
      release: (subscription) => this._release(subscription),
      /** @param {string} channel */
      presence: (channel) => this._presence(channel)
    });
    this._onOnline = () => this._online();
    this._onOffline = () => this._offline();
    if (this.options.autoConnect) {
      queueMicrotask(() => {
        if (this.state === "idle") this.connect();
      });
    }
  }
  /** Start connecting (done for you unless options.autoConnect is false); also after close(). */
  connect() {
    if (this.state !== "idle" && this.state !== "closed") return;
    if (typeof globalThis.addEventListener === "function") {
      globalThis.addEventListener("online", this._onOnline);
      globalThis.addEventListener("offline", this._onOffline);
    }
    this._backoff.reset();
    this._tokenBackoff.reset();
    this._failures = 0;
    this._open();
  }
  /** Close the connection and stop reconnecting. Subscriptions stay, for a later connect(). */
  close() {
    if (this.state === "closed") return;
    if (typeof globalThis.removeEventListener === "function") {
      globalThis.removeEventListener("online", this._onOnline);
      globalThis.removeEventListener("offline", this._onOffline);
    }
    clearTimeout(this._timer);
    const connection = this._connection;
    this._connection = null;
    this.transport = null;
    if (connection && connection.isOpen) connection.leave([...this._channels.keys()]);
    if (connection) connection.close();
    for (const entry of this._channels.values()) entry.active = false;
    this._setState("closed");
    if (connection && connection.isOpen) {
      this._emit("close", {
        transport: connection.name,
        code: "closed",
        reason: "closed by the application",
        wasOpen: true,
        willReconnect: false
      });
    }
  }
  /**
   * Receive the messages of `channel`. `onMessage(message)` gets each one
   * ({channel, id, event?, data}); the returned Subscription also fires
   * "message", "gap", "subscribed", "error", "unsubscribed", "join" and "leave" events. options.cursor resumes
   * after a message id you stored (only when the channel is not subscribed yet).
   * @param {string} channel
   * @param {(message: any) => void} [onMessage]
   * @param {{cursor?: string}} [options]
   * @returns {Subscription}
   * @throws {TypeError} for a channel name the server would refuse
   */
  subscribe(channel, onMessage, options) {
    if (typeof channel !== "string" || !CHANNEL.test(channel)) {
      throw new TypeError("invalid channel name " + JSON.stringify(channel));
    }
    const subscription = new Subscription(channel, this._owner);
    if (typeof onMessage === "function") {
      subscription.addEventListener("message", (event) => onMessage(
        /** @type {any} */
        event.message
      ));
    }
    const existing = this._channels.get(channel);
    if (existing) {
      existing.subscriptions.add(subscription);
      queueMicrotask(() => {
        if (existing.active && !subscription.closed && this._channels.get(channel) === existing) {
          subscription.dispatchEvent(
            pushwireEvent("subscribed", { channel, cursor: existing.cursor, recovered: void 0 })
          );
        }
      });
      return subscription;
    }
    const cursor = options && typeof options.cursor === "string" ? options.cursor : null;
    const entry = new Channel(channel, cursor, subscription);
    this._channels.set(channel, entry);
    if (this._connection) this._connection.channelAdded(entry);
    return subscription;
  }
  /**
   * Publish `data` to `channel` as this browser (the channel's `publish` rule
   * applies). Resolves with {channel, id}; rejects with a PushwireError.
   * @param {string} channel
   * @param {unknown} data any JSON value
   * @param {{event?: string}} [options]
   * @returns {Promise<{channel: string, id: string}>}
   */
  publish(channel, data, options) {
    const body = { channel, data };
    if (options && options.event != null) body.event = options.event;
    let text;
    try {
      text = JSON.stringify(body);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return Promise.reject(new PushwireError("bad_request", "data is not JSON-serialisable: " + reason));
    }
    const timeoutMs = this.options.publishTimeoutMs;
    const connection = this._connection;
    if (connection && connection.isOpen && connection.canPublish) {
      return connection.publish(body, timeoutMs);
    }
    return this._apiRequest("/publish", { method: "POST", body: text, timeoutMs }).then((answer) => ({
      channel: answer.channel,
      id: answer.id
    }));
  }
  /**
   * A channel's members: over the open WebSocket, else with GET /presence.
   * @param {string} channel
   * @returns {Promise<PresenceMember[]>}
   */
  _presence(channel) {
    const timeoutMs = this.options.connectTimeoutMs;
    const connection = this._connection;
    if (connection && connection.isOpen && connection.canPublish) {
      return (
        /** @type {Promise<PresenceMember[]>} */
        connection.presence(channel, timeoutMs)
      );
    }
    return this._apiRequest("/presence?channel=" + encodeURIComponent(channel), { timeoutMs }).then((answer) => {
      const members = membersOf(answer);
      if (members) return members;
      this._badFrame("presence answer without a members list", answer);
      throw new PushwireError("bad_frame", "presence answer without a members list");
    });
  }
  // Connection life cycle.
  _open() {
    clearTimeout(this._timer);
    if (globalThis.navigator && globalThis.navigator.onLine === false) {
      this._setState("offline");
      return;
    }
    const name = this._order[this._index];
    const connection = new TRANSPORTS2[name](this._host);
    this._connection = connection;
    const attempt = this._backoff.countAttempt();
    this._setState("connecting");
    this._emit("connecting", { transport: name, attempt });
    if (this._connection !== connection) return;
    this._timer = setTimeout(
      () => connection.fail("connect_timeout", "no connection within " + this.options.connectTimeoutMs + " ms"),
      this.options.connectTimeoutMs
    );
    const start = () => {
      try {
        connection.open();
      } catch (error) {
        connection.fail("connect_failed", String(error));
      }
    };
    const token = this._tokens.forConnect();
    if (!(token instanceof Promise)) {
      start();
      return;
    }
    token.then(
      () => {
        if (this._connection === connection && !connection.isClosed) start();
      },
      (error) => {
        if (this._connection !== connection || connection.isClosed) return;
        this._reportError(error);
        connection.fail(error.code, error.message);
      }
    );
  }
  /** @param {Transport} connection */
  _opened(connection) {
    if (connection !== this._connection) return;
    clearTimeout(this._timer);
    this._backoff.reset();
    this._failures = 0;
    this._proven = true;
    this.transport = connection.name;
    this._setState("open");
    this._emit("open", { transport: connection.name });
  }
  /**
   * @param {Transport} connection
   * @param {string} code
   * @param {string} reason
   * @param {LossCause} [cause]
   */
  _lost(connection, code, reason, cause = {}) {
    if (connection !== this._connection) return;
    clearTimeout(this._timer);
    this._connection = null;
    this.transport = null;
    for (const entry of this._channels.values()) entry.active = false;
    const wasOpen = connection.isOpen;
    const ended = cause.reconnect === false || cause.closeCode === DISCONNECTED_CODE;
    const tokenError = this._tokenErrorOf(cause);
    const stop = ended || tokenError !== null && !this._tokens.renewable;
    let fallBack = false;
    if (tokenError !== null) {
      if (!this._proven) {
        this._index = 0;
        this._failures = 0;
      }
    } else if (!wasOpen && !this._proven && this._order.length > 1 && code !== "token_failed") {
      this._failures += 1;
      if (this._failures >= this.options.transportAttempts) {
        this._index = (this._index + 1) % this._order.length;
        this._failures = 0;
        fallBack = true;
      }
    }
    const attempts = this._backoff.attempts;
    const giveUp = !stop && !wasOpen && attempts >= this.options.maxAttempts;
    this._log("connection lost:", code, reason);
    this._emit("close", { transport: connection.name, code, reason, wasOpen, willReconnect: !giveUp && !stop });
    if (this._connection !== null || this.state === "closed" || this.state === "offline") return;
    if (ended) {
      this.close();
      this._emit("disconnected", {
        code: cause.closeCode,
        reason: cause.closeReason === void 0 ? reason : cause.closeReason
      });
      return;
    }
    if (stop && tokenError !== null) {
      this.close();
      this._reportError(tokenError);
      return;
    }
    if (giveUp) {
      this.close();
      this._reportError(new PushwireError("gave_up", "no connection after " + attempts + " attempts"));
      return;
    }
    this._setState("reconnecting");
    let delay;
    if (fallBack) delay = 0;
    else if (tokenError !== null) delay = this._tokenDelayMs();
    else delay = this._backoff.delayMs();
    this._log("reconnecting in", Math.round(delay), "ms over", this._order[this._index]);
    this._timer = setTimeout(() => this._open(), delay);
  }
  /**
   * The token error a lost connection stands for, if the client presents a token.
   * @param {LossCause} cause
   * @returns {PushwireError | null}
   */
  _tokenErrorOf(cause) {
    if (!this._tokens.present) {
      if (cause.tokenError) this._reportError(cause.tokenError);
      return null;
    }
    if (cause.tokenError) return cause.tokenError;
    if (cause.closeCode === TOKEN_CLOSE_CODE) return tokenCloseError(cause.closeReason || "");
    return null;
  }
  /**
   * The wait before reconnecting with a new token. A backend that keeps minting tokens
   * the server refuses must not make a hot loop, so refusals in a row back off on their
   * own count, at least half the ceiling each time; a quiet spell starts the count over
   * (an SSE stream's token expiring every hour waits as little as the first time).
   */
  _tokenDelayMs() {
    const now = Date.now();
    if (now - this._lastTokenLossAt > 2 * this.options.maxReconnectDelayMs) this._tokenBackoff.reset();
    this._lastTokenLossAt = now;
    this._tokenBackoff.countAttempt();
    return this._tokenBackoff.halfJitterDelayMs();
  }
  /**
   * A request of the application's (publish, presence) was refused for its token: the
   * connection's token is no good either. With getToken, reconnect with a new one;
   * with a fixed token, stop.
   * @param {PushwireError} error
   */
  _tokenRefused(error) {
    const connection = this._connection;
    if (connection) {
      connection.fail(error.code, error.message, { tokenError: error });
    } else if (!this._tokens.renewable && this.state !== "closed") {
      this.close();
      this._reportError(error);
    }
  }
  /**
   * The server asked for a new token (/ws `refresh`).
   * @returns {Promise<string | null>}
   */
  async _renewToken() {
    if (!this._tokens.renewable) {
      this._reportError(
        new PushwireError("token_expired", "the server asks for a new token, and there is no getToken() to get one")
      );
      return null;
    }
    return this._tokens.renew();
  }
  _offline() {
    if (this.state === "closed" || this.state === "idle") return;
    clearTimeout(this._timer);
    const connection = this._connection;
    this._connection = null;
    this.transport = null;
    for (const entry of this._channels.values()) entry.active = false;
    this._setState("offline");
    if (connection) {
      connection.close();
      this._emit("close", {
        transport: connection.name,
        code: "offline",
        reason: "the browser went offline",
        wasOpen: connection.isOpen,
        willReconnect: true
      });
    }
  }
  _online() {
    if (this.state === "offline" || this.state === "reconnecting") {
      this._backoff.reset();
      this._open();
    }
  }
  /**
   * The only place `state` changes; state.js has the transitions allowed.
   * @param {ConnectionState} next
   */
  _setState(next) {
    const previous = this.state;
    if (previous === next) return;
    checkTransition(previous, next);
    this.state = next;
    this._emit("state", { state: next, previous });
  }
  /**
   * @param {string} type
   * @param {object} fields
   */
  _emit(type, fields) {
    this.dispatchEvent(pushwireEvent(type, fields));
  }
  /** @param {unknown[]} args */
  _log(...args) {
    if (this.options.debug) console.debug("[pushwire]", ...args);
  }
  /** @param {PushwireError} error */
  _reportError(error) {
    this._log("error:", error.code, error.message);
    this._emit("error", { error });
  }
  /**
   * @param {string} reason
   * @param {unknown} frame
   */
  _badFrame(reason, frame) {
    this._log("unexpected frame:", reason, frame);
    this._emit("error", { error: new PushwireError("bad_frame", reason), frame });
  }
  /**
   * fetch() a JSON answer from the server; rejects with a PushwireError.
   * @param {string} path
   * @param {RequestInit} [init]
   * @returns {Promise<any>}
   */
  _request(path, { method, body, signal, timeoutMs = this.options.connectTimeoutMs } = {}) {
    const token = this._tokens.current;
    return requestJson(this.url, path, { method, body, signal, token, timeoutMs, log: (...args) => this._log(...args) });
  }
  /**
   * _request() for the application's own calls: a token refused there is the connection's too.
   * @param {string} path
   * @param {RequestInit} [init]
   * @returns {Promise<any>}
   */
  _apiRequest(path, init) {
    return this._request(path, init).catch((error) => {
      if (isTokenRefusal(error) && this._tokens.present) this._tokenRefused(error);
      throw error;
    });
  }
  /**
   * What the transports may use of the client (transports/base.js).
   * @returns {TransportHost}
   */
  _makeHost() {
    const client = this;
    const host = {
      get options() {
        return client.options;
      },
      get url() {
        return client.url;
      },
      get wsUrl() {
        return client.options.wsUrl || client.url.replace(/^http/, "ws") + "/ws";
      },
      get token() {
        return client._tokens.current;
      },
      renewToken: () => this._renewToken(),
      channels: () => Array.from(this._channels.values()),
      channel: (name) => this._channels.get(name),
      nextRef: () => ++this._ref,
      log: (...args) => this._log(...args),
      request: (path, init) => this._request(path, init),
      opened: (transport) => this._opened(transport),
      lost: (transport, code, reason, cause) => this._lost(transport, code, reason, cause),
      deliver: (message, frame) => this._deliver(message, frame),
      subscribed: (entry, recovered) => this._subscribed(asChannel(entry), recovered),
      gap: (entry) => this._gap(asChannel(entry)),
      subscriptionFailed: (entry, error) => this._subscriptionFailed(asChannel(entry), error),
      unsubscribedByServer: (entry) => this._unsubscribedByServer(asChannel(entry)),
      presenceEvent: (event) => this._presenceEvent(event),
      badFrame: (reason, frame) => this._badFrame(reason, frame),
      reportError: (error) => this._reportError(error)
    };
    return Object.freeze(host);
  }
  // Channels and deliveries.
  /** @param {Subscription} subscription */
  _release(subscription) {
    const entry = this._channels.get(subscription.channel);
    if (!entry || !entry.subscriptions.delete(subscription) || entry.subscriptions.size) return;
    this._channels.delete(entry.name);
    if (this._connection) this._connection.channelRemoved(entry);
  }
  /**
   * @param {unknown} message
   * @param {unknown} frame what the server sent, for a bad-frame report
   */
  _deliver(message, frame) {
    if (!isMessage(message)) {
      this._badFrame("message without channel, id or data", frame);
      return;
    }
    const entry = this._channels.get(message.channel);
    if (!entry) return;
    if (!entry.accept(message.id)) {
      this._log("dropped a duplicate:", message.channel, message.id);
      return;
    }
    this._dispatchToSubscriptions(entry, "message", { message });
  }
  /**
   * @param {Channel} entry
   * @param {string} type
   * @param {object} fields
   */
  _dispatchToSubscriptions(entry, type, fields) {
    for (const subscription of Array.from(entry.subscriptions)) {
      if (!subscription.closed) subscription.dispatchEvent(pushwireEvent(type, fields));
    }
  }
  /**
   * @param {Channel} entry
   * @param {boolean | undefined} recovered
   */
  _subscribed(entry, recovered) {
    this._dispatchToSubscriptions(entry, "subscribed", { channel: entry.name, cursor: entry.cursor, recovered });
  }
  /**
   * History was lost: the application must reload its state.
   * @param {Channel} entry
   */
  _gap(entry) {
    this._log("gap on", entry.name);
    this._dispatchToSubscriptions(entry, "gap", { channel: entry.name, cursor: entry.cursor });
  }
  /**
   * @param {Channel} entry
   * @param {PushwireError} error
   */
  _subscriptionFailed(entry, error) {
    this._channels.delete(entry.name);
    this._reportError(error);
    for (const subscription of Array.from(entry.subscriptions)) {
      subscription.closed = true;
      subscription.dispatchEvent(pushwireEvent("error", { error }));
    }
  }
  /**
   * The server took the channel away (POST /api/unsubscribe): its subscriptions end, and
   * it is not resubscribed after a reconnect.
   * @param {Channel} entry
   */
  _unsubscribedByServer(entry) {
    if (this._channels.get(entry.name) !== entry) return;
    this._channels.delete(entry.name);
    this._log("the server unsubscribed", entry.name);
    for (const subscription of Array.from(entry.subscriptions)) {
      if (subscription.closed) continue;
      subscription.closed = true;
      subscription.dispatchEvent(pushwireEvent("unsubscribed", { channel: entry.name }));
    }
  }
  /** @param {PresenceEvent} event */
  _presenceEvent(event) {
    const entry = this._channels.get(event.channel);
    if (!entry) return;
    this._dispatchToSubscriptions(entry, event.type, { channel: event.channel, user: event.user, info: event.info });
  }
};

// src/index.js
var VERSION = "0.1.0";
Object.assign(Pushwire, { version: VERSION, PushwireError, Subscription });
var index_default = Pushwire;
export {
  Pushwire,
  PushwireError,
  Subscription,
  VERSION,
  index_default as default
};
