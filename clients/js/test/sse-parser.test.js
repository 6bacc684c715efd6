import assert from "node:assert/strict";
import { test } from "node:test";

import { SSEParser } from "../src/sse-parser.js";

/** Feed `chunks` to a fresh parser; all events they complete. */
function parse(...chunks) {
  const parser = new SSEParser();
  return chunks.flatMap((chunk) => parser.push(chunk));
}

const STREAM =
  ": ping\n" +
  "retry: 2000\n" +
  "id: c-1\n" +
  "\n" +
  "id: c-2\n" +
  "event: breaking\n" +
  'data: {"channel":"news",\n' +
  'data: "id":"e-2","data":1}\n' +
  "\n";
const EVENTS = [
  { event: "", data: null, id: "c-1" },
  { event: "breaking", data: '{"channel":"news",\n"id":"e-2","data":1}', id: "c-2" },
];

test("fields, multi-line data and comments make events", () => {
  const events = parse(STREAM);

  assert.deepEqual(events, EVENTS);
});

test("an event with only an id is dispatched, with null data", () => {
  assert.deepEqual(parse("id: c-7\n\n"), [{ event: "", data: null, id: "c-7" }]);
});

test("a blank line after nothing, or after only comments and an event name, dispatches nothing", () => {
  assert.deepEqual(parse("\n\n: keep-alive\n\nevent: x\n\n"), []);
});

test("\\r\\n and \\r end lines as \\n does", () => {
  assert.deepEqual(parse(STREAM.replaceAll("\n", "\r\n")), EVENTS);
  assert.deepEqual(parse(STREAM.replaceAll("\n", "\r")), EVENTS);
});

test("a chunk boundary anywhere gives the same events", () => {
  for (const ending of ["\n", "\r\n", "\r"]) {
    const text = STREAM.replaceAll("\n", ending);
    for (let cut = 0; cut <= text.length; cut += 1) {
      assert.deepEqual(parse(text.slice(0, cut), text.slice(cut)), EVENTS, `${JSON.stringify(ending)} cut at ${cut}`);
    }
  }
});

test("one character at a time gives the same events", () => {
  assert.deepEqual(parse(...STREAM.replaceAll("\n", "\r\n")), EVENTS);
});

test("a \\r at the end of a chunk and a \\n at the start of the next are one line end", () => {
  const events = parse("data: 1\r", "\ndata: 2\r", "", "\n\r\n");

  assert.deepEqual(events, [{ event: "", data: "1\n2", id: null }]);
});

test("an event is not dispatched before its blank line arrives", () => {
  const parser = new SSEParser();

  assert.deepEqual(parser.push("data: 1\n"), []);
  assert.deepEqual(parser.push("\n"), [{ event: "", data: "1", id: null }]);
});

test("only one space after the colon is dropped; a field without a colon has an empty value", () => {
  assert.deepEqual(parse("data:  two spaces\ndata\ndata:x\n\n"), [{ event: "", data: " two spaces\n\nx", id: null }]);
});

test("retry sets retryMs when it is all digits, and is ignored otherwise", () => {
  const parser = new SSEParser();

  parser.push("retry: 2000\n");
  assert.equal(parser.retryMs, 2000);
  parser.push("retry: soon\nretry: 1.5\n");
  assert.equal(parser.retryMs, 2000);
});

test("an id containing NUL is ignored; unknown fields are ignored", () => {
  assert.deepEqual(parse("id: a\0b\nfoo: bar\ndata: 1\n\n"), [{ event: "", data: "1", id: null }]);
});

test("event name and id do not carry over to the next event", () => {
  const events = parse("event: x\nid: c-1\ndata: 1\n\ndata: 2\n\n");

  assert.deepEqual(events, [
    { event: "x", data: "1", id: "c-1" },
    { event: "", data: "2", id: null },
  ]);
});
