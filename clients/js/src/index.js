// @ts-check
/**
 * The public API, as the ES module pushwire.mjs exports it. The classic script
 * (pushwire.js, from global.js) puts the same class on globalThis.Pushwire.
 */

import { Pushwire } from "./client.js";
import { PushwireError } from "./errors.js";
import { Subscription } from "./subscription.js";

export const VERSION = "0.1.0";

// The classic script has no exports, so these hang off the class for its users.
Object.assign(Pushwire, { version: VERSION, PushwireError, Subscription });

export { Pushwire, PushwireError, Subscription };
export default Pushwire;
