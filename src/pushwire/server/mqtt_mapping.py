"""How MQTT topics and payloads become pushwire channels and data, and back (docs/mqtt.md).

Pure functions, tested without a broker. A channel's ``:``-separated levels are
a topic's ``/``-separated levels. Characters a channel name cannot hold are
escaped as ``=XX`` (each UTF-8 byte in upper-case hex), ``=`` itself included,
so every topic has exactly one channel and back: two names never merge. What
has no counterpart (an empty level; ``/``, ``+``, ``#`` or NUL inside a level;
a channel over 255 characters) is refused with :class:`InvalidChannelError`.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from pushwire.errors import InvalidChannelError
from pushwire.protocol.names import MAX_CHANNEL_LENGTH

__all__ = [
    "channel_to_topic",
    "envelope_json",
    "outgoing_payload",
    "payload_value",
    "prefix_filter",
    "topic_to_channel",
]

# Characters a level keeps as they are, both ways: what channel names allow, less
# ":" (the channel's level separator), "/" "+" "#" (MQTT's) and "=" (the escape).
_SAFE_LEVEL = re.compile(r"[A-Za-z0-9_.@,\-]+")
_SAFE_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@,-")
_ESCAPED_LEVEL = re.compile(r"(?:[A-Za-z0-9_.@,\-]|=[0-9A-F]{2})+")
_TOKEN = re.compile(r"=([0-9A-F]{2})|(.)")
# Characters no topic level may hold: the separator, the wildcards, and NUL (MQTT 5 §4.7.3).
_NOT_IN_A_LEVEL = ("/", "+", "#", "\x00")


def topic_to_channel(topic: str) -> str:
    """The channel of an MQTT topic name: ``devices/42/telemetry`` -> ``devices:42:telemetry``.

    Raises:
        InvalidChannelError: the topic has an empty level, or its channel would
            be longer than 255 characters.
    """
    levels = topic.split("/")
    if "" in levels:
        raise InvalidChannelError(f"topic {topic[:100]!r} has an empty level")
    channel = ":".join(_escape_level(level) for level in levels)
    if len(channel) > MAX_CHANNEL_LENGTH:
        raise InvalidChannelError(
            f"topic {topic[:100]!r} would be a channel over {MAX_CHANNEL_LENGTH} characters"
        )
    return channel


def channel_to_topic(channel: str) -> str:
    """The MQTT topic name of a (valid) channel name: the inverse of :func:`topic_to_channel`.

    Raises:
        InvalidChannelError: a level is empty, holds ``/``, ``+`` or ``#`` (as they
            are or escaped), or an escape that :func:`topic_to_channel` would not
            have written (``=41`` for ``A``, lower-case hex, bytes that are not UTF-8).
    """
    return "/".join(_unescape_level(level, channel) for level in channel.split(":"))


def prefix_filter(prefix: str) -> str:
    """The MQTT topic filter of a route's channel prefix: ``devices:`` -> ``devices/#``.

    The prefix ends with ``:``, so its channels are exactly the filter's topics
    below the prefix's own level.
    """
    if not prefix.endswith(":"):
        raise InvalidChannelError(f"a route prefix must end with ':', not {prefix!r}")
    return channel_to_topic(prefix[:-1]) + "/#"


def payload_value(payload: bytes) -> Any:
    """What an MQTT payload is as pushwire data.

    JSON is that JSON value (parsed and re-encoded: integers beyond 64 bits become
    floats); other UTF-8 text is a string; anything else is ``{"base64": "..."}``.
    """
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(payload).decode("ascii")}


def envelope_json(topic: str, qos: int, retain: bool, payload: bytes) -> bytes:
    """The data of a publication that came in from MQTT (docs/mqtt.md, "Envelope")."""
    return orjson.dumps(
        {"topic": topic, "qos": qos, "retain": retain, "payload": payload_value(payload)}
    )


def outgoing_payload(data: bytes) -> bytes:
    """The MQTT payload of pushwire data (JSON), so that a payload survives the round trip.

    A string goes out as its UTF-8 text, ``{"base64": "..."}`` (that key alone) as
    the bytes it encodes; any other value as its JSON.
    """
    first = data[:1]
    if first not in (b'"', b"{"):
        return data
    value = orjson.loads(data)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("base64"), str):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except binascii.Error:
            pass  # not base64 after all: an ordinary object
    return data


def _escape_level(level: str) -> str:
    if _SAFE_LEVEL.fullmatch(level):
        return level
    try:
        return "".join(
            char if char in _SAFE_CHARACTERS else "".join(f"={b:02X}" for b in char.encode())
            for char in level
        )
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for it
        raise InvalidChannelError(f"topic level {level[:100]!r} is not valid text") from None


def _unescape_level(level: str, channel: str) -> str:
    if _SAFE_LEVEL.fullmatch(level):
        return level
    if not level:
        raise InvalidChannelError(f"channel {channel!r} has an empty level: no MQTT topic for it")
    if not _ESCAPED_LEVEL.fullmatch(level):
        raise InvalidChannelError(
            f"channel {channel!r} has no MQTT topic: a level may hold A-Z a-z 0-9 _ . @ , - "
            "and =XX escapes, not / + # or a bare ="
        )
    data = bytearray()
    for match in _TOKEN.finditer(level):
        escaped, plain = match.groups()
        data += bytes((int(escaped, 16),)) if escaped else plain.encode("ascii")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidChannelError(f"channel {channel!r} escapes bytes that are not UTF-8") from None
    if any(char in text for char in _NOT_IN_A_LEVEL):
        raise InvalidChannelError(f"channel {channel!r} escapes / + # or NUL: not in an MQTT topic")
    if _escape_level(text) != level:
        raise InvalidChannelError(
            f"channel {channel!r} escapes a character that needs none (or in lower case): "
            "each topic has one channel"
        )
    return text
