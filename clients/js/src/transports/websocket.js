// @ts-check
/**
 * The /ws transport: one WebSocket carries every channel, both ways. Frames in are
 * checked and dispatched here; what they mean for subscribers is the client's business.
 */

import { PushwireError } from "../errors.js";
import { membersOf, presenceEventOf } from "../presence.js";
import { Transport } from "./base.js";

/** @typedef {import("./base.js").TransportHost} TransportHost */
/** @typedef {import("../cursors.js").ChannelState} ChannelState */

/**
 * A request awaiting its answer, by ref.
 * @typedef {object} PendingRequest
 * @property {"subscribe" | "unsubscribe" | "publish" | "presence" | "refresh"} kind
 * @property {string} [channel]
 * @property {(answer: any) => void} [resolve]
 * @property {(error: PushwireError) => void} [reject]
 * @property {ReturnType<typeof setTimeout>} [timer]
 */

const CONNECTING = 0;
const OPEN = 1;

export class WebSocketTransport extends Transport {
  /** @param {TransportHost} host */
  constructor(host) {
    super(host, "ws");
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {Map<number, PendingRequest>} */
    this.pending = new Map();
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.pingTimer = undefined;
    this.lastFrameAt = 0;
  }

  get canPublish() {
    return true;
  }

  open() {
    // Browsers cannot set headers on a WebSocket: the token goes in the URL.
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
    ws.onclose = (event) =>
      this.fail("ws_closed", "WebSocket closed: " + event.code + (event.reason ? " " + event.reason : ""), {
        closeCode: event.code,
        closeReason: event.reason || "",
      });
    ws.onerror = () => {}; // a close event always follows, with the code
  }

  teardown() {
    clearTimeout(this.pingTimer);
    const ws = this.ws;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      if (ws.readyState === CONNECTING || ws.readyState === OPEN) ws.close(1000);
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
    /** @type {{type: string, channel: string, ref: number, cursor?: string}} */
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
      // Our own bug; report it rather than break the connection.
      host.badFrame("frame handling failed: " + error, text);
    }
  }

  /**
   * @param {any} frame a JSON object
   * @param {string} text
   */
  _dispatch(frame, text) {
    const host = this.host;
    const request = frame.ref !== undefined ? this.pending.get(frame.ref) : undefined;
    switch (frame.type) {
      case "message": {
        const entry = host.channel(frame.channel);
        // Messages for a channel whose (re)subscribe is unanswered belong to an old subscription.
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
        // Without a ref: the server took the channel away.
        if (frame.ref === undefined) this._unsubscribedByServer(frame, text);
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
    if (!entry || entry.ref !== frame.ref) return; // answer to a subscribe since undone
    if (typeof frame.cursor !== "string") {
      host.badFrame("subscribed without a cursor", text);
      return;
    }
    entry.active = true;
    // With recovered: true the replay follows and moves the cursor on message by message.
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
    // Like a message: a gap before the (re)subscribe is answered belongs to an old subscription.
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
    const entry = request.channel === undefined ? undefined : host.channel(request.channel);
    if (request.kind !== "subscribe" || !entry || entry.ref !== frame.ref) {
      host.reportError(error);
    } else if (error.code === "invalid_cursor" && entry.cursor) {
      // The server cannot resume from that cursor: start from now, and say history is lost.
      entry.moveTo(null);
      host.gap(entry);
      this.channelAdded(entry);
    } else {
      host.subscriptionFailed(entry, error);
    }
  }
}
