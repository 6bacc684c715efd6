// The pushwire admin page: asks for the API key once, then shows the cluster, live.
//
// Every value comes from the backend API with that key (GET /api/info, /api/channels,
// /api/presence, /api/history; POST /api/publish, /api/disconnect), refreshed every
// second. The open channel's messages and joins arrive live through pushwire.js, the
// same client any page uses; a channel it may not subscribe to anonymously is refreshed
// from its history instead. Nothing received is ever inserted as HTML.

import "../pushwire.js";

const { Pushwire } = /** @type {any} */ (globalThis);

// Where the server's routes are: "" at the root, "/push" when mounted there (ASGI).
const ROOT = location.pathname.replace(/\/admin\/?$/, "");

const KEY_STORAGE = "pushwire-admin:key";
const REFRESH_MS = 1000;
const SAMPLES = 120; // two minutes of one-second samples
const HISTORY_LIMIT = 20;
const MAX_ROWS = 500; // channel rows drawn at once; the search narrows the rest
const TRANSPORTS = [
  { name: "websocket", label: "WebSocket", color: "#4f46e5" },
  { name: "sse", label: "SSE", color: "#12b76a" },
  { name: "longpoll", label: "polls", color: "#f79009" },
];
const RATES = [
  { name: "publications", label: "published/s", color: "#b42318" },
  { name: "deliveries", label: "delivered/s", color: "#0e7490" },
];

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const input = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ ($(id));

/** An answer of the API that is not a success: its status, code and message. */
class ApiError extends Error {
  constructor(/** @type {number} */ status, /** @type {string} */ code, /** @type {string} */ message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** @type {string | null} */
let apiKey = null;
/** @type {number | undefined} */
let timer;
/** @type {{time: number, connections: Record<string, number>, publications: number, deliveries: number}[]} */
let samples = [];
/** @type {string | null} */
let selected = null;
let live = false;
/** @type {any} */
let client = null;
/** @type {any} */
let subscription = null;
/** @type {Map<string, HTMLElement>} */
const rows = new Map();
/** @type {{channel: string, subscribers: number}[]} */
let channels = [];

async function api(/** @type {string} */ key, /** @type {string} */ path, options = {}) {
  const { method = "GET", body } = /** @type {{method?: string, body?: unknown}} */ (options);
  /** @type {Record<string, string>} */
  const headers = { "X-API-Key": key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(ROOT + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch (error) {
    answer = null;
  }
  if (!response.ok) {
    throw new ApiError(
      response.status,
      (answer && answer.error) || `http_${response.status}`,
      (answer && answer.message) || response.statusText,
    );
  }
  return answer;
}

// Logging in and out.

async function logIn(/** @type {string} */ key, { quiet = false } = {}) {
  const button = /** @type {HTMLButtonElement} */ ($("admin-login"));
  button.disabled = true;
  try {
    const info = await api(key, "/api/info");
    apiKey = key;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("admin-error").hidden = true;
    $("login-screen").hidden = true;
    $("dashboard").hidden = false;
    showInfo(info);
    timer = window.setTimeout(refresh, 0); // the channels, at once
  } catch (error) {
    sessionStorage.removeItem(KEY_STORAGE);
    if (!quiet || !(error instanceof ApiError) || error.status !== 401) {
      showLoginError(error);
    }
    showLogin();
  } finally {
    button.disabled = false;
  }
}

function showLoginError(/** @type {unknown} */ error) {
  const message = $("admin-error");
  if (error instanceof ApiError && error.status === 401) {
    message.textContent =
      "This API key was refused. Use the server's api_key, or the key it printed when it started.";
  } else if (error instanceof ApiError) {
    message.textContent = `The server did not answer as expected: ${error.message} (${error.code}).`;
  } else {
    message.textContent = "Something went wrong; see the browser console.";
    console.error(error);
  }
  message.hidden = false;
}

function showLogin() {
  $("dashboard").hidden = true;
  $("login-screen").hidden = false;
  input("admin-key").focus();
}

function logOut(/** @type {string | null} */ reason) {
  apiKey = null;
  sessionStorage.removeItem(KEY_STORAGE);
  window.clearTimeout(timer);
  closeChannel();
  if (client) client.close();
  client = null;
  samples = [];
  channels = [];
  rows.clear();
  $("channel-list").replaceChildren();
  $("node-rows").replaceChildren();
  if (reason) {
    $("admin-error").textContent = reason;
    $("admin-error").hidden = false;
  }
  input("admin-key").value = "";
  showLogin();
}

// The refresh loop.

async function refresh() {
  window.clearTimeout(timer);
  const key = apiKey;
  if (key === null) return;
  try {
    const [info, answer] = await Promise.all([api(key, "/api/info"), api(key, "/api/channels")]);
    if (key !== apiKey) return; // logged out meanwhile
    showInfo(info);
    channels = answer.channels;
    showChannels();
    if (selected !== null && !live) await loadHistory(selected);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      logOut("The API key is no longer accepted (did the server restart with a new one?).");
      return;
    }
    $("status").textContent = `cannot refresh: ${error instanceof Error ? error.message : error}; retrying`;
    $("status").classList.add("bad");
  }
  if (apiKey !== null) timer = window.setTimeout(refresh, REFRESH_MS);
}

function showInfo(/** @type {any} */ info) {
  const totals = info.totals;
  samples.push({
    time: performance.now(),
    connections: totals.connections,
    publications: totals.publications,
    deliveries: totals.deliveries,
  });
  if (samples.length > SAMPLES + 1) samples.shift();
  showNodes(info.nodes);
  const broker = info.broker;
  const status = $("status");
  status.textContent =
    `${totals.nodes} node${totals.nodes === 1 ? "" : "s"} · broker ${broker.name} ` +
    `${broker.connected ? "connected" : "UNREACHABLE"}${info.partial ? " (this node only)" : ""}` +
    ` · updated ${new Date().toLocaleTimeString()}`;
  status.classList.toggle("bad", !broker.connected);
  drawCharts(totals);
}

function showNodes(/** @type {any[]} */ nodes) {
  $("node-count").textContent = String(nodes.length);
  $("node-rows").replaceChildren(
    ...nodes.map((node) => {
      const row = element("tr", { testid: "node-row" });
      row.dataset.node = node.node;
      const broker = `${node.broker.name} ${node.broker.connected ? "✓" : "✗ unreachable"}`;
      for (const text of [
        node.node,
        node.version ?? "",
        node.worker ?? "",
        node.host ?? "",
        duration(node.uptime_seconds),
        broker,
        node.connections.websocket ?? 0,
        node.connections.sse ?? 0,
        node.connections.longpoll ?? 0,
      ]) {
        row.append(element("td", { text: String(text) }));
      }
      row.children[4].setAttribute("data-testid", "node-uptime");
      return row;
    }),
  );
}

// Charts: two small canvases, redrawn at each sample.

function drawCharts(/** @type {any} */ totals) {
  const connections = TRANSPORTS.map((t) => ({
    ...t,
    values: samples.map((s) => s.connections[t.name] ?? 0),
  }));
  const total = TRANSPORTS.reduce((sum, t) => sum + (totals.connections[t.name] ?? 0), 0);
  $("connections-now").textContent = `${total} open`;
  drawChart(/** @type {HTMLCanvasElement} */ ($("connections-chart")), connections);
  legend($("connections-legend"), connections);

  const rates = RATES.map((r) => ({ ...r, values: ratesOf(r.name) }));
  const [published, delivered] = rates.map((r) => r.values.at(-1) ?? 0);
  $("rate-now").textContent = `${rounded(published)} published, ${rounded(delivered)} delivered`;
  drawChart(/** @type {HTMLCanvasElement} */ ($("rate-chart")), rates);
  legend($("rate-legend"), rates);
}

/** Per-second rates of a counter between consecutive samples (a restarted node: 0). */
function ratesOf(/** @type {"publications" | "deliveries"} */ name) {
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const seconds = (samples[i].time - samples[i - 1].time) / 1000;
    const delta = samples[i][name] - samples[i - 1][name];
    rates.push(seconds > 0 && delta > 0 ? delta / seconds : 0);
  }
  return rates;
}

function drawChart(
  /** @type {HTMLCanvasElement} */ canvas,
  /** @type {{color: string, values: number[]}[]} */ series,
) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  const top = niceMaximum(Math.max(1, ...series.flatMap((s) => s.values)));
  const left = 36;
  const bottom = height - 16;
  context.font = "11px system-ui, sans-serif";
  context.fillStyle = "#6b7280";
  context.strokeStyle = "#e5e7eb";
  context.lineWidth = 1;
  for (const fraction of [0, 0.5, 1]) {
    const y = bottom - fraction * (bottom - 8);
    context.beginPath();
    context.moveTo(left, y);
    context.lineTo(width - 4, y);
    context.stroke();
    context.fillText(rounded(top * fraction), 2, y + 4);
  }
  context.fillText("2 min ago", left, height - 2);
  context.fillText("now", width - 24, height - 2);
  const step = (width - 4 - left) / (SAMPLES - 1);
  for (const { color, values } of series) {
    context.strokeStyle = color;
    context.lineWidth = 2;
    context.beginPath();
    const start = SAMPLES - values.length;
    values.forEach((value, i) => {
      const x = left + (start + i) * step;
      const y = bottom - (value / top) * (bottom - 8);
      if (i === 0) context.moveTo(x, y);
      else context.lineTo(x, y);
    });
    context.stroke();
  }
}

function legend(
  /** @type {HTMLElement} */ target,
  /** @type {{label: string, color: string, values: number[]}[]} */ series,
) {
  target.replaceChildren(
    ...series.map((s) => {
      const item = element("span", { className: "key", text: `${s.label} ${rounded(s.values.at(-1) ?? 0)}` });
      item.style.setProperty("--key", s.color);
      return item;
    }),
  );
}

function niceMaximum(/** @type {number} */ value) {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function rounded(/** @type {number} */ value) {
  if (value >= 10_000) return `${Math.round(value / 1000)}k`;
  if (value >= 100 || Number.isInteger(value)) return String(Math.round(value));
  return value.toFixed(1);
}

function duration(/** @type {number} */ seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

// Channels: kept rows, updated in place so that a click never lands on a row being replaced.

function showChannels() {
  const query = input("channel-search").value.trim().toLowerCase();
  const shown = channels.filter((c) => c.channel.toLowerCase().includes(query)).slice(0, MAX_ROWS);
  $("channel-count").textContent =
    shown.length < channels.length ? `${shown.length} of ${channels.length}` : String(channels.length);
  $("no-channels").hidden = channels.length > 0;
  const list = $("channel-list");
  const keep = new Set(shown.map((c) => c.channel));
  for (const [name, row] of rows) {
    if (!keep.has(name)) {
      row.remove();
      rows.delete(name);
    }
  }
  shown.forEach(({ channel, subscribers }, index) => {
    let row = rows.get(channel);
    if (row === undefined) {
      row = element("li", { testid: "channel-row", className: "channel-row" });
      row.dataset.channel = channel;
      const name = element("button", { className: "channel-name mono", text: channel });
      name.type = "button";
      name.addEventListener("click", () => openChannel(channel));
      row.append(name, element("span", { className: "count", testid: "channel-subscribers" }));
      rows.set(channel, row);
    }
    row.dataset.subscribers = String(subscribers);
    row.classList.toggle("selected", channel === selected);
    /** @type {HTMLElement} */ (row.lastElementChild).textContent =
      `${subscribers} subscriber${subscribers === 1 ? "" : "s"}`;
    if (list.children[index] !== row) list.insertBefore(row, list.children[index] ?? null);
  });
}

// One channel: presence, recent history, and live messages through pushwire.js.

function openChannel(/** @type {string} */ channel) {
  closeChannel();
  selected = channel;
  $("detail-channel").textContent = channel;
  $("detail-empty").hidden = true;
  $("detail").hidden = false;
  $("history-list").replaceChildren();
  input("publish-channel").value ||= channel;
  showChannels();
  void loadPresence(channel);
  void loadHistory(channel);
  if (client === null) client = new Pushwire(location.origin + ROOT);
  live = false;
  $("live-note").textContent = "(connecting…)";
  subscription = client.subscribe(channel, (/** @type {any} */ message) => addMessages([message]));
  subscription.addEventListener("subscribed", () => {
    live = true;
    $("live-note").textContent = "(live)";
  });
  subscription.addEventListener("error", (/** @type {any} */ event) => {
    live = false;
    $("live-note").textContent =
      `(not live: ${event.error.code}; refreshed every second from history)`;
  });
  for (const kind of ["join", "leave"]) {
    subscription.addEventListener(kind, () => loadPresence(channel));
  }
}

function closeChannel() {
  if (subscription) subscription.close();
  subscription = null;
  selected = null;
  live = false;
}

async function loadPresence(/** @type {string} */ channel) {
  if (apiKey === null) return;
  const note = $("presence-note");
  const list = $("presence-list");
  try {
    const answer = await api(apiKey, `/api/presence?channel=${encodeURIComponent(channel)}`);
    if (channel !== selected) return;
    note.hidden = answer.members.length > 0;
    note.textContent = "Nobody with a user id is subscribed.";
    list.replaceChildren(
      ...answer.members.map((/** @type {any} */ member) => {
        const name = member.info && typeof member.info.name === "string" ? ` (${member.info.name})` : "";
        const item = element("li", {
          testid: "presence-member",
          text: `${member.user}${name} · ${member.connections} connection${member.connections === 1 ? "" : "s"}`,
        });
        item.dataset.user = member.user;
        return item;
      }),
    );
  } catch (error) {
    if (channel !== selected) return;
    list.replaceChildren();
    note.hidden = false;
    note.textContent =
      error instanceof ApiError ? `No presence: ${error.message}.` : "Presence could not be read.";
  }
}

async function loadHistory(/** @type {string} */ channel) {
  if (apiKey === null) return;
  try {
    const path = `/api/history?channel=${encodeURIComponent(channel)}&limit=${HISTORY_LIMIT}`;
    const answer = await api(apiKey, path);
    if (channel === selected) addMessages(answer.messages);
  } catch (error) {
    if (channel === selected && error instanceof ApiError) {
      $("live-note").textContent = `(history: ${error.message})`;
    }
  }
}

/** Adds messages not shown yet, in id order, keeping the newest ``HISTORY_LIMIT``. */
function addMessages(/** @type {any[]} */ messages) {
  const list = $("history-list");
  const shown = new Set([...list.children].map((item) => /** @type {HTMLElement} */ (item).dataset.id));
  for (const message of messages) {
    if (shown.has(message.id)) continue;
    shown.add(message.id);
    const item = element("li", { testid: "history-item" });
    item.dataset.id = message.id;
    const parts = [element("code", { className: "data", text: JSON.stringify(message.data) })];
    if (message.event) parts.unshift(element("span", { className: "event", text: message.event }));
    if (message.from) parts.push(element("span", { className: "from", text: `from ${message.from.user}` }));
    item.append(...parts);
    list.append(item);
  }
  const items = [...list.children].sort((a, b) => order(a) - order(b));
  list.replaceChildren(...items.slice(-HISTORY_LIMIT));
}

/** A message id is "EPOCH-OFFSET": within a channel's stream, offsets order them. */
function order(/** @type {Element} */ item) {
  const id = /** @type {HTMLElement} */ (item).dataset.id ?? "";
  return Number(id.slice(id.lastIndexOf("-") + 1)) || 0;
}

// Publishing and disconnecting.

async function publish(/** @type {SubmitEvent} */ event) {
  event.preventDefault();
  const channel = input("publish-channel").value.trim();
  const text = /** @type {HTMLTextAreaElement} */ ($("publish-data")).value;
  const name = input("publish-event").value.trim();
  if (!channel) return result("publish-result", false, "Name a channel to publish to.");
  let data;
  try {
    data = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return result("publish-result", false, `The data is not valid JSON (${reason}); nothing was published.`);
  }
  /** @type {Record<string, unknown>} */
  const body = { channel, data };
  if (name) body.event = name;
  try {
    const answer = await api(/** @type {string} */ (apiKey), "/api/publish", { method: "POST", body });
    result("publish-result", true, `Published to ${answer.channel}: id ${answer.id}.`);
  } catch (error) {
    refused("publish-result", error, "Not published");
  }
}

async function disconnect(/** @type {SubmitEvent} */ event) {
  event.preventDefault();
  const user = input("disconnect-user").value.trim();
  if (!user) return result("disconnect-result", false, "Give the user id to disconnect.");
  try {
    const answer = await api(/** @type {string} */ (apiKey), "/api/disconnect", {
      method: "POST",
      body: { user },
    });
    const count = answer.disconnected;
    if (count === 0) {
      result("disconnect-result", false, `${user} has no open connection: nothing was disconnected.`);
    } else {
      result("disconnect-result", true, `Disconnected ${count} connection${count === 1 ? "" : "s"} of ${user}.`);
    }
  } catch (error) {
    refused("disconnect-result", error, "Not disconnected");
  }
}

function refused(/** @type {string} */ id, /** @type {unknown} */ error, /** @type {string} */ what) {
  if (error instanceof ApiError && error.status === 401) {
    logOut("The API key is no longer accepted.");
  } else if (error instanceof ApiError) {
    result(id, false, `${what}: ${error.message} (${error.code}).`);
  } else {
    result(id, false, `${what}: something went wrong; see the browser console.`);
    console.error(error);
  }
}

function result(/** @type {string} */ id, /** @type {boolean} */ ok, /** @type {string} */ text) {
  const target = $(id);
  target.textContent = text;
  target.classList.toggle("ok", ok);
  target.classList.toggle("error", !ok);
  target.dataset.outcome = ok ? "ok" : "error";
}

/** A new element; ``text`` becomes its text (never HTML). */
function element(
  /** @type {string} */ tag,
  /** @type {{text?: string, className?: string, testid?: string}} */ { text, className, testid } = {},
) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  if (testid) node.dataset.testid = testid;
  return node;
}

// Start.

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = input("admin-key").value.trim();
  if (!key) {
    $("admin-error").textContent = "Type the API key.";
    $("admin-error").hidden = false;
    return;
  }
  void logIn(key);
});
$("logout").addEventListener("click", () => logOut(null));
$("channel-search").addEventListener("input", showChannels);
$("publish-form").addEventListener("submit", (event) => void publish(/** @type {SubmitEvent} */ (event)));
$("disconnect-form").addEventListener("submit", (event) => void disconnect(/** @type {SubmitEvent} */ (event)));

const stored = sessionStorage.getItem(KEY_STORAGE);
if (stored) void logIn(stored, { quiet: true });
else showLogin();
