"""Commands a client sends over ``/ws``, parsed and validated.

Sans-I/O: text in, frozen dataclasses out. Replies are built by :mod:`.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from pushwire.errors import BadRequestError, ClientError, InvalidJSONError, UnknownTypeError
from pushwire.protocol.names import validate_channel, validate_event

__all__ = [
    "Command",
    "Ping",
    "PresenceQuery",
    "Publish",
    "Ref",
    "Refresh",
    "Subscribe",
    "Unsubscribe",
    "parse_command",
]

Ref = str | int | None


@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: str
    cursor: str | None  # parsed by the core, which knows the stream
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Publish:
    channel: str
    data: bytes  # the payload re-encoded as compact JSON
    event: str | None
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Ping:
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Refresh:
    """A new connection token, before or after the server asked for one."""

    token: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class PresenceQuery:
    """Who is subscribed to ``channel`` (for subscribers of that channel)."""

    channel: str
    ref: Ref = None


Command = Subscribe | Unsubscribe | Publish | Ping | Refresh | PresenceQuery


def parse_command(text: str | bytes) -> Command:
    """Parse one client frame into a command.

    Raises:
        ClientError: with ``ref`` set (when the frame had a usable one) so the
            error reply can be correlated with the request.
    """
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSONError(f"frame is not valid JSON: {exc.msg}") from None
    if not isinstance(frame, dict):
        raise BadRequestError("frame must be a JSON object")
    ref = frame.get("ref")
    if ref is not None and (not isinstance(ref, str | int) or isinstance(ref, bool)):
        raise BadRequestError("ref must be a string or an integer")
    try:
        return _build(frame, ref)
    except ClientError as exc:
        exc.ref = ref
        raise


def _build(frame: dict[str, object], ref: Ref) -> Command:
    kind = frame.get("type")
    if kind == "ping":
        return Ping(ref)
    if kind == "subscribe":
        channel = validate_channel(frame.get("channel"))
        cursor = frame.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise BadRequestError("cursor must be a string")
        return Subscribe(channel, cursor, ref)
    if kind == "presence":
        return PresenceQuery(validate_channel(frame.get("channel")), ref)
    if kind == "refresh":
        token = frame.get("token")
        if not isinstance(token, str) or not token:
            raise BadRequestError("refresh needs a token string")
        return Refresh(token, ref)
    if kind == "unsubscribe":
        return Unsubscribe(validate_channel(frame.get("channel")), ref)
    if kind == "publish":
        channel = validate_channel(frame.get("channel"))
        if "data" not in frame:
            raise BadRequestError("publish needs a data field")
        return Publish(
            channel, orjson.dumps(frame["data"]), validate_event(frame.get("event")), ref
        )
    if not isinstance(kind, str):
        raise BadRequestError("frame needs a string type field")
    raise UnknownTypeError(f"unknown type {kind[:64]!r}")
