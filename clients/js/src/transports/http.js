// @ts-check
/**
 * What SSE and polling share: one HTTP request (a stream or a poll) at a time carries
 * every channel, restarted when the channel set changes, resuming by stream cursor.
 */

import { joinStreamCursor, splitStreamCursor } from "../cursors.js";
import { PushwireError } from "../errors.js";
import { isTokenRefusal } from "../tokens.js";
import { Transport } from "./base.js";

/** @typedef {import("./base.js").TransportHost} TransportHost */

/**
 * @param {readonly string[]} channels
 * @returns {string}
 */
export function channelQuery(channels) {
  return channels.map((name) => "channel=" + encodeURIComponent(name)).join("&");
}

export class HttpTransport extends Transport {
  /**
   * @param {TransportHost} host
   * @param {"sse" | "poll"} name
   */
  constructor(host, name) {
    super(host, name);
    /** @type {AbortController | null} */
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
  async run(_channels, _signal) {}

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
    const channels = this.host
      .channels()
      .map((entry) => entry.name)
      .sort();
    this.run(channels, controller.signal).catch((error) => {
      if (controller.signal.aborted || this.isClosed) return;
      // A 401 for the token: the client decides (a new token, or stop), and reports it.
      if (isTokenRefusal(error)) {
        this.fail(error.code, error.message, { tokenError: error });
        return;
      }
      if (error.code === "invalid_cursor") this._forgetCursors(channels);
      // Report what is not just a network failure: an answer that makes no sense,
      // a refusal (4xx), or our own bug.
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
        this.host.subscribed(entry, undefined);
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
  }

  /**
   * Without channels there is nothing to stream: check the server answers, then wait.
   * @param {AbortSignal} signal
   */
  async idle(signal) {
    if (!this.isOpen) await this.host.request("/health", { signal });
    this.opened();
  }
}
