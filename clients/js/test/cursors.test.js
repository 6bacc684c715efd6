import assert from "node:assert/strict";
import { test } from "node:test";

import { ChannelState, joinStreamCursor, splitStreamCursor } from "../src/cursors.js";
import { PushwireError } from "../src/errors.js";

test("a new id is accepted and moves the cursor to it", () => {
  const channel = new ChannelState("news", "e-0");

  assert.equal(channel.accept("e-1"), true);
  assert.equal(channel.cursor, "e-1");
});

test("an id delivered before is refused and leaves the cursor alone", () => {
  const channel = new ChannelState("news", null);
  channel.accept("e-1");
  channel.accept("e-2");

  assert.equal(channel.accept("e-1"), false);
  assert.equal(channel.cursor, "e-2");
});

test("only the last seenIds ids are remembered", () => {
  const channel = new ChannelState("news", null, 2);
  channel.accept("e-1");
  channel.accept("e-2");
  channel.accept("e-3");

  assert.equal(channel.accept("e-2"), false);
  assert.equal(channel.accept("e-1"), true);
});

test("a gap moves the cursor to where delivery continues, or to null for from now", () => {
  const channel = new ChannelState("news", "e-4");

  channel.moveTo("f-9");
  assert.equal(channel.cursor, "f-9");
  channel.moveTo(null);
  assert.equal(channel.cursor, null);
});

test("after a gap, ids delivered before are still dropped", () => {
  const channel = new ChannelState("news", null);
  channel.accept("e-1");

  channel.moveTo("f-1");

  assert.equal(channel.accept("e-1"), false);
  assert.equal(channel.cursor, "f-1");
});

test("a stream cursor joins the channels' cursors in order and splits back", () => {
  const channels = new Map([
    ["a", new ChannelState("a", "a-1")],
    ["b", new ChannelState("b", "b-2")],
  ]);

  const cursor = joinStreamCursor(["a", "b"], (name) => channels.get(name));

  assert.equal(cursor, "a-1.b-2");
  assert.deepEqual(splitStreamCursor(["a", "b"], cursor), ["a-1", "b-2"]);
});

test("a stream cursor with the wrong number of parts does not split", () => {
  assert.equal(splitStreamCursor(["a", "b"], "a-1"), null);
  assert.equal(splitStreamCursor(["a"], "a-1.b-2"), null);
});

test("joining over a channel that is gone gives null; over one without a cursor, a bad_frame error", () => {
  const channels = new Map([["a", new ChannelState("a", null)]]);
  const lookup = (name) => channels.get(name);

  assert.equal(joinStreamCursor(["a", "gone"], (name) => (name === "a" ? new ChannelState("a", "x") : undefined)), null);
  assert.throws(() => joinStreamCursor(["a"], lookup), (error) => error instanceof PushwireError && error.code === "bad_frame");
});
