// @ts-check
/**
 * Connection tokens: where the client gets them (a fixed `token`, or `getToken()` for a
 * fresh one) and which server answers mean the token was refused. No I/O of its own:
 * the client asks for a token before each connect and when the server sends `refresh`.
 */

import { PushwireError } from "./errors.js";

/** The 401 error codes that mean "this token will not do" (docs/protocol.md, errors). */
export const TOKEN_ERRORS = Object.freeze(["invalid_token", "token_expired", "unauthorized"]);

/** The close code (WebSocket close, SSE `pushwire.disconnect`) for a token expired or refused. */
export const TOKEN_CLOSE_CODE = 4401;

/**
 * Whether an error answer says the token was refused (an HTTP 401 with a token code).
 * @param {unknown} error
 * @returns {error is PushwireError}
 */
export function isTokenRefusal(error) {
  return error instanceof PushwireError && error.status === 401 && TOKEN_ERRORS.includes(error.code);
}

/**
 * The error a close with 4401 stands for: the server's reason says which.
 * @param {string} reason "token expired", or "token refused: ..."
 * @returns {PushwireError}
 */
export function tokenCloseError(reason) {
  const expired = reason === "" || reason.startsWith("token expired");
  return new PushwireError(expired ? "token_expired" : "invalid_token", reason || "token expired");
}

/** The client's token: a fixed one, or the latest that getToken() gave. */
export class TokenSource {
  /**
   * @param {string | null} token used for the first connect (then getToken(), if given)
   * @param {(() => Promise<string> | string) | null} getToken
   */
  constructor(token, getToken) {
    /** The token connections present now; null: anonymous. */
    this.current = token;
    this._getToken = getToken;
    this._fresh = token !== null; // the given token has not been used for a connect yet
  }

  /** Whether the client presents a token at all. */
  get present() {
    return this.current !== null || this._getToken !== null;
  }

  /** Whether a new token can be had (getToken was given). */
  get renewable() {
    return this._getToken !== null;
  }

  /**
   * The token for a new connection: getToken()'s (except that a given `token` serves the
   * first connect), else the fixed one, else null (anonymous). Only a call to getToken()
   * makes it a promise, so that a connection without one opens at once.
   * @returns {Promise<string> | string | null} the promise rejects with a PushwireError,
   *   token_failed, if getToken() fails or gives no string
   */
  forConnect() {
    if (this._fresh || this._getToken === null) {
      this._fresh = false;
      return this.current;
    }
    return this.renew();
  }

  /**
   * A new token from getToken(); it becomes `current`.
   * @returns {Promise<string>}
   * @throws {PushwireError} token_failed if getToken() fails or gives no string
   */
  async renew() {
    if (this._getToken === null) throw new PushwireError("token_expired", "no getToken() to renew the token with");
    let token;
    try {
      token = await this._getToken();
    } catch (error) {
      throw new PushwireError("token_failed", "getToken() failed: " + (error instanceof Error ? error.message : String(error)));
    }
    if (typeof token !== "string" || !token) {
      throw new PushwireError("token_failed", "getToken() gave " + (token === "" ? "an empty string" : typeof token) + ", not a token");
    }
    this.current = token;
    return token;
  }
}
