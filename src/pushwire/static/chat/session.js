// The demo login: POST /demo/login and /demo/refresh, and where the login is kept.
//
// Kept in sessionStorage (a reload, or this tab after a server restart, stays logged in)
// and in localStorage, so that a second tab of the same browser is the same person: one
// member of presence, however many tabs. Logging out in one tab logs out all of them
// (the "storage" event tells the others).

export const STORAGE_KEY = "pushwire-chat:login";

/**
 * A login: the token and who it says we are.
 * @typedef {object} Login
 * @property {string} token
 * @property {string} user the demo user id, "demo-…"
 * @property {{name: string, avatar: string}} info
 * @property {number} expiresAt the token's expiry, ms since the epoch (by this browser's clock)
 */

/** A refusal from the demo's endpoints: `message` is the server's, fit to show. */
export class LoginError extends Error {
  /**
   * @param {string} message
   * @param {number} status the HTTP status
   */
  constructor(message, status) {
    super(message);
    this.name = "LoginError";
    this.status = status;
  }
}

/**
 * Log in as a new demo user.
 * @param {string} name
 * @param {string} avatar
 * @returns {Promise<Login>}
 * @throws {LoginError} with the server's message (a bad name, ...), or a network error
 */
export function requestLogin(name, avatar) {
  return grant("/demo/login", { "Content-Type": "application/json" }, JSON.stringify({ name, avatar }));
}

/**
 * A fresh token for the same user (the server accepts one expired up to 5 minutes ago).
 * @param {string} token the current token
 * @returns {Promise<Login>}
 */
export function requestRefresh(token) {
  return grant("/demo/refresh", { Authorization: "Bearer " + token }, "");
}

/** @returns {Login | null} the kept login: this tab's, else the browser's */
export function loadLogin() {
  for (const storage of storages()) {
    const login = parseLogin(storage.getItem(STORAGE_KEY));
    if (login) return login;
  }
  return null;
}

/** @param {Login} login */
export function saveLogin(login) {
  const text = JSON.stringify(login);
  for (const storage of storages()) storage.setItem(STORAGE_KEY, text);
}

export function forgetLogin() {
  for (const storage of storages()) storage.removeItem(STORAGE_KEY);
}

/**
 * @param {string | null} text
 * @returns {Login | null}
 */
export function parseLogin(text) {
  if (!text) return null;
  try {
    const value = JSON.parse(text);
    const usable =
      typeof value.token === "string" &&
      typeof value.user === "string" &&
      value.info !== null &&
      typeof value.info === "object" &&
      typeof value.expiresAt === "number";
    return usable ? value : null;
  } catch {
    return null;
  }
}

/** The storages this page may use (none, in a browser that refuses them). */
function storages() {
  /** @type {Storage[]} */
  const found = [];
  for (const get of [() => window.sessionStorage, () => window.localStorage]) {
    try {
      const storage = get(); // throws where storage is disabled
      if (storage) found.push(storage);
    } catch {
      // Storage disabled: the login lasts as long as the page.
    }
  }
  return found;
}

/**
 * @param {string} path
 * @param {Record<string, string>} headers
 * @param {string} body
 * @returns {Promise<Login>}
 */
async function grant(path, headers, body) {
  const response = await fetch(path, { method: "POST", headers, body, cache: "no-store" });
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    // Not JSON: say what happened below.
  }
  if (!response.ok) {
    const message = answer && typeof answer.message === "string" ? answer.message : "HTTP " + response.status;
    throw new LoginError(message, response.status);
  }
  const usable =
    answer &&
    typeof answer.token === "string" &&
    typeof answer.user === "string" &&
    answer.info !== null &&
    typeof answer.info === "object" &&
    typeof answer.expires_in === "number";
  if (!usable) throw new LoginError("the server's answer has no token", response.status);
  return {
    token: answer.token,
    user: answer.user,
    info: { name: String(answer.info.name), avatar: String(answer.info.avatar) },
    expiresAt: Date.now() + answer.expires_in * 1000,
  };
}
