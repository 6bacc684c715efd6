// @ts-check
/**
 * The client's options: their defaults and the check that rejects unknown names.
 * docs/client-js.md has the table; keep the two in step.
 */

/** @typedef {"ws" | "sse" | "poll"} TransportName */

/**
 * @typedef {object} ClientOptions
 * @property {TransportName[]} transports the transports to use, in order
 * @property {string | null} wsUrl default: the server URL with ws(s):// and /ws
 * @property {number} transportAttempts failed connects before falling back to the next transport
 * @property {number} minReconnectDelayMs
 * @property {number} maxReconnectDelayMs
 * @property {number} connectTimeoutMs
 * @property {number} maxAttempts consecutive failed connects before giving up
 * @property {number} pingIntervalMs 0: no heartbeat
 * @property {number} pingTimeoutMs
 * @property {number} sseIdleTimeoutMs the server writes a comment every 15 s by default; 0: off
 * @property {number} pollTimeoutMs how long the server may hold a long poll
 * @property {number} publishTimeoutMs
 * @property {boolean} autoConnect
 * @property {boolean} debug
 * @property {string | null} token a connection token (a JWT from your backend); null: anonymous
 * @property {(() => Promise<string> | string) | null} getToken gives a fresh token: called
 *   before every connect and when the server asks for a refresh (a given `token` serves the first connect)
 */

/** @type {readonly TransportName[]} */
export const TRANSPORTS = Object.freeze(["ws", "sse", "poll"]);

/** @type {Readonly<ClientOptions>} */
export const DEFAULTS = Object.freeze({
  transports: /** @type {TransportName[]} */ (["ws", "sse", "poll"]),
  wsUrl: null,
  transportAttempts: 2,
  minReconnectDelayMs: 500,
  maxReconnectDelayMs: 30000,
  connectTimeoutMs: 10000,
  maxAttempts: Infinity,
  pingIntervalMs: 25000,
  pingTimeoutMs: 10000,
  sseIdleTimeoutMs: 45000,
  pollTimeoutMs: 25000,
  publishTimeoutMs: 10000,
  autoConnect: true,
  debug: false,
  token: null,
  getToken: null,
});

/**
 * The defaults overridden by `options` (undefined values keep the default).
 * @param {Partial<ClientOptions> | undefined} options
 * @returns {ClientOptions}
 * @throws {TypeError} for an unknown option or transport name, so that typos show, and for
 *   a `token` that is not a non-empty string or a `getToken` that is not a function
 */
export function resolveOptions(options) {
  /** @type {ClientOptions} */
  const resolved = Object.assign({}, DEFAULTS, { transports: TRANSPORTS.slice() });
  /** @type {Record<string, unknown>} */
  const target = resolved;
  for (const [key, value] of Object.entries(options || {})) {
    if (!(key in DEFAULTS)) throw new TypeError("unknown option " + JSON.stringify(key));
    if (value !== undefined) target[key] = value;
  }
  for (const name of resolved.transports) {
    if (!TRANSPORTS.includes(name)) throw new TypeError("unknown transport " + JSON.stringify(name));
  }
  if (resolved.token !== null && (typeof resolved.token !== "string" || !resolved.token)) {
    throw new TypeError("token must be a non-empty string");
  }
  if (resolved.getToken !== null && typeof resolved.getToken !== "function") {
    throw new TypeError("getToken must be a function that returns (a promise of) a token");
  }
  return resolved;
}
