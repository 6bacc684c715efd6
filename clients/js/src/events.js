// @ts-check
/**
 * The events the client dispatches: plain Events with their details as properties,
 * so that listeners read `event.state`, `event.message`, ... (docs/client-js.md, Events).
 */

/**
 * @param {string} type
 * @param {object} fields copied onto the event
 * @returns {Event}
 */
export function pushwireEvent(type, fields) {
  return Object.assign(new Event(type), fields);
}
