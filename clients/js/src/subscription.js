// @ts-check
/**
 * Subscription: one subscriber's view of a channel; several may share a channel.
 * It knows its client only through SubscriptionOwner.
 */

import { PushwireError } from "./errors.js";

/**
 * What a Subscription needs from the client that made it.
 * @typedef {object} SubscriptionOwner
 * @property {(channel: string) => string | null} cursorOf the channel's cursor, null if none
 * @property {(subscription: Subscription) => void} release the subscription closed
 * @property {(channel: string) => Promise<PresenceMember[]>} presence ask the server
 */

/**
 * One member of a channel's presence: a user, however many connections they have.
 * @typedef {object} PresenceMember
 * @property {string} user
 * @property {unknown} info the token's `info` claim, or null
 * @property {number} connections
 */

/**
 * Events: "message" ({message}), "gap" ({channel, cursor}),
 * "subscribed" ({channel, cursor, recovered}), "error" ({error}),
 * "unsubscribed" ({channel}: the server took the channel away; closed),
 * "join" and "leave" ({channel, user, info}).
 */
export class Subscription extends EventTarget {
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
}
