// @ts-check
/**
 * PushwireError: every error the client reports, with a wire code.
 * The codes are the server's (docs/protocol.md, errors) or the client's own
 * (timeout, network, disconnected, bad_frame, gave_up, ...).
 */

/** An error with a wire code: the server's (`permission_denied`, ...) or the client's. */
export class PushwireError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number} [status] the HTTP status, when the error is an HTTP answer
   */
  constructor(code, message, status) {
    super(message);
    this.name = "PushwireError";
    this.code = code;
    /** @type {number | undefined} */
    this.status; // a declaration: the property exists only for HTTP answers
    if (status !== undefined) this.status = status;
  }
}
