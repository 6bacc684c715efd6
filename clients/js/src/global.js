// @ts-check
/**
 * The classic-script entry: defines globalThis.Pushwire (and module.exports under
 * CommonJS). No export statement: that would be a syntax error in a classic script.
 */

import { Pushwire, PushwireError } from "./index.js";

/** @type {any} */ (globalThis).Pushwire = Pushwire;
if (typeof module === "object" && module && module.exports) module.exports = { Pushwire, PushwireError };
