// Conversations and their messages: what the page shows, without the DOM.
//
// A message from the wire becomes a ChatMessage; the author comes from the server's
// `from` (the publisher's verified token) when present, else from what the publisher
// wrote in `data` (which anyone could fake). A conversation holds each message once,
// by id, whether it came from /history or live.

import { avatarId } from "./avatars.js";

export const GROUP_CHANNEL = "demo:lobby";
const MAX_NAME_LENGTH = 40; // the server's limit for demo names

/**
 * @typedef {object} ChatMessage
 * @property {string} id the pushwire message id (its cursor)
 * @property {string} user the author's user id ("" if unknown)
 * @property {string} name the author's display name
 * @property {string} avatar an avatar id
 * @property {string} text
 * @property {number} at when it was written, ms since the epoch
 * @property {boolean} verified whether the author comes from the server (`from`)
 */

/**
 * The DM channel of two users: "dm:A,B", the ids sorted.
 * @param {string} a
 * @param {string} b
 */
export function dmChannel(a, b) {
  return "dm:" + [a, b].sort().join(",");
}

/**
 * A person as presence, join and leave describe them.
 * @param {string} user
 * @param {unknown} info the token's info: {name, avatar}
 * @returns {{user: string, name: string, avatar: string}}
 */
export function personOf(user, info) {
  const fields = info !== null && typeof info === "object" ? /** @type {any} */ (info) : {};
  return { user, name: nameOf(fields.name, user), avatar: avatarId(fields.avatar) };
}

/**
 * A chat message from a pushwire message, or null if it is not one (no text).
 * @param {any} message {channel, id, data, from?}
 * @returns {ChatMessage | null}
 */
export function chatMessageOf(message) {
  if (message === null || typeof message !== "object" || typeof message.id !== "string") return null;
  const data = message.data;
  if (data === null || typeof data !== "object" || typeof data.text !== "string") return null;
  const from = message.from;
  const verified = from !== null && typeof from === "object" && typeof from.user === "string";
  const author = verified ? personOf(from.user, from.info) : personOf(stringOr(data.user, ""), data);
  const at = typeof data.at === "number" && Number.isFinite(data.at) ? data.at : Date.now();
  return { id: message.id, user: author.user, name: author.name, avatar: author.avatar, text: data.text, at, verified };
}

export class Conversation {
  /**
   * @param {string} channel
   * @param {string | null} peer the other person's user id; null for the group
   */
  constructor(channel, peer) {
    this.channel = channel;
    this.peer = peer;
    /** @type {ChatMessage[]} oldest first */
    this.messages = [];
    this._ids = new Set();
    this.unread = 0;
    this.historyLoaded = false;
    this.historyLoading = false;
    /** @type {any} the pushwire Subscription, once subscribed */
    this.subscription = null;
  }

  get isGroup() {
    return this.peer === null;
  }

  /** @returns {ChatMessage | null} */
  get last() {
    return this.messages.length ? this.messages[this.messages.length - 1] : null;
  }

  /**
   * A live message; false if it is already here.
   * @param {ChatMessage} message
   */
  add(message) {
    if (this._ids.has(message.id)) return false;
    this._ids.add(message.id);
    this.messages.push(message);
    return true;
  }

  /**
   * The channel's recent history (oldest first) goes before the live messages it does
   * not hold: those that arrived while it was asked for came after it.
   * @param {ChatMessage[]} history
   * @returns {boolean} whether anything was added
   */
  mergeHistory(history) {
    const merged = [];
    const ids = new Set();
    for (const message of history) {
      if (ids.has(message.id)) continue;
      ids.add(message.id);
      merged.push(message);
    }
    const added = merged.some((message) => !this._ids.has(message.id));
    for (const message of this.messages) {
      if (!ids.has(message.id)) {
        ids.add(message.id);
        merged.push(message);
      }
    }
    this.messages = merged;
    this._ids = ids;
    return added;
  }
}

/**
 * @param {unknown} value
 * @param {string} fallback
 */
function nameOf(value, fallback) {
  const name = typeof value === "string" ? value.trim() : "";
  return (name || fallback || "someone").slice(0, MAX_NAME_LENGTH);
}

/**
 * @param {unknown} value
 * @param {string} fallback
 */
function stringOr(value, fallback) {
  return typeof value === "string" ? value : fallback;
}
