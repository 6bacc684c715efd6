// @ts-check
/**
 * HTTP requests to the server with fetch(): JSON answers, error answers as PushwireErrors.
 */

import { PushwireError } from "./errors.js";

/**
 * @typedef {object} JsonRequest
 * @property {string} [method] default GET
 * @property {string} [body] JSON text; sent with Content-Type: application/json
 * @property {AbortSignal} [signal]
 * @property {string | null} [token] sent as `Authorization: Bearer TOKEN`
 * @property {number} timeoutMs
 * @property {(...args: unknown[]) => void} log
 */

/**
 * fetch() a JSON answer from `baseUrl + path`.
 * @param {string} baseUrl the server's address
 * @param {string} path from "/", with any query
 * @param {JsonRequest} request
 * @returns {Promise<any>}
 * @throws {PushwireError} the server's code for an error answer; "bad_frame" for an answer
 *   that is not JSON, "timeout" after timeoutMs, "network" when fetch() fails
 */
export async function requestJson(baseUrl, path, { method = "GET", body, signal, token, timeoutMs, log }) {
  const name = method + " " + path.split("?")[0];
  const controller = new AbortController();
  const abort = () => controller.abort();
  if (signal) signal.addEventListener("abort", abort);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  /** @type {RequestInit} */
  const init = { method, signal: controller.signal, cache: "no-store" };
  /** @type {Record<string, string>} */
  const headers = {};
  if (body !== undefined) {
    init.body = body;
    headers["Content-Type"] = "application/json";
  }
  if (token) headers.Authorization = "Bearer " + token;
  if (Object.keys(headers).length) init.headers = headers;
  log(method, path);
  try {
    const response = await fetch(baseUrl + path, init);
    if (!response.ok) throw await errorOf(response);
    try {
      return await response.json();
    } catch (error) {
      if (controller.signal.aborted) throw error;
      throw new PushwireError("bad_frame", name + " answered with something not JSON");
    }
  } catch (error) {
    if (error instanceof PushwireError) throw error;
    if (timedOut) throw new PushwireError("timeout", name + " timed out");
    throw new PushwireError("network", name + " failed: " + messageOf(error));
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener("abort", abort);
  }
}

/**
 * The PushwireError for an error answer: the server's {error, message}, or the status.
 * @param {Response} response
 * @returns {Promise<PushwireError>}
 */
export async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    // not JSON: a proxy's page, say
  }
  const code = body && typeof body.error === "string" ? body.error : "http_" + response.status;
  const message = body && typeof body.message === "string" ? body.message : "HTTP " + response.status;
  return new PushwireError(code, message, response.status);
}

/**
 * @param {unknown} error
 * @returns {string}
 */
export function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}
