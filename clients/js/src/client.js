// @ts-check
/**
 * Pushwire: a connection to one server, kept open. It owns the connection state
 * machine, the reconnect and fallback decisions, and the channels with their
 * subscriptions; transports only carry frames, through the TransportHost it gives them.
 */

import { Backoff } from "./backoff.js";
import { ChannelState } from "./cursors.js";
import { PushwireError } from "./errors.js";
import { pushwireEvent } from "./events.js";
import { requestJson } from "./http.js";
import { resolveOptions } from "./options.js";
import { membersOf } from "./presence.js";
import { checkTransition } from "./state.js";
import { Subscription } from "./subscription.js";
import { TOKEN_CLOSE_CODE, TokenSource, isTokenRefusal, tokenCloseError } from "./tokens.js";
import { PollTransport } from "./transports/poll.js";
import { SSETransport } from "./transports/sse.js";
import { WebSocketTransport } from "./transports/websocket.js";

/** @typedef {import("./options.js").ClientOptions} ClientOptions */
/** @typedef {import("./options.js").TransportName} TransportName */
/** @typedef {import("./state.js").ConnectionState} ConnectionState */
/** @typedef {import("./transports/base.js").Transport} Transport */
/** @typedef {import("./transports/base.js").TransportHost} TransportHost */
/** @typedef {import("./transports/base.js").RequestInit} RequestInit */
/** @typedef {import("./transports/base.js").LossCause} LossCause */
/** @typedef {import("./presence.js").PresenceEvent} PresenceEvent */
/** @typedef {import("./subscription.js").PresenceMember} PresenceMember */

// docs/protocol.md, close codes: 4000 is POST /api/disconnect, "do not come back by yourself".
const DISCONNECTED_CODE = 4000;

// The same rule as the server's (docs/protocol.md, errors: invalid_channel).
const CHANNEL = /^[A-Za-z0-9_.:@/#,=+-]{1,255}$/;

/** @type {Readonly<Record<TransportName, new (host: TransportHost) => Transport>>} */
const TRANSPORTS = Object.freeze({ ws: WebSocketTransport, sse: SSETransport, poll: PollTransport });

/** A subscribed channel: its cursor bookkeeping and the subscriptions sharing it. */
class Channel extends ChannelState {
  /**
   * @param {string} name
   * @param {string | null} cursor
   * @param {Subscription} subscription the first one
   */
  constructor(name, cursor, subscription) {
    super(name, cursor);
    this.subscriptions = new Set([subscription]);
  }
}

/**
 * The transports hand back the ChannelStates the client gave them, which are Channels.
 * @param {ChannelState} entry
 * @returns {Channel}
 */
function asChannel(entry) {
  return /** @type {Channel} */ (entry);
}

/**
 * @param {unknown} value
 * @returns {value is {channel: string, id: string, data: unknown}}
 */
function isMessage(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof (/** @type {any} */ (value).channel) === "string" &&
    typeof (/** @type {any} */ (value).id) === "string" &&
    "data" in value
  );
}

/**
 * A connection to one pushwire server, kept open: reconnects, falls back between
 * transports, resubscribes with cursors. Events: connecting, open, close, error, state,
 * disconnected (the server ended the connection for good).
 */
export class Pushwire extends EventTarget {
  /**
   * @param {string} [url] the server's HTTP address; default: the page's origin
   * @param {Partial<ClientOptions>} [options]
   * @throws {TypeError} for an unknown option or transport, or none that can run here
   */
  constructor(url, options) {
    super();
    const base = globalThis.location ? globalThis.location.href : undefined;
    this.url = new URL(url || "/", base).href.replace(/[?#].*$/, "").replace(/\/+$/, "");
    this.options = resolveOptions(options);
    this._order = this.options.transports.filter((name) =>
      name === "ws" ? typeof WebSocket === "function" : typeof fetch === "function"
    );
    if (!this._order.length) throw new TypeError("none of the transports can run here");
    /** @type {ConnectionState} */
    this.state = "idle";
    /** @type {TransportName | null} the name of the open transport */
    this.transport = null;
    /** @type {Map<string, Channel>} */
    this._channels = new Map();
    /** @type {Transport | null} */
    this._connection = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._timer = undefined;
    this._index = 0; // into _order
    this._failures = 0; // failed connects on the current transport
    this._backoff = new Backoff(this.options); // counts failed connects since the last open
    this._tokens = new TokenSource(this.options.token, this.options.getToken);
    this._tokenBackoff = new Backoff(this.options); // counts token refusals in a row
    this._lastTokenLossAt = 0;
    this._proven = false; // a transport has worked: stay with it
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
      presence: (channel) => this._presence(channel),
    });
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
        willReconnect: false,
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
      subscription.addEventListener("message", (event) => onMessage(/** @type {any} */ (event).message));
    }
    const existing = this._channels.get(channel);
    if (existing) {
      existing.subscriptions.add(subscription);
      // Joining a confirmed channel: confirm this one too, once its listeners are added.
      queueMicrotask(() => {
        if (existing.active && !subscription.closed && this._channels.get(channel) === existing) {
          subscription.dispatchEvent(
            pushwireEvent("subscribed", { channel, cursor: existing.cursor, recovered: undefined })
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
    /** @type {{channel: string, data: unknown, event?: unknown}} */
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
      id: answer.id,
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
      return /** @type {Promise<PresenceMember[]>} */ (connection.presence(channel, timeoutMs));
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
      this._setState("offline"); // the "online" event resumes
      return;
    }
    const name = this._order[this._index];
    const connection = new TRANSPORTS[name](this._host);
    this._connection = connection;
    const attempt = this._backoff.countAttempt();
    this._setState("connecting");
    this._emit("connecting", { transport: name, attempt });
    if (this._connection !== connection) return; // a listener closed the client
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
    // The token first. getToken() may ask your backend; the connect timeout covers it.
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
    // The server said not to come back by ourselves (POST /api/disconnect).
    const ended = cause.reconnect === false || cause.closeCode === DISCONNECTED_CODE;
    const tokenError = this._tokenErrorOf(cause);
    const stop = ended || (tokenError !== null && !this._tokens.renewable);
    // Fall back only while no transport has worked: later failures mean the server
    // or the network is down, and the transport that worked will work again.
    let fallBack = false;
    if (tokenError !== null) {
      // A browser cannot see why a WebSocket upgrade was refused (it is a 1006), so
      // earlier transports may have failed for this token too: with a new one, start over.
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
    // A "close" listener may have called close() (or the browser went offline).
    if (this._connection !== null || this.state === "closed" || this.state === "offline") return;
    if (ended) {
      this.close();
      this._emit("disconnected", {
        code: cause.closeCode,
        reason: cause.closeReason === undefined ? reason : cause.closeReason,
      });
      return;
    }
    if (stop && tokenError !== null) {
      // A fixed token: nothing new to try.
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
      // Anonymous: a 401 (say, allow_anonymous = false) is reported like other refusals.
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
        willReconnect: true,
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
    /** @type {TransportHost} */
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
      reportError: (error) => this._reportError(error),
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
    if (!entry) return; // unsubscribed meanwhile
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
    if (!entry) return; // unsubscribed meanwhile
    this._dispatchToSubscriptions(entry, event.type, { channel: event.channel, user: event.user, info: event.info });
  }
}
