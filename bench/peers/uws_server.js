// Reference peer: uWebSockets.js (via @trufflesuite/uws-js-unofficial) using app.publish().
//
// Subscribers connect to /ws and are subscribed to topic "bench"; a publisher connects to
// /pub and every frame it sends is handed to `app.publish("bench", msg)`.
// maxBackpressure is raised from the 64 KiB default so uWS never silently skips a slow
// subscriber: the benchmark counts lost messages, and the other targets do not drop either.
// GET /health answers 200 so the benchmark knows the server is up.
// Usage: node uws_server.js PORT
"use strict";

const uWS = require("@trufflesuite/uws-js-unofficial");

const port = Number(process.argv[2] || 9001);
const TOPIC = "bench";

const app = uWS.App();

app.ws("/ws", {
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  idleTimeout: 960,
  open: (ws) => {
    ws.subscribe(TOPIC);
  },
});

app.ws("/pub", {
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  idleTimeout: 960,
  message: (ws, msg, isBinary) => {
    app.publish(TOPIC, msg, isBinary);
  },
});

app.get("/health", (res) => {
  res.end("ok");
});

app.listen("127.0.0.1", port, (token) => {
  if (!token) {
    process.stderr.write(`uws peer failed to listen on ${port}\n`);
    process.exit(1);
  }
  process.stderr.write(`uws peer listening on http://127.0.0.1:${port}\n`);
});

process.on("SIGTERM", () => process.exit(0));
