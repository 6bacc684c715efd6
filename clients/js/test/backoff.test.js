import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff } from "../src/backoff.js";

const OPTIONS = { minReconnectDelayMs: 500, maxReconnectDelayMs: 30000 };

/** A Backoff whose random() returns `value`, after `attempts` counted attempts. */
function backoffAt(attempts, value) {
  const backoff = new Backoff({ ...OPTIONS, random: () => value });
  for (let i = 0; i < attempts; i += 1) backoff.countAttempt();
  return backoff;
}

test("the ceiling doubles with each attempt from the minimum", () => {
  const nearlyOne = 1 - Number.EPSILON;

  assert.equal(backoffAt(0, nearlyOne).delayMs(), 500 * nearlyOne);
  assert.equal(backoffAt(1, nearlyOne).delayMs(), 1000 * nearlyOne);
  assert.equal(backoffAt(3, nearlyOne).delayMs(), 4000 * nearlyOne);
});

test("the ceiling never passes maxReconnectDelayMs", () => {
  assert.equal(backoffAt(6, 0.5).delayMs(), 15000);
  assert.equal(backoffAt(7, 0.5).delayMs(), 15000);
  assert.equal(backoffAt(1000, 0.5).delayMs(), 15000);
});

test("full jitter: the delay is uniform from 0 up to the ceiling", () => {
  assert.equal(backoffAt(2, 0).delayMs(), 0);
  assert.equal(backoffAt(2, 0.25).delayMs(), 500);
});

test("with Math.random every delay lies in [0, ceiling)", () => {
  for (let attempts = 0; attempts < 12; attempts += 1) {
    const ceiling = Math.min(30000, 500 * 2 ** attempts);
    for (let i = 0; i < 200; i += 1) {
      const delay = backoffAt(attempts, Math.random()).delayMs();
      assert.ok(delay >= 0 && delay < ceiling, `${delay} at attempt ${attempts}`);
    }
  }
  const real = new Backoff(OPTIONS);
  for (let i = 0; i < 200; i += 1) {
    const delay = real.delayMs();
    assert.ok(delay >= 0 && delay < 500, String(delay));
  }
});

test("attempts are counted and reset", () => {
  const backoff = backoffAt(0, 0.5);

  assert.equal(backoff.countAttempt(), 1);
  assert.equal(backoff.countAttempt(), 2);
  assert.equal(backoff.delayMs(), 1000);
  backoff.reset();

  assert.equal(backoff.attempts, 0);
  assert.equal(backoff.delayMs(), 250);
  assert.equal(backoff.countAttempt(), 1);
});

test("halfJitterDelayMs waits at least half the ceiling", () => {
  const backoff = new Backoff({ minReconnectDelayMs: 100, maxReconnectDelayMs: 1000, random: () => 0 });
  backoff.countAttempt();
  backoff.countAttempt();

  assert.equal(backoff.halfJitterDelayMs(), 200);
  backoff.random = () => 0.999;
  assert.ok(backoff.halfJitterDelayMs() < 400);
});
