// The pushwire demo chat: the login screen, then one Chat over one Pushwire client.
//
// Channels: "demo:lobby" is the group room (history, presence, join/leave), and
// "dm:A,B" the private conversation of users A and B. The page subscribes to the DM of
// every person online, so that their messages (and unread badges) arrive before the
// conversation is opened. A conversation shows GET /history first, then live messages;
// ids keep each message once. pushwire.js reconnects and recovers from its cursors.

import "/pushwire.js";
import { AVATARS, avatarElement, avatarLabel } from "./avatars.js";
import { Conversation, GROUP_CHANNEL, chatMessageOf, dmChannel, personOf } from "./conversations.js";
import * as session from "./session.js";
import { conversationButton, element, groupIcon, messageItem, previewOf } from "./view.js";

const { Pushwire } = /** @type {any} */ (globalThis);

const TITLE = "pushwire chat";
const HISTORY_LIMIT = 100;
const TRANSPORTS = ["ws", "sse", "poll"];
// Below the server's max_message_bytes (64 KiB), with room for the frame around the data.
const MAX_PUBLISH_BYTES = 60 * 1024;
// A token this close to its expiry is refreshed before a connect.
const TOKEN_MARGIN_MS = 2 * 60 * 1000;
// The server allows 256 channels per connection; DMs with more people open on demand.
const MAX_DM_SUBSCRIPTIONS = 200;
// Messages by one author this close together share one header.
const CONTINUE_MS = 2 * 60 * 1000;
const TOKEN_CODES = ["invalid_token", "token_expired", "unauthorized"];
const NOTIFY_ASKED_KEY = "pushwire-chat:notifications-asked";
const STATE_TEXT = {
  idle: "connecting…",
  connecting: "connecting…",
  open: "connected",
  reconnecting: "reconnecting…",
  offline: "offline",
  closed: "disconnected",
};

const narrowScreen = window.matchMedia("(max-width: 720px)");
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @type {Chat | null} the running chat; null on the login screen */
let chat = null;

class Chat {
  /** @param {session.Login} login */
  constructor(login) {
    this.login = login;
    this.me = login.user;
    /** @type {Map<string, {user: string, name: string, avatar: string}>} who is online */
    this.people = new Map();
    /** @type {Map<string, {user: string, name: string, avatar: string}>} everyone seen, for titles */
    this.known = new Map();
    /** @type {Map<string, Conversation>} by channel */
    this.conversations = new Map();
    this.stopped = false;
    this.refreshNext = false;
    /** @type {Promise<string> | null} */
    this.tokenRequest = null;
    /** @type {{events: Array<{type: string, user: string, info: unknown}>} | null} */
    this.presencePending = null;
    this.opens = 0;
    this.errorTimer = 0;

    const params = new URLSearchParams(window.location.search);
    /** @type {Record<string, unknown>} */
    const options = { getToken: () => this.getToken(), debug: params.get("debug") === "1" };
    const transport = params.get("transport");
    if (transport && TRANSPORTS.includes(transport)) options.transports = [transport];
    this.pw = new Pushwire(window.location.origin, options);
    this.pw.addEventListener("state", () => this.showState());
    this.pw.addEventListener("open", () => {
      this.opens += 1;
      this.showState();
    });
    this.pw.addEventListener("close", (/** @type {any} */ event) => {
      // A connect that never opened may be a refused token (a browser cannot see why a
      // WebSocket upgrade failed): get a fresh one for the next attempt.
      if (!event.wasOpen || TOKEN_CODES.includes(event.code)) this.refreshNext = true;
    });
    this.pw.addEventListener("disconnected", () => endSession("The server ended your session."));
    this.pw.addEventListener("error", (/** @type {any} */ event) => console.warn("[chat]", event.error));

    this.group = new Conversation(GROUP_CHANNEL, null);
    this.conversations.set(GROUP_CHANNEL, this.group);
    const lobby = this.subscribe(this.group);
    lobby.addEventListener("subscribed", () => this.refreshPresence(lobby));
    lobby.addEventListener("join", (/** @type {any} */ event) => this.presenceEvent("join", event));
    lobby.addEventListener("leave", (/** @type {any} */ event) => this.presenceEvent("leave", event));
    this.open = this.group;

    $("me-avatar").replaceChildren(avatarElement(login.info.avatar, 40));
    $("me-name").textContent = login.info.name;
    this.showState();
    this.render();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.errorTimer);
    this.pw.close();
  }

  // Tokens.

  /** getToken for pushwire.js: the kept token while it is good, else a refreshed one. */
  getToken() {
    if (!this.refreshNext && this.login.expiresAt - Date.now() > TOKEN_MARGIN_MS) {
      return Promise.resolve(this.login.token);
    }
    if (!this.tokenRequest) {
      this.tokenRequest = session
        .requestRefresh(this.login.token)
        .then(
          (login) => {
            if (this.stopped) throw new Error("logged out");
            this.login = login;
            this.refreshNext = false;
            session.saveLogin(login);
            return login.token;
          },
          (error) => {
            // 4xx: the login is no good any more (too old, or the server's demo secret
            // changed). Otherwise the server is away: pushwire.js retries with back-off.
            if (error instanceof session.LoginError && error.status >= 400 && error.status < 500) {
              queueMicrotask(() => {
                if (chat === this) endSession("Your login has expired: please log in again.");
              });
            }
            throw error;
          }
        )
        .finally(() => {
          this.tokenRequest = null;
        });
    }
    return this.tokenRequest;
  }

  // Channels.

  /**
   * @param {Conversation} conversation
   * @returns {any} the Subscription
   */
  subscribe(conversation) {
    const subscription = this.pw.subscribe(conversation.channel, (/** @type {any} */ message) =>
      this.receive(conversation, message)
    );
    conversation.subscription = subscription;
    subscription.addEventListener("subscribed", () => this.loadHistory(conversation));
    subscription.addEventListener("gap", () => {
      // Messages were lost for good: what history still has is the best there is.
      conversation.historyLoaded = false;
      this.loadHistory(conversation);
    });
    subscription.addEventListener("error", (/** @type {any} */ event) => {
      conversation.subscription = null;
      console.warn("[chat] subscription refused:", conversation.channel, event.error);
    });
    return subscription;
  }

  /** @param {Conversation} conversation */
  async loadHistory(conversation) {
    if (conversation.historyLoaded || conversation.historyLoading) return;
    conversation.historyLoading = true;
    try {
      const token = await this.getToken();
      const url = "/history?channel=" + encodeURIComponent(conversation.channel) + "&limit=" + HISTORY_LIMIT;
      const response = await fetch(url, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      if (response.status === 401) this.refreshNext = true;
      if (!response.ok) throw new Error("history: HTTP " + response.status);
      const answer = await response.json();
      if (this.stopped || !Array.isArray(answer.messages)) return;
      const history = answer.messages.map(chatMessageOf).filter((message) => message !== null);
      const added = conversation.mergeHistory(history);
      conversation.historyLoaded = true;
      if (added && conversation === this.open) this.renderMessages();
      this.renderSidebar();
    } catch (error) {
      // Tried again at the next (re)subscribe or when the conversation is opened.
      console.warn("[chat]", error);
    } finally {
      conversation.historyLoading = false;
    }
  }

  /**
   * @param {Conversation} conversation
   * @param {any} raw the pushwire message
   */
  receive(conversation, raw) {
    const message = chatMessageOf(raw);
    if (this.stopped || !message || !conversation.add(message)) return;
    if (message.user !== this.me) {
      if (message.user) this.known.set(message.user, { user: message.user, name: message.name, avatar: message.avatar });
      if (!this.inView(conversation)) {
        conversation.unread += 1;
        this.notify(conversation, message);
      }
    }
    if (conversation === this.open) {
      const list = $("message-list");
      const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 80 || message.user === this.me;
      const previous = conversation.messages[conversation.messages.length - 2] || null;
      list.querySelector(".empty")?.remove();
      list.append(messageItem(message, message.user === this.me, continues(previous, message)));
      if (stick) list.scrollTop = list.scrollHeight;
    }
    this.renderSidebar();
    this.renderTitle();
  }

  // Presence.

  /** @param {any} lobby */
  async refreshPresence(lobby) {
    const pending = { events: [] };
    this.presencePending = pending;
    let members;
    try {
      members = await lobby.presence();
    } catch (error) {
      console.warn("[chat] presence:", error);
      if (this.presencePending === pending) this.presencePending = null;
      return;
    }
    if (this.stopped || this.presencePending !== pending) return; // a newer request is out
    this.presencePending = null;
    this.people = new Map();
    for (const member of members) this.people.set(member.user, personOf(member.user, member.info));
    // Joins and leaves that came while the answer was on its way are newer (or the same).
    for (const event of pending.events) this.applyPresence(event.type, event.user, event.info);
    this.peopleChanged();
  }

  /**
   * @param {string} type "join" or "leave"
   * @param {{user: string, info: unknown}} event
   */
  presenceEvent(type, event) {
    if (this.presencePending) this.presencePending.events.push({ type, user: event.user, info: event.info });
    this.applyPresence(type, event.user, event.info);
    this.peopleChanged();
  }

  /**
   * @param {string} type
   * @param {string} user
   * @param {unknown} info
   */
  applyPresence(type, user, info) {
    if (type === "join") this.people.set(user, personOf(user, info));
    else this.people.delete(user);
  }

  peopleChanged() {
    if (this.stopped) return;
    let subscribed = 0;
    for (const conversation of this.conversations.values()) if (conversation.subscription && !conversation.isGroup) subscribed += 1;
    for (const person of this.people.values()) {
      this.known.set(person.user, person);
      if (person.user === this.me) continue;
      const channel = dmChannel(this.me, person.user);
      let conversation = this.conversations.get(channel);
      if (!conversation) {
        conversation = new Conversation(channel, person.user);
        this.conversations.set(channel, conversation);
      }
      if (!conversation.subscription && subscribed < MAX_DM_SUBSCRIPTIONS) {
        this.subscribe(conversation);
        subscribed += 1;
      }
    }
    this.renderSidebar();
    this.renderHeader();
    this.renderTitle();
  }

  // Sending.

  /** @param {string} text */
  async send(text) {
    const conversation = this.open;
    if (!text.trim() || !conversation) return;
    const data = { text, name: this.login.info.name, avatar: this.login.info.avatar, user: this.me, at: Date.now() };
    const size = new TextEncoder().encode(JSON.stringify({ type: "publish", channel: conversation.channel, data })).length;
    if (size > MAX_PUBLISH_BYTES) {
      this.showSendError("That message is too long to send (at most about 60 KB).", text);
      return;
    }
    if (!conversation.subscription) this.subscribe(conversation);
    try {
      await this.pw.publish(conversation.channel, data);
    } catch (/** @type {any} */ error) {
      this.showSendError(sendErrorText(error), text);
    }
  }

  /**
   * @param {string} message
   * @param {string} [unsent] the text that was not sent: back into an empty input
   */
  showSendError(message, unsent) {
    if (this.stopped) return;
    const box = $("send-error");
    box.textContent = message;
    box.hidden = false;
    const input = /** @type {HTMLTextAreaElement} */ ($("message-input"));
    if (unsent && !input.value) {
      input.value = unsent;
      fitInput();
    }
    clearTimeout(this.errorTimer);
    this.errorTimer = window.setTimeout(() => this.clearSendError(), 8000);
  }

  clearSendError() {
    $("send-error").hidden = true;
  }

  // Views.

  /** @param {Conversation} conversation */
  openConversation(conversation) {
    this.open = conversation;
    document.body.classList.add("show-pane");
    if (!conversation.subscription) this.subscribe(conversation);
    else this.loadHistory(conversation);
    this.viewChanged();
    this.render();
    if (!narrowScreen.matches) $("message-input").focus();
  }

  showList() {
    document.body.classList.remove("show-pane");
    this.viewChanged();
  }

  /**
   * Whether a conversation is on screen now: open, the tab visible, and on a phone
   * the conversation view (not the list) showing.
   * @param {Conversation} conversation
   */
  inView(conversation) {
    return (
      conversation === this.open &&
      document.visibilityState === "visible" &&
      (!narrowScreen.matches || document.body.classList.contains("show-pane"))
    );
  }

  /** The tab was shown or hidden, or the phone view changed: the open conversation is read. */
  viewChanged() {
    if (this.open && this.inView(this.open) && this.open.unread) {
      this.open.unread = 0;
      this.renderSidebar();
    }
    this.renderTitle();
  }

  render() {
    if (this.stopped) return;
    this.renderSidebar();
    this.renderHeader();
    this.renderMessages();
    this.renderTitle();
  }

  renderTitle() {
    let unread = 0;
    for (const conversation of this.conversations.values()) unread += conversation.unread;
    document.title = unread ? `(${unread}) ${TITLE}` : TITLE;
    // On a phone the list is behind the back button: it shows the count too.
    const back = $("back");
    back.replaceChildren("‹");
    if (unread) back.append(element("span", "badge", unread > 99 ? "99+" : String(unread)));
    back.setAttribute("aria-label", unread ? `Back to conversations (${unread} unread)` : "Back to conversations");
  }

  showState() {
    const status = $("connection-status");
    const state = this.pw.state;
    status.dataset.state = state;
    status.dataset.opens = String(this.opens);
    status.dataset.transport = this.pw.transport || "";
    status.textContent = state === "open" ? "connected · " + this.pw.transport : STATE_TEXT[state] || state;
    // The same in the conversation, where a phone shows no sidebar.
    const banner = $("pane-status");
    banner.hidden = state === "open" || (state === "connecting" && this.opens === 0);
    banner.textContent =
      state === "offline" ? "You are offline: messages will arrive when you are back." : "Connection lost: " + status.textContent;
  }

  renderSidebar() {
    const group = this.group;
    $("rooms").replaceChildren(
      listItem(
        conversationButton(
          {
            key: "group",
            channel: group.channel,
            title: "Lobby",
            avatar: "",
            preview: previewOf(group.last, group.last?.user === this.me, true),
            unread: group.unread,
            current: this.open === group,
          },
          () => this.openConversation(group)
        )
      )
    );
    const people = [...this.people.values()].sort(
      (a, b) => Number(b.user === this.me) - Number(a.user === this.me) || a.name.localeCompare(b.name) || a.user.localeCompare(b.user)
    );
    const items = people.map((person) => {
      const item = element("li", "online-user");
      item.dataset.testid = "online-user";
      item.dataset.userName = person.name;
      item.dataset.user = person.user;
      if (person.user === this.me) {
        const self = element("div", "entry self");
        const text = element("span", "entry-text");
        text.append(element("span", "entry-name", person.name), element("span", "entry-preview", "you"));
        self.append(avatarElement(person.avatar, 40), text);
        item.append(self);
        return item;
      }
      const conversation = /** @type {Conversation} */ (this.conversations.get(dmChannel(this.me, person.user)));
      item.append(this.dmButton(conversation, person));
      return item;
    });
    $("online-list").replaceChildren(...items);
    $("online-count").textContent = String(people.length);
    // People who left are not online, but what they wrote and you have not read is kept
    // (and the conversation that is open stays in the list).
    const gone = [...this.conversations.values()].filter(
      (c) => c.peer !== null && !this.people.has(c.peer) && (c.unread > 0 || c === this.open)
    );
    $("offline-list").replaceChildren(
      ...gone.map((conversation) => {
        const peer = /** @type {string} */ (conversation.peer);
        return listItem(this.dmButton(conversation, this.known.get(peer) || personOf(peer, null)));
      })
    );
    $("offline-heading").hidden = gone.length === 0;
  }

  /**
   * @param {Conversation} conversation
   * @param {{name: string, avatar: string}} person
   */
  dmButton(conversation, person) {
    return conversationButton(
      {
        key: person.name,
        channel: conversation.channel,
        title: person.name,
        avatar: person.avatar,
        preview: previewOf(conversation.last, conversation.last?.user === this.me, false),
        unread: conversation.unread,
        current: this.open === conversation,
      },
      () => this.openConversation(conversation)
    );
  }

  renderHeader() {
    const conversation = this.open;
    if (!conversation) return;
    const person = conversation.peer ? this.known.get(conversation.peer) : null;
    if (conversation.isGroup) {
      $("pane-avatar").replaceChildren(groupIcon());
      $("pane-title").textContent = "Lobby";
      $("pane-subtitle").textContent = this.people.size + " online · open to everyone";
    } else {
      $("pane-avatar").replaceChildren(avatarElement(person ? person.avatar : "cat", 36));
      $("pane-title").textContent = person ? person.name : "someone";
      const online = conversation.peer !== null && this.people.has(conversation.peer);
      $("pane-subtitle").textContent = online ? "online · private conversation" : "offline · private conversation";
    }
  }

  renderMessages() {
    const conversation = this.open;
    if (!conversation) return;
    const list = $("message-list");
    list.dataset.channel = conversation.channel;
    const stick = list.dataset.shown !== conversation.channel || list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    let previous = null;
    const items = [];
    for (const message of conversation.messages) {
      items.push(messageItem(message, message.user === this.me, continues(previous, message)));
      previous = message;
    }
    if (!items.length) items.push(element("li", "empty", conversation.isGroup ? "No messages yet: say hello!" : "Say hello: only the two of you can read this."));
    list.replaceChildren(...items);
    list.dataset.shown = conversation.channel;
    if (stick) list.scrollTop = list.scrollHeight;
  }

  /**
   * A browser notification for a message that is not on screen (if allowed).
   * @param {Conversation} conversation
   * @param {import("./conversations.js").ChatMessage} message
   */
  notify(conversation, message) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const where = conversation.isGroup ? " in the lobby" : "";
    try {
      const notification = new Notification(message.name + where, {
        body: message.text.slice(0, 200),
        tag: conversation.channel,
      });
      notification.onclick = () => {
        window.focus();
        if (chat === this) this.openConversation(conversation);
        notification.close();
      };
    } catch (error) {
      // Some browsers allow notifications only from a service worker.
      console.warn("[chat] notification:", error);
    }
  }
}

/**
 * @param {import("./conversations.js").ChatMessage | null} previous
 * @param {import("./conversations.js").ChatMessage} message
 */
function continues(previous, message) {
  return previous !== null && previous.user === message.user && message.at - previous.at < CONTINUE_MS && message.at >= previous.at;
}

/** @param {HTMLElement} child */
function listItem(child) {
  const item = document.createElement("li");
  item.append(child);
  return item;
}

/** @param {any} error a PushwireError from publish() */
function sendErrorText(error) {
  switch (error && error.code) {
    case "rate_limited":
      return "You are sending messages too fast: slow down, and try again in a moment.";
    case "message_too_large":
      return "That message is too long to send.";
    case "permission_denied":
    case "unauthorized":
      return "You may not send messages here.";
    case "timeout":
    case "network":
    case "disconnected":
      return "Not sent: the connection dropped. Try again when it is back.";
    default:
      return "Not sent: " + (error && error.message ? error.message : String(error));
  }
}

// Screens.

/** @param {session.Login} login */
function startChat(login) {
  if (chat) chat.stop();
  $("login-screen").hidden = true;
  $("chat-screen").hidden = false;
  document.body.classList.remove("show-pane");
  chat = new Chat(login);
}

/**
 * Log out: close the connection (presence sees the leave at once), forget the login.
 * @param {string | null} message shown on the login screen
 */
function endSession(message) {
  if (chat) chat.stop();
  chat = null;
  session.forgetLogin();
  showLogin(message);
}

/** @param {string | null} message */
function showLogin(message) {
  $("chat-screen").hidden = true;
  $("login-screen").hidden = false;
  $("message-list").replaceChildren();
  $("online-list").replaceChildren();
  $("offline-list").replaceChildren();
  document.title = TITLE;
  showLoginError(message);
  $("login-name").focus();
}

/** @param {string | null} message */
function showLoginError(message) {
  const box = $("login-error");
  // The server's messages start in lower case ("choose a name"): a sentence on screen.
  box.textContent = message ? message.charAt(0).toUpperCase() + message.slice(1) : "";
  box.hidden = !message;
}

function buildAvatarChoices() {
  const choices = AVATARS.map((id, index) => {
    const label = element("label", "avatar-choice");
    label.dataset.testid = "login-avatar";
    label.dataset.avatar = id;
    label.title = avatarLabel(id);
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "avatar";
    input.value = id;
    input.checked = index === 0;
    label.append(input, avatarElement(id, 48), element("span", "avatar-name", avatarLabel(id)));
    return label;
  });
  $("avatar-choices").replaceChildren(...choices);
}

async function onLogin(/** @type {SubmitEvent} */ event) {
  event.preventDefault();
  const name = /** @type {HTMLInputElement} */ ($("login-name")).value;
  const chosen = /** @type {HTMLInputElement | null} */ (document.querySelector("input[name=avatar]:checked"));
  const button = /** @type {HTMLButtonElement} */ ($("login-submit"));
  button.disabled = true;
  showLoginError(null);
  try {
    const login = await session.requestLogin(name, chosen ? chosen.value : AVATARS[0]);
    session.saveLogin(login);
    askForNotifications();
    startChat(login);
  } catch (error) {
    showLoginError(error instanceof session.LoginError ? error.message : "Could not reach the server: " + error);
  } finally {
    button.disabled = false;
  }
}

/** Once per browser, right after a login (a click: browsers want a gesture for this). */
function askForNotifications() {
  if (!("Notification" in window) || Notification.permission !== "default") return;
  try {
    if (localStorage.getItem(NOTIFY_ASKED_KEY)) return;
    localStorage.setItem(NOTIFY_ASKED_KEY, "1");
  } catch {
    // No storage: ask anyway.
  }
  Notification.requestPermission().catch(() => {});
}

function fitInput() {
  const input = $("message-input");
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight, 160) + "px";
}

function onSend(/** @type {Event} */ event) {
  event.preventDefault();
  const input = /** @type {HTMLTextAreaElement} */ ($("message-input"));
  const text = input.value;
  if (!chat || !text.trim()) return;
  chat.clearSendError();
  input.value = "";
  fitInput();
  chat.send(text);
}

function main() {
  buildAvatarChoices();
  $("login-form").addEventListener("submit", onLogin);
  $("composer").addEventListener("submit", onSend);
  $("message-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) onSend(event);
  });
  $("message-input").addEventListener("input", fitInput);
  $("logout").addEventListener("click", () => endSession(null));
  $("back").addEventListener("click", () => chat && chat.showList());
  document.addEventListener("visibilitychange", () => chat && chat.viewChanged());
  narrowScreen.addEventListener("change", () => chat && chat.viewChanged());
  // Another tab of this browser logged in or out: so does this one.
  window.addEventListener("storage", (event) => {
    if (event.key !== session.STORAGE_KEY) return;
    const login = session.parseLogin(event.newValue);
    if (!login) {
      if (chat) endSession("You logged out in another tab.");
    } else if (!chat || chat.me !== login.user) {
      session.saveLogin(login);
      startChat(login);
    }
  });
  const login = session.loadLogin();
  if (login) {
    session.saveLogin(login); // a new tab keeps its own copy in sessionStorage too
    startChat(login);
  } else {
    showLogin(null);
  }
}

main();
