// @ts-check
/**
 * Presence on the wire: the checks that turn a join, a leave or a members list from
 * the server into values for the application, or refuse them (null: a bad frame).
 */

/**
 * A user, with their presence info, as join and leave events carry them.
 * @typedef {object} PresenceEvent
 * @property {"join" | "leave"} type
 * @property {string} channel
 * @property {string} user
 * @property {unknown} info the token's `info` claim, or null
 */

/**
 * A join or leave from the server, checked.
 * @param {string} type "join" or "leave" (from the frame's type or the SSE event's name)
 * @param {unknown} value the frame or event data: {channel, user, info}
 * @returns {PresenceEvent | null} null if it is not a usable join or leave
 */
export function presenceEventOf(type, value) {
  if (type !== "join" && type !== "leave") return null;
  if (value === null || typeof value !== "object") return null;
  const { channel, user, info } = /** @type {any} */ (value);
  if (typeof channel !== "string" || typeof user !== "string") return null;
  return { type, channel, user, info: info === undefined ? null : info };
}

/**
 * The members list of a presence answer, checked.
 * @param {unknown} answer {"members": [{user, info, connections}, ...], ...}
 * @returns {Array<{user: string, info: unknown, connections: number}> | null} null if unusable
 */
export function membersOf(answer) {
  if (answer === null || typeof answer !== "object") return null;
  const members = /** @type {any} */ (answer).members;
  if (!Array.isArray(members)) return null;
  const usable = members.every((member) => member !== null && typeof member === "object" && typeof member.user === "string");
  return usable ? members : null;
}
