// @ts-check
/**
 * Subscription: one subscriber's view of a channel; several may share a channel.
 * It knows its client only through SubscriptionOwner.
 */

/**
 * What a Subscription needs from the client that made it.
 * @typedef {object} SubscriptionOwner
 * @property {(channel: string) => string | null} cursorOf the channel's cursor, null if none
 * @property {(subscription: Subscription) => void} release the subscription closed
 */

/**
 * Events: "message" ({message}), "gap" ({channel, cursor}),
 * "subscribed" ({channel, cursor, recovered}), "error" ({error}).
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

  /** Stop receiving; the channel is unsubscribed once no subscription is left on it. */
  close() {
    if (!this.closed) {
      this.closed = true;
      this._owner.release(this);
    }
  }
}
