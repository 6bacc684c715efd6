// @ts-check
/**
 * The interface between the client and its transports, both ways: TransportHost is
 * all a transport may use of the client; Transport is what the client calls on one.
 */

/** @typedef {import("../cursors.js").ChannelState} ChannelState */
/** @typedef {import("../errors.js").PushwireError} PushwireError */
/** @typedef {import("../options.js").ClientOptions} ClientOptions */
/** @typedef {import("../options.js").TransportName} TransportName */

/**
 * @typedef {object} RequestInit
 * @property {string} [method] default GET
 * @property {string} [body] JSON text; sent with Content-Type: application/json
 * @property {AbortSignal} [signal]
 * @property {number} [timeoutMs] default: options.connectTimeoutMs
 */

/**
 * What a transport may use of the client, and all of it. The client ignores opened()
 * and lost() from a transport that is no longer its current one; a transport stops
 * reporting anything else once closed (teardown() detaches its socket or aborts its request).
 *
 * @typedef {object} TransportHost
 * @property {Readonly<ClientOptions>} options
 * @property {string} url the server's HTTP address, without a trailing slash
 * @property {string} wsUrl the WebSocket address
 * @property {() => ChannelState[]} channels the subscribed channels, in subscribe order
 * @property {(name: string) => ChannelState | undefined} channel one of them, if subscribed
 * @property {() => number} nextRef a fresh /ws request ref
 * @property {(...args: unknown[]) => void} log a debug line (only with options.debug)
 * @property {(path: string, init?: RequestInit) => Promise<any>} request fetch() a JSON answer
 *   from the server; rejects with a PushwireError (the server's code, "network" or "timeout")
 * @property {(transport: Transport) => void} opened the transport is open
 * @property {(transport: Transport, code: string, reason: string) => void} lost
 *   the transport died (it has released everything); the client decides what next
 * @property {(message: unknown, frame: unknown) => void} deliver a message arrived; the client
 *   checks its shape, drops duplicates, moves the cursor and dispatches it
 * @property {(entry: ChannelState, recovered: boolean | undefined) => void} subscribed
 *   the server confirmed a channel (the transport has set `active`, and the cursor if given)
 * @property {(entry: ChannelState) => void} gap messages on the channel are lost for good
 *   (the transport has moved the cursor to where delivery continues)
 * @property {(entry: ChannelState, error: PushwireError) => void} subscriptionFailed
 *   the server refused the channel; the client drops it and tells its subscriptions
 * @property {(reason: string, frame: unknown) => void} badFrame the server sent something
 *   unusable; the transport skips it and carries on
 * @property {(error: PushwireError) => void} reportError an error no call is waiting for
 */

/**
 * One connection attempt over one transport; the client makes a new one per attempt.
 * Subclasses implement open() and teardown(), and channelAdded()/channelRemoved().
 */
export class Transport {
  /**
   * @param {TransportHost} host
   * @param {TransportName} name
   */
  constructor(host, name) {
    this.host = host;
    this.name = name;
    this.isOpen = false;
    this.isClosed = false;
  }

  /** Start connecting; report with host.opened() or, through fail(), host.lost(). */
  open() {}

  /** Release sockets, requests and timers. */
  teardown() {}

  /**
   * A channel was subscribed while this transport is the client's current one. (At open,
   * a transport subscribes host.channels() itself.)
   * @param {ChannelState} _entry
   */
  channelAdded(_entry) {}

  /**
   * A channel's last subscription closed.
   * @param {ChannelState} _entry
   */
  channelRemoved(_entry) {}

  /** Whether publish() works: only over a transport that carries requests (ws). */
  get canPublish() {
    return false;
  }

  /**
   * Publish over this transport (see canPublish).
   * @param {{channel: string, data: unknown, event?: unknown}} _body
   * @param {number} _timeoutMs
   * @returns {Promise<{channel: string, id: string}>}
   */
  publish(_body, _timeoutMs) {
    return Promise.reject(new Error("the " + this.name + " transport cannot publish"));
  }

  /** Report the transport open, once. */
  opened() {
    if (!this.isClosed && !this.isOpen) {
      this.isOpen = true;
      this.host.opened(this);
    }
  }

  /**
   * The connection is dead: release it and let the client decide what next.
   * @param {string} code
   * @param {string} reason
   */
  fail(code, reason) {
    if (this.isClosed) return;
    this.close();
    this.host.lost(this, code, reason);
  }

  /** Release everything without telling the client (it asked for this). */
  close() {
    if (!this.isClosed) {
      this.isClosed = true;
      this.teardown();
    }
  }
}
