// DOM builders for the chat: sidebar entries and messages. Everything a person typed
// (names, messages) goes in with textContent, never as HTML.

import { avatarElement } from "./avatars.js";

/**
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text] set as textContent
 * @returns {HTMLElement}
 */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * A conversation in the sidebar: a button with avatar, name, last-message preview and
 * the unread badge.
 * @param {object} entry
 * @param {string} entry.key data-conversation: "group" or the other person's name
 * @param {string} entry.channel
 * @param {string} entry.title
 * @param {string} entry.avatar an avatar id, or "" for the group's icon
 * @param {string} entry.preview
 * @param {number} entry.unread
 * @param {boolean} entry.current
 * @param {() => void} onOpen
 */
export function conversationButton(entry, onOpen) {
  const button = document.createElement("button");
  button.className = "entry";
  button.type = "button";
  button.dataset.testid = "conversation";
  button.dataset.conversation = entry.key;
  button.dataset.channel = entry.channel;
  if (entry.current) button.setAttribute("aria-current", "true");
  button.append(entry.avatar ? avatarElement(entry.avatar, 40) : groupIcon());
  const text = element("span", "entry-text");
  text.append(element("span", "entry-name", entry.title), element("span", "entry-preview", entry.preview));
  button.append(text);
  if (entry.unread > 0) {
    const badge = element("span", "badge", entry.unread > 99 ? "99+" : String(entry.unread));
    badge.dataset.testid = "unread-badge";
    badge.dataset.count = String(entry.unread);
    badge.setAttribute("aria-label", entry.unread + " unread");
    button.append(badge);
  }
  button.addEventListener("click", onOpen);
  return button;
}

/** The lobby's icon: a speech bubble in a circle. */
export function groupIcon() {
  const icon = element("span", "group-icon", "#");
  icon.setAttribute("aria-hidden", "true");
  return icon;
}

/**
 * One message of the message list.
 * @param {import("./conversations.js").ChatMessage} message
 * @param {boolean} mine
 * @param {boolean} continued the previous message has the same author, shortly before
 */
export function messageItem(message, mine, continued) {
  const item = element("li", "message" + (mine ? " mine" : "") + (continued ? " continued" : ""));
  item.dataset.testid = "message";
  item.dataset.author = message.name;
  item.dataset.user = message.user;
  item.dataset.id = message.id;
  if (!message.verified) item.dataset.unverified = "true";
  const avatar = element("span", "message-avatar");
  avatar.append(avatarElement(message.avatar, 36));
  const bubble = element("div", "bubble");
  const meta = element("div", "message-meta");
  const time = document.createElement("time");
  const date = new Date(message.at);
  time.dateTime = date.toISOString();
  time.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  time.title = date.toLocaleString();
  meta.append(element("span", "message-author", mine ? "You" : message.name), time);
  const text = element("p", "message-text", message.text);
  text.dataset.testid = "message-text";
  bubble.append(meta, text);
  item.append(avatar, bubble);
  return item;
}

/**
 * A preview line for the sidebar.
 * @param {import("./conversations.js").ChatMessage | null} message
 * @param {boolean} mine
 * @param {boolean} showAuthor
 */
export function previewOf(message, mine, showAuthor) {
  if (!message) return "No messages yet";
  const text = message.text.replace(/\s+/g, " ").trim().slice(0, 80);
  if (mine) return "You: " + text;
  return showAuthor ? message.name + ": " + text : text;
}
