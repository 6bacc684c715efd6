"""Wire encodings of messages and replies: JSON objects, WebSocket frames, SSE events.

A publication is encoded once per wire format and the same bytes go to every
subscriber, so these functions take plain values and return bytes, and never
look at who will receive them.
"""

from __future__ import annotations

import orjson
from websockets.frames import Frame, Opcode

__all__ = [
    "SSE_GAP_EVENT",
    "SSE_PING",
    "WS_PING_FRAME",
    "member_json",
    "message_json",
    "presence_json",
    "publisher_json",
    "reply",
    "sse_event",
    "sse_gap_event",
    "sse_presence_event",
    "sse_retry",
    "ws_gap_frame",
    "ws_message_frame",
    "ws_text_frame",
]

# Server-to-client frames are never masked (RFC 6455 §5.1), so one ping frame's
# bytes serve every connection.
WS_PING_FRAME = Frame(Opcode.PING, b"").serialize(mask=False, extensions=[])
# SSE lines starting with ":" are comments: browsers ignore them, proxies see traffic.
SSE_PING = b": ping\n\n"
# The SSE event that reports lost history; publications may not use ``pushwire.*`` names.
SSE_GAP_EVENT = "pushwire.gap"


def message_json(
    channel: str, cursor: str, event: str | None, data: bytes, publisher: bytes | None = None
) -> bytes:
    """The message object every transport delivers: channel, id (cursor), event, data, from."""
    body: dict[str, object] = {"channel": channel, "id": cursor}
    if event is not None:
        body["event"] = event
    body["data"] = orjson.Fragment(data)
    if publisher is not None:
        body["from"] = orjson.Fragment(publisher)
    return orjson.dumps(body)


def publisher_json(user: str, info: object) -> bytes:
    """A client publisher's verified identity, as the message object's ``from``."""
    return orjson.dumps({"user": user, "info": info})


def ws_text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented text frame carrying ``payload`` (UTF-8 JSON).

    The header alone is written here (RFC 6455 §5.2: FIN and opcode, then a 7-,
    16- or 64-bit length); every new connection gets one of these as its first
    reply, and ``Frame.serialize``, which handles masking, extensions and every
    opcode, costs five times as much. Tests check it byte for byte against it.
    """
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return b"\x81\x7e" + length.to_bytes(2, "big") + payload
    return b"\x81\x7f" + length.to_bytes(8, "big") + payload


def ws_message_frame(message: bytes) -> bytes:
    """The ``/ws`` frame for a message object: the same object with ``"type":"message"``."""
    return ws_text_frame(b'{"type":"message",' + message[1:])


def sse_event(message: bytes, event: str | None, stream_cursor: str) -> bytes:
    """One SSE event. orjson never emits raw newlines, so ``data`` is a single line."""
    if event is None:
        return b"id: %s\ndata: %s\n\n" % (stream_cursor.encode(), message)
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (stream_cursor.encode(), event.encode(), message)


def presence_json(kind: str, channel: str, user: str, info: object) -> bytes:
    """A join or leave object: ``{"type": "join", "channel", "user", "info"}``."""
    return orjson.dumps({"type": kind, "channel": channel, "user": user, "info": info})


def member_json(user: str, info: object, connections: int) -> bytes:
    """One presence member: ``{"user", "info", "connections"}``."""
    return orjson.dumps({"user": user, "info": info, "connections": connections})


def sse_presence_event(kind: str, channel: str, user: str, info: object, cursor: str) -> bytes:
    """The ``pushwire.join`` / ``pushwire.leave`` event (``kind``: join or leave)."""
    data = orjson.dumps({"channel": channel, "user": user, "info": info})
    return b"id: %s\nevent: pushwire.%s\ndata: %s\n\n" % (cursor.encode(), kind.encode(), data)


def ws_gap_frame(channel: str, cursor: str) -> bytes:
    """The ``/ws`` frame saying that messages on ``channel`` up to ``cursor`` were lost."""
    return ws_text_frame(orjson.dumps({"type": "gap", "channel": channel, "cursor": cursor}))


def sse_gap_event(channel: str, cursor: str, stream_cursor: str) -> bytes:
    """The ``pushwire.gap`` event: ``channel`` lost history and continues after ``cursor``."""
    data = orjson.dumps({"channel": channel, "cursor": cursor, "recovered": False})
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        stream_cursor.encode(),
        SSE_GAP_EVENT.encode(),
        data,
    )


def sse_retry(milliseconds: int) -> bytes:
    """The ``retry:`` line that tells EventSource how long to wait before reconnecting."""
    return b"retry: %d\n\n" % milliseconds


def reply(kind: str, ref: str | int | None, **fields: object) -> bytes:
    """A reply object; ``ref`` echoes the request's correlation id when it had one."""
    body: dict[str, object] = {"type": kind}
    if ref is not None:
        body["ref"] = ref
    body.update(fields)
    return orjson.dumps(body)
