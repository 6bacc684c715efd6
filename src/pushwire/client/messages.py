"""What the client hands to applications: messages, gap notices, presence and API answers.

Frozen dataclasses built from the wire's JSON objects. The ``from_json``
functions raise ``ValueError`` on a malformed object, so a caller can log the
frame and carry on instead of crashing on one bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ChannelInfo",
    "Gap",
    "History",
    "Join",
    "Leave",
    "Member",
    "Message",
    "PresenceEvent",
    "PublishResult",
    "Publisher",
    "channel_info_from_json",
    "history_from_json",
    "member_from_json",
    "members_from_json",
    "message_from_json",
    "presence_event_from_json",
    "publish_result_from_json",
]


@dataclass(frozen=True, slots=True)
class Message:
    """One publication, as every transport delivers it.

    Attributes:
        channel: the channel it was published to.
        id: its cursor: store it and pass it back as ``cursor=`` to resume right
            after this message. Opaque; compare only for equality.
        data: the published JSON value, decoded.
        event: the publisher's event name, or None.
        publisher: who published it (the wire's ``from``), when a client with a
            token did: checked by the server, unlike anything in ``data``.
    """

    channel: str
    id: str
    data: Any
    event: str | None = None
    publisher: Publisher | None = None

    def to_json(self) -> dict[str, Any]:
        """The protocol's message object (the shape ``pushwire subscribe`` prints)."""
        value: dict[str, Any] = {"channel": self.channel, "id": self.id}
        if self.event is not None:
            value["event"] = self.event
        value["data"] = self.data
        if self.publisher is not None:
            value["from"] = {"user": self.publisher.user, "info": self.publisher.info}
        return value


@dataclass(frozen=True, slots=True)
class Publisher:
    """The verified identity of a client that published a message."""

    user: str
    info: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages on ``channel`` were lost for good: history no longer held them.

    Delivery goes on with the messages published after ``cursor``. Whatever the
    application built from earlier messages may be stale: reload it from its
    own backend.

    Attributes:
        channel: the channel that lost messages.
        cursor: where delivery continues from (the new position to store).
        last_id: the id of the last message delivered before the gap, or the
            cursor the subscription started from; None if there was neither.
    """

    channel: str
    cursor: str
    last_id: str | None


@dataclass(frozen=True, slots=True)
class Member:
    """A user subscribed to a presence channel (one member however many connections).

    Attributes:
        user: the user id (the token's ``sub``).
        info: the token's ``info`` claim, or None.
        connections: how many of the user's connections are subscribed.
    """

    user: str
    info: dict[str, Any] | None
    connections: int


@dataclass(frozen=True, slots=True)
class Join:
    """A user's first connection subscribed to ``channel`` (a ``join_leave`` channel)."""

    channel: str
    user: str
    info: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Leave:
    """A user's last connection left ``channel`` (a ``join_leave`` channel)."""

    channel: str
    user: str
    info: dict[str, Any] | None


PresenceEvent = Join | Leave


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The server's answer to a publish: the channel and the new message's ``id``."""

    channel: str
    id: str


@dataclass(frozen=True, slots=True)
class History:
    """A page of a channel's history, oldest first.

    Attributes:
        cursor: the newest position of the channel (whether or not in ``messages``).
        gap: with ``since``, true if some messages after it are no longer in
            history; always false without ``since``.
    """

    channel: str
    messages: tuple[Message, ...]
    cursor: str
    gap: bool


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel with subscribers on the server, and how many."""

    channel: str
    subscribers: int


def message_from_json(value: object) -> Message:
    """A :class:`Message` from a message object (extra fields such as ``type`` are ignored)."""
    if not isinstance(value, dict):
        raise ValueError("a message must be a JSON object")
    channel, id_, event = value.get("channel"), value.get("id"), value.get("event")
    if not isinstance(channel, str) or not isinstance(id_, str) or "data" not in value:
        raise ValueError("a message needs string channel and id, and data")
    if event is not None and not isinstance(event, str):
        raise ValueError("a message's event must be a string")
    return Message(channel, id_, value["data"], event, _publisher(value.get("from")))


def _publisher(value: object) -> Publisher | None:
    """The message's ``from``; a malformed one is dropped rather than trusted."""
    if not isinstance(value, dict):
        return None
    user, info = value.get("user"), value.get("info")
    if not isinstance(user, str) or not (info is None or isinstance(info, dict)):
        return None
    return Publisher(user, info)


def publish_result_from_json(value: object) -> PublishResult:
    if not isinstance(value, dict):
        raise ValueError("a publish answer must be a JSON object")
    channel, id_ = value.get("channel"), value.get("id")
    if not isinstance(channel, str) or not isinstance(id_, str):
        raise ValueError("a publish answer needs string channel and id")
    return PublishResult(channel, id_)


def history_from_json(value: object) -> History:
    if not isinstance(value, dict):
        raise ValueError("a history answer must be a JSON object")
    channel, cursor, messages = value.get("channel"), value.get("cursor"), value.get("messages")
    if not isinstance(channel, str) or not isinstance(cursor, str):
        raise ValueError("a history answer needs string channel and cursor")
    if not isinstance(messages, list):
        raise ValueError("a history answer needs a messages list")
    return History(
        channel,
        tuple(message_from_json(message) for message in messages),
        cursor,
        value.get("gap") is True,
    )


def channel_info_from_json(value: object) -> ChannelInfo:
    if not isinstance(value, dict):
        raise ValueError("a channel entry must be a JSON object")
    channel, subscribers = value.get("channel"), value.get("subscribers")
    if not isinstance(channel, str) or not isinstance(subscribers, int):
        raise ValueError("a channel entry needs a string channel and integer subscribers")
    return ChannelInfo(channel, subscribers)


def member_from_json(value: object) -> Member:
    if not isinstance(value, dict):
        raise ValueError("a member must be a JSON object")
    user, info, connections = value.get("user"), value.get("info"), value.get("connections")
    if not isinstance(user, str) or not isinstance(info, dict | None):
        raise ValueError("a member needs a string user and an object (or null) info")
    # bool is an int in Python; a count of True connections is not a count.
    if not isinstance(connections, int) or isinstance(connections, bool):
        raise ValueError("a member needs an integer connections count")
    return Member(user, info, connections)


def members_from_json(value: object, channel: str | None = None) -> list[Member]:
    """The members of a presence answer; with ``channel``, the answer must be for it."""
    if not isinstance(value, dict) or not isinstance(value.get("members"), list):
        raise ValueError("a presence answer needs a members list")
    if channel is not None and value.get("channel") != channel:
        raise ValueError(f"a presence answer for {value.get('channel')!r}, not {channel!r}")
    return [member_from_json(member) for member in value["members"]]


def presence_event_from_json(kind: str, value: object) -> PresenceEvent:
    """A :class:`Join` (``kind`` "join") or :class:`Leave` from its ``{channel, user, info}``."""
    if not isinstance(value, dict):
        raise ValueError(f"a {kind} must be a JSON object")
    channel, user, info = value.get("channel"), value.get("user"), value.get("info")
    if not isinstance(channel, str) or not isinstance(user, str):
        raise ValueError(f"a {kind} needs string channel and user")
    if not isinstance(info, dict | None):
        raise ValueError(f"a {kind}'s info must be an object or null")
    return Join(channel, user, info) if kind == "join" else Leave(channel, user, info)
