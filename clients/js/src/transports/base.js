// @ts-check
/**
 * The interface between the client and its transports, both ways: TransportHost is
 * all a transport may use of the client; Transport is what the client calls on one.
 */

/** @typedef {import("../cursors.js").ChannelState} ChannelState */
/** @typedef {import("../errors.js").PushwireError} PushwireError */
/** @typedef {import("../options.js").ClientOptions} ClientOptions */
/** @typedef {import("../options.js").TransportName} TransportName */
/** @typedef {import("../presence.js").PresenceEvent} PresenceEvent */

/**
 * Why a connection ended, beyond its code and reason, for the client's decision.
 * @typedef {object} LossCause
 * @property {number} [closeCode] the server's close code (WebSocket close, or the code of
 *   an SSE `pushwire.disconnect` event)
 * @property {string} [closeReason] the server's reason with it
 * @property {boolean} [reconnect] false: the server said not to come back by itself
 * @property {PushwireError} [tokenError] an HTTP 401 refused the connection's token
 */

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
 * @property {string | null} token the token to present now (null: anonymous); the client
 *   fetches it before it opens a transport
 * @property {() => Promise<string | null>} renewToken the server asked for a new token
 *   (/ws `refresh`): resolves with one, or with null when there is none to have (the
 *   client has reported that); rejects with a PushwireError if getToken() failed
 * @property {() => ChannelState[]} channels the subscribed channels, in subscribe order
 * @property {(name: string) => ChannelState | undefined} channel one of them, if subscribed
 * @property {() => number} nextRef a fresh /ws request ref
 * @property {(...args: unknown[]) => void} log a debug line (only with options.debug)
 * @property {(path: string, init?: RequestInit) => Promise<any>} request fetch() a JSON answer
 *   from the server; rejects with a PushwireError (the server's code, "network" or "timeout")
 * @property {(transport: Transport) => void} opened the transport is open
 * @property {(transport: Transport, code: string, reason: string, cause?: LossCause) => void} lost
 *   the transport died (it has released everything); the client decides what next
 * @property {(message: unknown, frame: unknown) => void} deliver a message arrived; the client
 *   checks its shape, drops duplicates, moves the cursor and dispatches it
 * @property {(entry: ChannelState, recovered: boolean | undefined) => void} subscribed
 *   the server confirmed a channel (the transport has set `active`, and the cursor if given)
 * @property {(entry: ChannelState) => void} gap messages on the channel are lost for good
 *   (the transport has moved the cursor to where delivery continues)
 * @property {(entry: ChannelState, error: PushwireError) => void} subscriptionFailed
 *   the server refused the channel; the client drops it and tells its subscriptions
 * @property {(entry: ChannelState) => void} unsubscribedByServer the server took the
 *   channel away; the client ends its subscriptions and does not resubscribe it
 * @property {(event: PresenceEvent) => void} presenceEvent a join or leave arrived (checked)
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
   * The application is closing the client for good: say goodbye if the transport must
   * (a poller, which the server would otherwise count present until its grace runs out).
   * @param {string[]} _channels
   */
  leave(_channels) {}

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

  /** Whether publish() and presence() work: only over a transport that carries requests (ws). */
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

  /**
   * Ask for a channel's presence over this transport (see canPublish).
   * @param {string} _channel
   * @param {number} _timeoutMs
   * @returns {Promise<unknown[]>}
   */
  presence(_channel, _timeoutMs) {
    return Promise.reject(new Error("the " + this.name + " transport cannot ask for presence"));
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
   * @param {LossCause} [cause] what the server said about it, if anything
   */
  fail(code, reason, cause) {
    if (this.isClosed) return;
    this.close();
    this.host.lost(this, code, reason, cause);
  }

  /** Release everything without telling the client (it asked for this). */
  close() {
    if (!this.isClosed) {
      this.isClosed = true;
      this.teardown();
    }
  }
}
