import assert from "node:assert/strict";
import { test } from "node:test";

import { Pushwire } from "../src/client.js";
import { TRANSITIONS, canTransition, checkTransition } from "../src/state.js";

const STATES = ["idle", "connecting", "open", "reconnecting", "offline", "closed"];

test("the table names every state, and only states", () => {
  assert.deepEqual(Object.keys(TRANSITIONS).sort(), [...STATES].sort());
  for (const targets of Object.values(TRANSITIONS)) {
    for (const target of targets) assert.ok(STATES.includes(target), target);
  }
});

test("the table is frozen, rows included", () => {
  assert.ok(Object.isFrozen(TRANSITIONS));
  for (const row of Object.values(TRANSITIONS)) assert.ok(Object.isFrozen(row));
  assert.throws(() => {
    "use strict";
    TRANSITIONS.idle.push("open");
  }, TypeError);
});

test("the life cycle's transitions are allowed", () => {
  const allowed = [
    ["idle", "connecting"],
    ["idle", "offline"],
    ["idle", "closed"],
    ["connecting", "open"],
    ["connecting", "reconnecting"],
    ["connecting", "offline"],
    ["connecting", "closed"],
    ["open", "reconnecting"],
    ["open", "offline"],
    ["open", "closed"],
    ["reconnecting", "connecting"],
    ["reconnecting", "offline"],
    ["reconnecting", "closed"],
    ["offline", "connecting"],
    ["offline", "closed"],
    ["closed", "connecting"],
    ["closed", "offline"],
  ];

  for (const [from, to] of allowed) {
    assert.ok(canTransition(from, to), `${from} -> ${to}`);
    assert.doesNotThrow(() => checkTransition(from, to));
  }
});

test("transitions that make no sense are refused", () => {
  const refused = [
    ["idle", "open"],
    ["idle", "reconnecting"],
    ["connecting", "idle"],
    ["open", "connecting"],
    ["open", "idle"],
    ["reconnecting", "open"],
    ["offline", "open"],
    ["offline", "reconnecting"],
    ["closed", "open"],
    ["closed", "idle"],
    ["closed", "reconnecting"],
  ];

  for (const [from, to] of refused) {
    assert.equal(canTransition(from, to), false, `${from} -> ${to}`);
    assert.throws(() => checkTransition(from, to), /no transition from state/);
  }
});

test("no state may become idle again, and staying put is not a transition", () => {
  for (const state of STATES) {
    assert.equal(canTransition(state, "idle"), false, state);
    assert.equal(canTransition(state, state), false, state);
  }
});

test("the client changes state through the table and reports each change", () => {
  const client = new Pushwire("http://127.0.0.1:1", { autoConnect: false, transports: ["poll"] });
  const changes = [];
  client.addEventListener("state", (event) => changes.push([event.previous, event.state]));

  client._setState("closed");
  client._setState("closed");

  assert.deepEqual(changes, [["idle", "closed"]]);
  assert.throws(() => client._setState("open"), /no transition from state closed to open/);
  assert.equal(client.state, "closed");
});
