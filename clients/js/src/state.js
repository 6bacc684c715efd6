// @ts-check
/**
 * The connection state machine: the states `Pushwire.state` takes and the transitions
 * allowed between them. The client changes state only through checkTransition().
 */

/**
 * idle: not started · connecting: an attempt is under way · open · reconnecting: waiting
 * out the back-off · offline: the browser says so; waits for "online" · closed: by
 * close(), or after maxAttempts.
 * @typedef {"idle" | "connecting" | "open" | "reconnecting" | "offline" | "closed"} ConnectionState
 */

/** @type {Readonly<Record<ConnectionState, readonly ConnectionState[]>>} */
export const TRANSITIONS = Object.freeze({
  // connect(): "offline" when the browser is offline already.
  idle: Object.freeze(/** @type {const} */ (["connecting", "offline", "closed"])),
  connecting: Object.freeze(/** @type {const} */ (["open", "reconnecting", "offline", "closed"])),
  open: Object.freeze(/** @type {const} */ (["reconnecting", "offline", "closed"])),
  reconnecting: Object.freeze(/** @type {const} */ (["connecting", "offline", "closed"])),
  offline: Object.freeze(/** @type {const} */ (["connecting", "closed"])),
  // connect() again, with the same subscriptions.
  closed: Object.freeze(/** @type {const} */ (["connecting", "offline"])),
});

/**
 * @param {ConnectionState} from
 * @param {ConnectionState} to
 * @returns {boolean} whether `from` may become `to` (staying in a state is not a transition)
 */
export function canTransition(from, to) {
  return TRANSITIONS[from].includes(to);
}

/**
 * Refuse a transition the table does not allow; that is a bug in the client.
 * @param {ConnectionState} from
 * @param {ConnectionState} to
 * @throws {Error}
 */
export function checkTransition(from, to) {
  if (!canTransition(from, to)) {
    throw new Error("pushwire: no transition from state " + from + " to " + to);
  }
}
