// @ts-check
/**
 * The /sse transport: an event stream read with fetch(), so that every named event and
 * every keep-alive comment is seen (EventSource hides both), with an idle watchdog.
 */

import { errorOf, messageOf } from "../http.js";
import { PushwireError } from "../errors.js";
import { presenceEventOf } from "../presence.js";
import { SSEParser } from "../sse-parser.js";
import { HttpTransport, channelQuery } from "./http.js";

/** @typedef {import("./base.js").TransportHost} TransportHost */
/** @typedef {import("../sse-parser.js").SSEEvent} SSEEvent */

export const GAP_EVENT = "pushwire.gap";
/** The last event of a stream the server ends on purpose: {code, reason, reconnect}. */
export const DISCONNECT_EVENT = "pushwire.disconnect";
/** Presence events, with data {channel, user, info}. */
export const JOIN_EVENT = "pushwire.join";
export const LEAVE_EVENT = "pushwire.leave";

export class SSETransport extends HttpTransport {
  /** @param {TransportHost} host */
  constructor(host) {
    super(host, "sse");
    this.lastDataAt = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.idleTimer = undefined;
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
    // Reopening for a new channel set must not hang either.
    if (this.isOpen) this._alive();
    await this.ensureCursors(channels, signal);
    const cursor = this.streamCursor(channels);
    if (signal.aborted || cursor === null) return;
    const url = host.url + "/sse?" + channelQuery(channels) + "&lastEventId=" + encodeURIComponent(cursor);
    host.log("GET", url);
    // GET with the token in a header: the URL (and so server logs) never shows it.
    /** @type {RequestInit} */
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
    for (;;) {
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
    // The id is the stream cursor: every channel's position, also for id-only events.
    if (event.id !== null) this.setStreamCursor(channels, event.id);
    if (event.data === null) return;
    let value;
    try {
      value = JSON.parse(event.data);
    } catch (error) {
      host.badFrame("event data is not JSON", event.data);
      return;
    }
    // A gap may come at the stream's start or in the middle of it. The server refuses
    // to publish "pushwire." event names, and a gap's data has no message id.
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
      reconnect: value.reconnect,
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
}
