// @ts-check
/**
 * An incremental parser for the text/event-stream format (WHATWG HTML §9.2.6).
 * Text in, in chunks cut anywhere; events out. No I/O: the SSE transport feeds it.
 */

/**
 * One dispatched event. Unlike EventSource, `id` is this event's own `id:` field
 * (null without one), because the client treats each id as a fresh stream cursor.
 * @typedef {object} SSEEvent
 * @property {string} event the `event:` field, "" without one
 * @property {string | null} data the `data:` lines joined with "\n"; null without any
 * @property {string | null} id
 */

export class SSEParser {
  constructor() {
    this._buffer = "";
    // A chunk ended with "\r": a "\n" opening the next one ends the same line.
    this._skipLineFeed = false;
    /** @type {string[]} */
    this._data = [];
    this._event = "";
    /** @type {string | null} */
    this._id = null;
    /** The last valid `retry:` field, in ms; null until one arrives. */
    /** @type {number | null} */
    this.retryMs = null;
  }

  /**
   * Parse the next piece of decoded text.
   * @param {string} text
   * @returns {SSEEvent[]} the events completed by this piece, in order
   */
  push(text) {
    /** @type {SSEEvent[]} */
    const events = [];
    let buffer = this._buffer + text;
    if (this._skipLineFeed && buffer !== "") {
      this._skipLineFeed = false;
      if (buffer[0] === "\n") buffer = buffer.slice(1);
    }
    const lineEnd = /\r\n|\r|\n/g;
    let start = 0;
    let match;
    while ((match = lineEnd.exec(buffer)) !== null) {
      // A "\r" that ends the text may be the first half of "\r\n".
      if (match[0] === "\r" && lineEnd.lastIndex === buffer.length) this._skipLineFeed = true;
      const event = this._line(buffer.slice(start, match.index));
      if (event) events.push(event);
      start = lineEnd.lastIndex;
    }
    this._buffer = buffer.slice(start);
    return events;
  }

  /**
   * @param {string} line
   * @returns {SSEEvent | null}
   */
  _line(line) {
    if (line === "") return this._dispatch();
    // Lines starting with ":" are comments: the server's keep-alive.
    if (line[0] === ":") return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    if (field === "data") this._data.push(value);
    else if (field === "event") this._event = value;
    else if (field === "id") {
      if (!value.includes("\0")) this._id = value;
    } else if (field === "retry") {
      if (/^[0-9]+$/.test(value)) this.retryMs = Number(value);
    }
    return null;
  }

  /** @returns {SSEEvent | null} */
  _dispatch() {
    /** @type {SSEEvent | null} */
    let event = null;
    if (this._data.length || this._id !== null) {
      event = { event: this._event, data: this._data.length ? this._data.join("\n") : null, id: this._id };
    }
    this._data = [];
    this._event = "";
    this._id = null;
    return event;
  }
}
