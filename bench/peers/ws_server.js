// Reference peer: the Node.js `ws` library with the textbook broadcast loop.
//
// Subscribers connect to /ws; a publisher connects to /pub and every text frame it sends is
// re-sent to each subscriber with a plain loop over `wss.clients` calling `client.send(msg)`.
// GET /health answers 200 so the benchmark knows the server is up.
// Usage: node ws_server.js PORT
"use strict";

const http = require("http");
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2] || 9001);

const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("ok");
    return;
  }
  res.writeHead(404);
  res.end();
});

// Two servers so that `wss.clients` holds subscribers only (publishers get nothing back).
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
const pub = new WebSocketServer({ noServer: true, perMessageDeflate: false });

pub.on("connection", (publisher) => {
  publisher.on("message", (msg, isBinary) => {
    for (const client of wss.clients) {
      client.send(msg, { binary: isBinary });
    }
  });
});

server.on("upgrade", (req, socket, head) => {
  const path = req.url.split("?")[0];
  const target = path === "/pub" ? pub : path === "/ws" ? wss : null;
  if (target === null) {
    socket.destroy();
    return;
  }
  target.handleUpgrade(req, socket, head, (ws) => target.emit("connection", ws, req));
});

server.listen(port, "127.0.0.1", () => {
  process.stderr.write(`ws peer listening on http://127.0.0.1:${port}\n`);
});

process.on("SIGTERM", () => process.exit(0));
