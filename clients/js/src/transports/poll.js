// @ts-check
/**
 * The /poll transport: long polls in a loop, each resuming from the last answer's cursor.
 */

import { PushwireError } from "../errors.js";
import { HttpTransport, channelQuery } from "./http.js";

/** @typedef {import("./base.js").TransportHost} TransportHost */

export class PollTransport extends HttpTransport {
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
      // The first poll over a channel set answers at once: it opens the connection
      // and confirms the subscriptions.
      const waitMs = first ? 0 : host.options.pollTimeoutMs;
      const path =
        "/poll?" + channelQuery(channels) + "&cursor=" + encodeURIComponent(cursor) + "&timeout=" + waitMs / 1000;
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
    if (answer.gaps !== undefined) {
      if (Array.isArray(answer.gaps)) {
        for (const channel of answer.gaps) {
          const entry = typeof channel === "string" ? host.channel(channel) : undefined;
          if (entry) host.gap(entry);
        }
      } else {
        host.badFrame("poll answer with gaps that are not a list", answer);
      }
    }
    if (answer.events !== undefined) this.presenceEvents(answer.events, answer);
  }

  /**
   * The application closed the client: tell the server this poller is gone, so that it
   * leaves presence at once rather than after the grace between two polls.
   * @param {string[]} channels
   */
  leave(channels) {
    if (!channels.length) return;
    this.host.request("/poll?" + channelQuery(channels) + "&leave=1", { timeoutMs: 2000 }).catch(() => {});
  }
}
