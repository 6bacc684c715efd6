// @ts-check
/**
 * Per-channel cursor bookkeeping: where each channel stands, which ids were already
 * delivered (to drop a message delivered twice), and stream cursors over several channels.
 * No events and no I/O: the client dispatches, the transports carry.
 */

import { PushwireError } from "./errors.js";

/** Ids remembered per channel to drop a message delivered twice. */
export const SEEN_IDS = 1000;

/**
 * One subscribed channel, shared by the client and the open transport. The client
 * creates and deletes these; a transport reads them and moves `cursor`, `active` and `ref`.
 */
export class ChannelState {
  /**
   * @param {string} name
   * @param {string | null} cursor where to resume; null: from now
   * @param {number} [seenIds] how many delivered ids to remember
   */
  constructor(name, cursor, seenIds = SEEN_IDS) {
    this.name = name;
    /** The id of the last message delivered, or the position the server gave; null: none yet. */
    this.cursor = cursor;
    /** The server confirmed the current subscribe (false again after every disconnect). */
    this.active = false;
    /** @type {number | null} the ref of the /ws subscribe awaiting its answer */
    this.ref = null;
    this._seenIds = seenIds;
    /** @type {Set<string>} delivered ids, oldest first */
    this._seen = new Set();
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
}

/**
 * A stream cursor (SSE's `id:`, a poll's `cursor`) is the channels' cursors joined
 * by "." in sorted channel order.
 * @param {readonly string[]} channels sorted
 * @param {(name: string) => ChannelState | undefined} lookup
 * @returns {string | null} null if a channel is gone (unsubscribed meanwhile)
 * @throws {PushwireError} bad_frame if a channel has no cursor (the server gave none)
 */
export function joinStreamCursor(channels, lookup) {
  const parts = [];
  for (const name of channels) {
    const entry = lookup(name);
    if (!entry) return null;
    if (!entry.cursor) throw new PushwireError("bad_frame", "the server gave no position for " + name);
    parts.push(entry.cursor);
  }
  return parts.join(".");
}

/**
 * Split a stream cursor into the channels' own cursors.
 * @param {readonly string[]} channels sorted, as in the request
 * @param {string} cursor
 * @returns {string[] | null} null if the parts do not match the channels
 */
export function splitStreamCursor(channels, cursor) {
  const parts = String(cursor).split(".");
  return parts.length === channels.length ? parts : null;
}
