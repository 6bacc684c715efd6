// @ts-check
/**
 * Reconnect back-off: exponential with full jitter, counted in failed connects.
 * Pure arithmetic; the client owns the timers.
 */

/**
 * @typedef {object} BackoffOptions
 * @property {number} minReconnectDelayMs the base: attempt n waits up to min × 2ⁿ
 * @property {number} maxReconnectDelayMs the ceiling
 * @property {() => number} [random] uniform in [0, 1); Math.random unless a test injects one
 */

/** Counts connect attempts since the last open and says how long to wait before the next. */
export class Backoff {
  /** @param {BackoffOptions} options */
  constructor({ minReconnectDelayMs, maxReconnectDelayMs, random = Math.random }) {
    this.minMs = minReconnectDelayMs;
    this.maxMs = maxReconnectDelayMs;
    this.random = random;
    /** Connect attempts since the last open (or connect(), or the browser coming online). */
    this.attempts = 0;
  }

  /** A connect attempt starts; returns its number (1 for the first since a reset). */
  countAttempt() {
    this.attempts += 1;
    return this.attempts;
  }

  /** A connection opened: the next failure waits as little as the first. */
  reset() {
    this.attempts = 0;
  }

  /**
   * The wait before the next attempt: uniform in [0, min(max, min × 2^attempts)).
   * Full jitter, so that many clients cut off together don't come back together.
   */
  delayMs() {
    return this.random() * this._ceilingMs();
  }

  /**
   * Like delayMs(), but at least half the ceiling ("equal jitter"): for failures that
   * must not repeat quickly even by chance (a backend that keeps minting refused tokens).
   */
  halfJitterDelayMs() {
    const ceiling = this._ceilingMs();
    return ceiling / 2 + (this.random() * ceiling) / 2;
  }

  _ceilingMs() {
    return Math.min(this.maxMs, this.minMs * 2 ** this.attempts);
  }
}
