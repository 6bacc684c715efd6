/*
 * pushwire.js: the browser client for pushwire. Reference: docs/client-js.md.
 *
 * One dependency-free file, served by every pushwire server at /pushwire.js.
 * Load it with <script src> (it defines globalThis.Pushwire) or, from a module,
 * with `import "https://HOST/pushwire.js"` followed by `const { Pushwire } = globalThis`.
 * It has no `export` statement on purpose: that would be a syntax error in a classic script.
 *
 * Receives over WebSocket (/ws), Server-Sent Events (/sse, read with fetch so that
 * every named event and every keep-alive comment is seen) or long-polling (/poll);
 * publishes over the open WebSocket, otherwise with POST /publish.
 */
(function (root) {
  "use strict";

  const VERSION = "0.1.0";
  const TRANSPORTS = ["ws", "sse", "poll"];
  const DEFAULTS = {
    transports: TRANSPORTS,
    wsUrl: null, // default: the server URL with ws(s):// and /ws
    transportAttempts: 2, // failed connects before falling back to the next transport
    minReconnectDelayMs: 500,
    maxReconnectDelayMs: 30000,
    connectTimeoutMs: 10000,
    maxAttempts: Infinity, // consecutive failed connects before giving up
    pingIntervalMs: 25000, // 0: no heartbeat
    pingTimeoutMs: 10000,
    sseIdleTimeoutMs: 45000, // the server writes a comment every 15 s by default; 0: off
    pollTimeoutMs: 25000, // how long the server may hold a long poll
    publishTimeoutMs: 10000,
    autoConnect: true,
    debug: false,
  };
  // The same rule as the server's (docs/protocol.md, errors: invalid_channel).
  const CHANNEL = /^[A-Za-z0-9_.:@/#,=+-]{1,255}$/;
  // Ids remembered per channel to drop a message delivered twice.
  const SEEN_IDS = 1000;
  const GAP_EVENT = "pushwire.gap";

  /** An error with a wire code: the server's (`permission_denied`, ...) or the client's. */
  class PushwireError extends Error {
    constructor(code, message, status) {
      super(message);
      this.name = "PushwireError";
      this.code = code;
      if (status !== undefined) this.status = status;
    }
  }

  function pushwireEvent(type, fields) {
    return Object.assign(new Event(type), fields);
  }

  function isMessage(value) {
    return (
      value !== null &&
      typeof value === "object" &&
      typeof value.channel === "string" &&
      typeof value.id === "string" &&
      "data" in value
    );
  }

  function channelQuery(channels) {
    return channels.map((name) => "channel=" + encodeURIComponent(name)).join("&");
  }

  /** One subscriber's view of a channel; several may share a channel. */
  class Subscription extends EventTarget {
    constructor(client, channel) {
      super();
      this.channel = channel;
      this.closed = false;
      this._client = client;
    }

    /** The id of the last message delivered on this channel (or the subscribe position). */
    get cursor() {
      const entry = this._client._channels.get(this.channel);
      return entry ? entry.cursor : null;
    }

    /** Stop receiving; the channel is unsubscribed once no subscription is left on it. */
    close() {
      if (!this.closed) {
        this.closed = true;
        this._client._unsubscribe(this);
      }
    }
  }

  // Connections: one attempt over one transport. The client makes a new one per attempt.

  class Connection {
    constructor(client) {
      this.client = client;
      this.isOpen = false;
      this.isClosed = false;
    }

    opened() {
      if (!this.isClosed && !this.isOpen) {
        this.isOpen = true;
        this.client._opened(this);
      }
    }

    /** The connection is dead: release it and let the client decide what next. */
    fail(code, reason) {
      if (this.isClosed) return;
      this.close();
      this.client._lost(this, code, reason);
    }

    /** Release everything without telling the client (it asked for this). */
    close() {
      if (!this.isClosed) {
        this.isClosed = true;
        this.teardown();
      }
    }
  }

  class WebSocketConnection extends Connection {
    constructor(client) {
      super(client);
      this.name = "ws";
      this.ws = null;
      this.pending = new Map(); // ref -> {kind, channel?, resolve?, reject?, timer?}
      this.pingTimer = null;
      this.lastFrameAt = 0;
    }

    open() {
      const ws = new WebSocket(this.client._wsUrl());
      this.ws = ws;
      ws.onopen = () => {
        this.opened();
        if (this.isClosed) return;
        for (const entry of this.client._channels.values()) this.channelAdded(entry);
        this._schedulePing();
      };
      ws.onmessage = (event) => this._frame(event.data);
      ws.onclose = (event) =>
        this.fail("ws_closed", "WebSocket closed: " + event.code + (event.reason ? " " + event.reason : ""));
      ws.onerror = () => {}; // a close event always follows, with the code
    }

    teardown() {
      clearTimeout(this.pingTimer);
      const ws = this.ws;
      if (ws) {
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(1000);
      }
      for (const request of this.pending.values()) {
        if (request.reject) {
          clearTimeout(request.timer);
          request.reject(new PushwireError("disconnected", "the connection closed before the server answered"));
        }
      }
      this.pending.clear();
    }

    _send(frame) {
      this.client._log("send", frame);
      this.ws.send(JSON.stringify(frame));
    }

    channelAdded(entry) {
      if (!this.isOpen || this.isClosed) return;
      const ref = this.client._nextRef();
      entry.ref = ref;
      entry.active = false;
      this.pending.set(ref, { kind: "subscribe", channel: entry.name });
      const frame = { type: "subscribe", channel: entry.name, ref };
      if (entry.cursor) frame.cursor = entry.cursor;
      this._send(frame);
    }

    channelRemoved(entry) {
      if (!this.isOpen || this.isClosed) return;
      const ref = this.client._nextRef();
      this.pending.set(ref, { kind: "unsubscribe", channel: entry.name });
      this._send({ type: "unsubscribe", channel: entry.name, ref });
    }

    publish(body, timeoutMs) {
      return new Promise((resolve, reject) => {
        const ref = this.client._nextRef();
        const timer = setTimeout(() => {
          this.pending.delete(ref);
          reject(new PushwireError("timeout", "no answer to publish within " + timeoutMs + " ms"));
        }, timeoutMs);
        this.pending.set(ref, { kind: "publish", resolve, reject, timer });
        this._send(Object.assign({ type: "publish", ref }, body));
      });
    }

    // Heartbeat: browsers cannot send WebSocket pings, so ask with {"type":"ping"}.
    // Any frame that arrives after the ping shows the connection is alive.
    _schedulePing() {
      const { pingIntervalMs, pingTimeoutMs } = this.client.options;
      if (!(pingIntervalMs > 0)) return;
      this.pingTimer = setTimeout(() => {
        const sentAt = Date.now();
        this._send({ type: "ping", ref: this.client._nextRef() });
        this.pingTimer = setTimeout(() => {
          if (this.lastFrameAt >= sentAt) this._schedulePing();
          else this.fail("ping_timeout", "no answer to ping within " + pingTimeoutMs + " ms");
        }, pingTimeoutMs);
      }, pingIntervalMs);
    }

    _frame(text) {
      this.lastFrameAt = Date.now();
      const client = this.client;
      if (typeof text !== "string") {
        client._badFrame("binary frame", text);
        return;
      }
      let frame;
      try {
        frame = JSON.parse(text);
      } catch (error) {
        client._badFrame("frame is not JSON", text);
        return;
      }
      if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
        client._badFrame("frame is not a JSON object", text);
        return;
      }
      client._log("receive", frame);
      try {
        this._dispatch(frame, text);
      } catch (error) {
        // Our own bug; report it rather than break the connection.
        client._badFrame("frame handling failed: " + error, text);
      }
    }

    _dispatch(frame, text) {
      const client = this.client;
      const request = frame.ref !== undefined ? this.pending.get(frame.ref) : undefined;
      switch (frame.type) {
        case "message": {
          const entry = client._channels.get(frame.channel);
          // Messages for a channel whose (re)subscribe is unanswered belong to an old subscription.
          if (entry && !entry.active) return;
          const message = Object.assign({}, frame);
          delete message.type;
          client._deliver(message, text);
          return;
        }
        case "subscribed":
          if (request) this.pending.delete(frame.ref);
          this._subscribed(frame, text);
          return;
        case "published":
          if (request && request.kind === "publish") {
            this.pending.delete(frame.ref);
            clearTimeout(request.timer);
            request.resolve({ channel: frame.channel, id: frame.id });
          }
          return;
        case "unsubscribed":
        case "pong":
          if (request) this.pending.delete(frame.ref);
          return;
        case "error":
          this._error(frame, request);
          return;
        default:
          client._badFrame("unknown frame type", text);
      }
    }

    _subscribed(frame, text) {
      const client = this.client;
      const entry = client._channels.get(frame.channel);
      if (!entry || entry.ref !== frame.ref) return; // answer to a subscribe since undone
      if (typeof frame.cursor !== "string") {
        client._badFrame("subscribed without a cursor", text);
        return;
      }
      entry.active = true;
      // With recovered: true the replay follows and moves the cursor on message by message.
      if (frame.recovered !== true) entry.cursor = frame.cursor;
      client._subscribed(entry, frame.recovered);
      if (frame.recovered === false) client._gap(entry);
    }

    _error(frame, request) {
      const client = this.client;
      const error = new PushwireError(
        typeof frame.code === "string" ? frame.code : "unknown",
        typeof frame.message === "string" ? frame.message : "error from the server"
      );
      if (!request) {
        client._reportError(error);
        return;
      }
      this.pending.delete(frame.ref);
      if (request.kind === "publish") {
        clearTimeout(request.timer);
        request.reject(error);
        return;
      }
      const entry = client._channels.get(request.channel);
      if (request.kind !== "subscribe" || !entry || entry.ref !== frame.ref) {
        client._reportError(error);
      } else if (error.code === "invalid_cursor" && entry.cursor) {
        // The server cannot resume from that cursor: start from now, and say history is lost.
        entry.cursor = null;
        client._gap(entry);
        this.channelAdded(entry);
      } else {
        client._subscriptionFailed(entry, error);
      }
    }
  }

  /** SSE and polling: one HTTP request (stream or poll) at a time over every channel. */
  class HttpConnection extends Connection {
    constructor(client) {
      super(client);
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
      const channels = Array.from(this.client._channels.keys()).sort();
      this._run(channels, controller.signal).catch((error) => {
        if (controller.signal.aborted || this.isClosed) return;
        if (error.code === "invalid_cursor") this.client._forgetCursors(channels);
        // Report what is not just a network failure: an answer that makes no sense,
        // a refusal (4xx), or our own bug.
        if (!(error instanceof PushwireError) || error.code === "bad_frame" || error.status < 500) {
          this.client._reportError(error);
        }
        this.fail(error.code || "network", error.message);
      });
    }

    /** The stream cursor over `channels`; null if one was unsubscribed meanwhile (a restart is queued). */
    _streamCursor(channels) {
      const parts = [];
      for (const name of channels) {
        const entry = this.client._channels.get(name);
        if (!entry) return null;
        if (!entry.cursor) throw new PushwireError("bad_frame", "the server gave no position for " + name);
        parts.push(entry.cursor);
      }
      return parts.join(".");
    }

    /** Without channels there is nothing to stream: check the server answers, then wait. */
    async _idle(signal) {
      if (!this.isOpen) await this.client._request("/health", { signal });
      this.opened();
    }
  }

  class SSEConnection extends HttpConnection {
    constructor(client) {
      super(client);
      this.name = "sse";
      this.lastDataAt = 0;
      this.idleTimer = null;
    }

    teardown() {
      super.teardown();
      clearTimeout(this.idleTimer);
    }

    async _run(channels, signal) {
      const client = this.client;
      clearTimeout(this.idleTimer);
      if (!channels.length) return this._idle(signal);
      // Reopening for a new channel set must not hang either.
      if (this.isOpen) this._alive();
      await client._ensureCursors(channels, signal);
      const cursor = this._streamCursor(channels);
      if (signal.aborted || cursor === null) return;
      const url = client.url + "/sse?" + channelQuery(channels) + "&lastEventId=" + encodeURIComponent(cursor);
      client._log("GET", url);
      let response;
      try {
        response = await fetch(url, { signal, cache: "no-store" });
      } catch (error) {
        throw new PushwireError("network", "GET /sse failed: " + error.message);
      }
      if (!response.ok) throw await errorOf(response);
      this.opened();
      client._streamOpened(channels);
      clearTimeout(this.idleTimer);
      this._alive();
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = { buffer: "", data: [], event: "", id: null };
      for (;;) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch (error) {
          throw new PushwireError("network", "event stream broke: " + error.message);
        }
        if (signal.aborted) return;
        if (chunk.done) throw new PushwireError("stream_ended", "the server ended the event stream");
        this.lastDataAt = Date.now();
        parser.buffer += decoder.decode(chunk.value, { stream: true });
        this._lines(parser, channels, signal);
      }
    }

    // The event-stream format (WHATWG HTML §9.2.6); the server ends lines with "\n".
    _lines(parser, channels, signal) {
      let end;
      while (!signal.aborted && (end = parser.buffer.indexOf("\n")) >= 0) {
        let line = parser.buffer.slice(0, end);
        parser.buffer = parser.buffer.slice(end + 1);
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          this._event(parser, channels);
          parser.data = [];
          parser.event = "";
          parser.id = null;
          continue;
        }
        if (line[0] === ":") continue; // a comment: the server's keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value[0] === " ") value = value.slice(1);
        if (field === "data") parser.data.push(value);
        else if (field === "event") parser.event = value;
        else if (field === "id") parser.id = value;
      }
    }

    _event(parser, channels) {
      const client = this.client;
      // The id is the stream cursor: every channel's position, also for id-only events.
      if (parser.id !== null) client._setStreamCursor(channels, parser.id);
      if (!parser.data.length) return;
      const text = parser.data.join("\n");
      let value;
      try {
        value = JSON.parse(text);
      } catch (error) {
        client._badFrame("event data is not JSON", text);
        return;
      }
      // A publication may be named "pushwire.gap" too; only a real gap lacks an id.
      if (parser.event === GAP_EVENT && value && typeof value.channel === "string" && !("id" in value)) {
        const entry = client._channels.get(value.channel);
        if (entry) client._gap(entry);
        return;
      }
      client._deliver(value, text);
    }

    // Watchdog: a stream silent for longer than sseIdleTimeoutMs is dead.
    _alive() {
      const timeout = this.client.options.sseIdleTimeoutMs;
      if (!(timeout > 0)) return;
      this.lastDataAt = Date.now();
      const check = () => {
        const silent = Date.now() - this.lastDataAt;
        if (silent < timeout) this.idleTimer = setTimeout(check, timeout - silent);
        else this.fail("idle_timeout", "no data on the event stream for " + timeout + " ms");
      };
      this.idleTimer = setTimeout(check, timeout);
    }
  }

  class PollConnection extends HttpConnection {
    constructor(client) {
      super(client);
      this.name = "poll";
    }

    async _run(channels, signal) {
      const client = this.client;
      if (!channels.length) return this._idle(signal);
      let first = true;
      while (!signal.aborted) {
        await client._ensureCursors(channels, signal);
        const cursor = this._streamCursor(channels);
        if (signal.aborted || cursor === null) return;
        // The first poll over a channel set answers at once: it opens the connection
        // and confirms the subscriptions.
        const waitMs = first ? 0 : client.options.pollTimeoutMs;
        const path =
          "/poll?" + channelQuery(channels) + "&cursor=" + encodeURIComponent(cursor) + "&timeout=" + waitMs / 1000;
        const answer = await client._request(path, {
          signal,
          timeoutMs: waitMs + client.options.connectTimeoutMs,
        });
        if (signal.aborted) return;
        if (!answer || !Array.isArray(answer.messages) || typeof answer.cursor !== "string") {
          throw new PushwireError("bad_frame", "poll answer without messages and cursor");
        }
        this.opened();
        if (first) client._streamOpened(channels);
        first = false;
        for (const message of answer.messages) client._deliver(message, message);
        client._setStreamCursor(channels, answer.cursor);
        if (answer.gaps !== undefined && !Array.isArray(answer.gaps)) {
          client._badFrame("poll answer with gaps that are not a list", answer);
        }
        for (const channel of Array.isArray(answer.gaps) ? answer.gaps : []) {
          const entry = client._channels.get(channel);
          if (entry) client._gap(entry);
        }
      }
    }
  }

  const CONNECTIONS = { ws: WebSocketConnection, sse: SSEConnection, poll: PollConnection };

  async function errorOf(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      // not JSON: a proxy's page, say
    }
    const code = body && typeof body.error === "string" ? body.error : "http_" + response.status;
    const message = body && typeof body.message === "string" ? body.message : "HTTP " + response.status;
    return new PushwireError(code, message, response.status);
  }

  /**
   * A connection to one pushwire server, kept open: reconnects, falls back between
   * transports, resubscribes with cursors. Events: connecting, open, close, error, state.
   */
  class Pushwire extends EventTarget {
    constructor(url, options) {
      super();
      const base = root.location ? root.location.href : undefined;
      this.url = new URL(url || "/", base).href.replace(/[?#].*$/, "").replace(/\/+$/, "");
      this.options = Object.assign({}, DEFAULTS);
      for (const [key, value] of Object.entries(options || {})) {
        if (!(key in DEFAULTS)) throw new TypeError("unknown option " + JSON.stringify(key));
        if (value !== undefined) this.options[key] = value;
      }
      for (const name of this.options.transports) {
        if (!CONNECTIONS[name]) throw new TypeError("unknown transport " + JSON.stringify(name));
      }
      this._order = this.options.transports.filter(
        (name) => (name === "ws" ? typeof WebSocket === "function" : typeof fetch === "function")
      );
      if (!this._order.length) throw new TypeError("none of the transports can run here");
      this.state = "idle";
      this.transport = null; // the name of the open transport
      this._channels = new Map(); // name -> {name, cursor, subs, seen, active, ref}
      this._connection = null;
      this._timer = null;
      this._index = 0; // into _order
      this._failures = 0; // failed connects on the current transport
      this._attempt = 0; // failed connects since the last open
      this._proven = false; // a transport has worked: stay with it
      this._ref = 0;
      this._onOnline = () => this._online();
      this._onOffline = () => this._offline();
      if (this.options.autoConnect) {
        // After the constructor, so that listeners added right away see "connecting".
        queueMicrotask(() => {
          if (this.state === "idle") this.connect();
        });
      }
    }

    /** Start connecting (done for you unless options.autoConnect is false); also after close(). */
    connect() {
      if (this.state !== "idle" && this.state !== "closed") return;
      if (root.addEventListener) {
        root.addEventListener("online", this._onOnline);
        root.addEventListener("offline", this._onOffline);
      }
      this._attempt = 0;
      this._failures = 0;
      this._open();
    }

    /** Close the connection and stop reconnecting. Subscriptions stay, for a later connect(). */
    close() {
      if (this.state === "closed") return;
      if (root.removeEventListener) {
        root.removeEventListener("online", this._onOnline);
        root.removeEventListener("offline", this._onOffline);
      }
      clearTimeout(this._timer);
      const connection = this._connection;
      this._connection = null;
      this.transport = null;
      if (connection) connection.close();
      for (const entry of this._channels.values()) entry.active = false;
      this._setState("closed");
      if (connection && connection.isOpen) {
        this._emit("close", {
          transport: connection.name,
          code: "closed",
          reason: "closed by the application",
          wasOpen: true,
          willReconnect: false,
        });
      }
    }

    /**
     * Receive the messages of `channel`. `onMessage(message)` gets each one
     * ({channel, id, event?, data}); the returned Subscription also fires
     * "message", "gap", "subscribed" and "error" events. options.cursor resumes
     * after a message id you stored (only when the channel is not subscribed yet).
     */
    subscribe(channel, onMessage, options) {
      if (typeof channel !== "string" || !CHANNEL.test(channel)) {
        throw new TypeError("invalid channel name " + JSON.stringify(channel));
      }
      const subscription = new Subscription(this, channel);
      if (typeof onMessage === "function") {
        subscription.addEventListener("message", (event) => onMessage(event.message));
      }
      let entry = this._channels.get(channel);
      if (entry) {
        entry.subs.add(subscription);
        // Joining a confirmed channel: confirm this one too, once its listeners are added.
        queueMicrotask(() => {
          if (entry.active && !subscription.closed && this._channels.get(channel) === entry) {
            subscription.dispatchEvent(
              pushwireEvent("subscribed", { channel, cursor: entry.cursor, recovered: undefined })
            );
          }
        });
        return subscription;
      }
      const cursor = options && typeof options.cursor === "string" ? options.cursor : null;
      entry = { name: channel, cursor, subs: new Set([subscription]), seen: new Set(), active: false, ref: null };
      this._channels.set(channel, entry);
      if (this._connection) this._connection.channelAdded(entry);
      return subscription;
    }

    /**
     * Publish `data` to `channel` as this browser (the channel's allow_client_publish
     * rule applies). Resolves with {channel, id}; rejects with a PushwireError.
     */
    publish(channel, data, options) {
      const body = { channel, data };
      if (options && options.event != null) body.event = options.event;
      let text;
      try {
        text = JSON.stringify(body);
      } catch (error) {
        return Promise.reject(new PushwireError("bad_request", "data is not JSON-serialisable: " + error.message));
      }
      const timeoutMs = this.options.publishTimeoutMs;
      const connection = this._connection;
      if (connection && connection.isOpen && connection.publish) {
        return connection.publish(body, timeoutMs);
      }
      return this._request("/publish", { method: "POST", body: text, timeoutMs }).then((answer) => ({
        channel: answer.channel,
        id: answer.id,
      }));
    }

    // Connection life cycle.

    _open() {
      clearTimeout(this._timer);
      if (root.navigator && root.navigator.onLine === false) {
        this._setState("offline"); // the "online" event resumes
        return;
      }
      const name = this._order[this._index];
      const connection = new CONNECTIONS[name](this);
      this._connection = connection;
      this._attempt += 1;
      this._setState("connecting");
      this._emit("connecting", { transport: name, attempt: this._attempt });
      if (this._connection !== connection) return; // a listener closed the client
      this._timer = setTimeout(
        () => connection.fail("connect_timeout", "no connection within " + this.options.connectTimeoutMs + " ms"),
        this.options.connectTimeoutMs
      );
      try {
        connection.open();
      } catch (error) {
        connection.fail("connect_failed", String(error));
      }
    }

    _opened(connection) {
      if (connection !== this._connection) return;
      clearTimeout(this._timer);
      this._attempt = 0;
      this._failures = 0;
      this._proven = true;
      this.transport = connection.name;
      this._setState("open");
      this._emit("open", { transport: connection.name });
    }

    _lost(connection, code, reason) {
      if (connection !== this._connection) return;
      clearTimeout(this._timer);
      this._connection = null;
      this.transport = null;
      for (const entry of this._channels.values()) entry.active = false;
      const wasOpen = connection.isOpen;
      // Fall back only while no transport has worked: later failures mean the server
      // or the network is down, and the transport that worked will work again.
      let fallBack = false;
      if (!wasOpen && !this._proven && this._order.length > 1) {
        this._failures += 1;
        if (this._failures >= this.options.transportAttempts) {
          this._index = (this._index + 1) % this._order.length;
          this._failures = 0;
          fallBack = true;
        }
      }
      const giveUp = !wasOpen && this._attempt >= this.options.maxAttempts;
      this._log("connection lost:", code, reason);
      this._emit("close", { transport: connection.name, code, reason, wasOpen, willReconnect: !giveUp });
      if (this._connection !== null || this.state === "closed" || this.state === "offline") return;
      if (giveUp) {
        this.close();
        this._reportError(new PushwireError("gave_up", "no connection after " + this._attempt + " attempts"));
        return;
      }
      this._setState("reconnecting");
      const delay = fallBack ? 0 : this._backoffMs();
      this._log("reconnecting in", Math.round(delay), "ms over", this._order[this._index]);
      this._timer = setTimeout(() => this._open(), delay);
    }

    /** Exponential back-off with full jitter: uniform in [0, min(max, min * 2^attempt)). */
    _backoffMs() {
      const { minReconnectDelayMs, maxReconnectDelayMs } = this.options;
      return Math.random() * Math.min(maxReconnectDelayMs, minReconnectDelayMs * 2 ** this._attempt);
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
          willReconnect: true,
        });
      }
    }

    _online() {
      if (this.state === "offline" || this.state === "reconnecting") {
        this._attempt = 0;
        this._open();
      }
    }

    _setState(state) {
      const previous = this.state;
      if (previous === state) return;
      this.state = state;
      this._emit("state", { state, previous });
    }

    _emit(type, fields) {
      this.dispatchEvent(pushwireEvent(type, fields));
    }

    _log(...args) {
      if (this.options.debug) console.debug("[pushwire]", ...args);
    }

    _reportError(error) {
      this._log("error:", error.code, error.message);
      this._emit("error", { error });
    }

    _badFrame(reason, frame) {
      this._log("unexpected frame:", reason, frame);
      this._emit("error", { error: new PushwireError("bad_frame", reason), frame });
    }

    _nextRef() {
      this._ref += 1;
      return this._ref;
    }

    _wsUrl() {
      return this.options.wsUrl || this.url.replace(/^http/, "ws") + "/ws";
    }

    // Channels and deliveries.

    _unsubscribe(subscription) {
      const entry = this._channels.get(subscription.channel);
      if (!entry || !entry.subs.delete(subscription) || entry.subs.size) return;
      this._channels.delete(entry.name);
      if (this._connection) this._connection.channelRemoved(entry);
    }

    _deliver(message, frame) {
      if (!isMessage(message)) {
        this._badFrame("message without channel, id or data", frame);
        return;
      }
      const entry = this._channels.get(message.channel);
      if (!entry) return; // unsubscribed meanwhile
      if (entry.seen.has(message.id)) {
        this._log("dropped a duplicate:", message.channel, message.id);
        return;
      }
      entry.seen.add(message.id);
      if (entry.seen.size > SEEN_IDS) entry.seen.delete(entry.seen.values().next().value);
      entry.cursor = message.id;
      for (const subscription of Array.from(entry.subs)) {
        if (!subscription.closed) subscription.dispatchEvent(pushwireEvent("message", { message }));
      }
    }

    _dispatchToSubscriptions(entry, type, fields) {
      for (const subscription of Array.from(entry.subs)) {
        if (!subscription.closed) subscription.dispatchEvent(pushwireEvent(type, fields));
      }
    }

    _subscribed(entry, recovered) {
      this._dispatchToSubscriptions(entry, "subscribed", { channel: entry.name, cursor: entry.cursor, recovered });
    }

    /** History was lost: the application must reload its state. */
    _gap(entry) {
      this._log("gap on", entry.name);
      this._dispatchToSubscriptions(entry, "gap", { channel: entry.name, cursor: entry.cursor });
    }

    _subscriptionFailed(entry, error) {
      this._channels.delete(entry.name);
      this._reportError(error);
      for (const subscription of Array.from(entry.subs)) {
        subscription.closed = true;
        subscription.dispatchEvent(pushwireEvent("error", { error }));
      }
    }

    _streamOpened(channels) {
      for (const name of channels) {
        const entry = this._channels.get(name);
        if (entry && !entry.active) {
          entry.active = true;
          this._subscribed(entry, undefined);
        }
      }
    }

    /** Split a stream cursor (per-channel cursors joined by "." in sorted order). */
    _setStreamCursor(channels, cursor) {
      const parts = String(cursor).split(".");
      if (parts.length !== channels.length) {
        this._badFrame("stream cursor does not match the channels", cursor);
        return;
      }
      channels.forEach((name, index) => {
        const entry = this._channels.get(name);
        if (entry) entry.cursor = parts[index];
      });
    }

    /** The server cannot resume from these channels' cursors: restart from now, report a gap. */
    _forgetCursors(channels) {
      for (const name of channels) {
        const entry = this._channels.get(name);
        if (entry && entry.cursor) {
          entry.cursor = null;
          this._gap(entry);
        }
      }
    }

    /**
     * A stream cursor needs a position for every channel: ask the server where
     * channels without one stand now (a short poll without a cursor starts from now).
     */
    async _ensureCursors(channels, signal) {
      const missing = channels.filter((name) => {
        const entry = this._channels.get(name);
        return entry && !entry.cursor;
      });
      if (!missing.length) return;
      const answer = await this._request("/poll?" + channelQuery(missing) + "&timeout=0", { signal });
      if (!answer || typeof answer.cursor !== "string") {
        throw new PushwireError("bad_frame", "poll answer without a cursor");
      }
      const parts = answer.cursor.split(".");
      missing.forEach((name, index) => {
        const entry = this._channels.get(name);
        if (entry && !entry.cursor && parts[index]) entry.cursor = parts[index];
      });
    }

    /** fetch() a JSON answer; rejects with a PushwireError (server code, "network" or "timeout"). */
    async _request(path, { method = "GET", body, signal, timeoutMs = this.options.connectTimeoutMs } = {}) {
      const controller = new AbortController();
      const abort = () => controller.abort();
      if (signal) signal.addEventListener("abort", abort);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
      const init = { method, signal: controller.signal, cache: "no-store" };
      if (body !== undefined) {
        init.body = body;
        init.headers = { "Content-Type": "application/json" };
      }
      this._log(method, path);
      try {
        const response = await fetch(this.url + path, init);
        if (!response.ok) throw await errorOf(response);
        try {
          return await response.json();
        } catch (error) {
          if (controller.signal.aborted) throw error;
          throw new PushwireError("bad_frame", method + " " + path.split("?")[0] + " answered with something not JSON");
        }
      } catch (error) {
        if (error instanceof PushwireError) throw error;
        if (timedOut) throw new PushwireError("timeout", method + " " + path.split("?")[0] + " timed out");
        throw new PushwireError("network", method + " " + path.split("?")[0] + " failed: " + error.message);
      } finally {
        clearTimeout(timer);
        if (signal) signal.removeEventListener("abort", abort);
      }
    }
  }

  Pushwire.version = VERSION;
  Pushwire.PushwireError = PushwireError;
  Pushwire.Subscription = Subscription;
  root.Pushwire = Pushwire;
  if (typeof module === "object" && module && module.exports) module.exports = { Pushwire, PushwireError };
})(globalThis);
