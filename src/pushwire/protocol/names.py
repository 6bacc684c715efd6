"""Names on the wire: channel names and event names, and what makes them valid.

Checked where input enters (frames, query strings, API bodies), so the core
only ever sees names that are safe in URLs, logs, SSE lines and JSON.
"""

from __future__ import annotations

import re

from pushwire.errors import BadRequestError, InvalidChannelError

__all__ = ["MAX_CHANNEL_LENGTH", "MAX_EVENT_LENGTH", "validate_channel", "validate_event"]

MAX_CHANNEL_LENGTH = 255
MAX_EVENT_LENGTH = 64
# Events pushwire itself sends on SSE (``pushwire.gap``): a publication must not fake one.
RESERVED_EVENT_PREFIX = "pushwire."
# Namespaces use ":" ("chat:lobby"); user and DM channels are "user:42" and "dm:42,43"; no spaces,
# quotes or control characters, so a name is safe in URLs, logs and JSON alike.
_CHANNEL = re.compile(rf"[A-Za-z0-9_.:@/#,=+\-]{{1,{MAX_CHANNEL_LENGTH}}}")


def validate_channel(name: object) -> str:
    """Return ``name`` if it is a valid channel name.

    Raises:
        InvalidChannelError: naming what is wrong with it.
    """
    if not isinstance(name, str):
        raise InvalidChannelError("channel must be a string")
    if _CHANNEL.fullmatch(name) is None:
        if not name:
            raise InvalidChannelError("channel must not be empty")
        if len(name) > MAX_CHANNEL_LENGTH:
            raise InvalidChannelError(f"channel is longer than {MAX_CHANNEL_LENGTH} characters")
        raise InvalidChannelError(
            f"channel {name[:64]!r} has characters outside A-Z a-z 0-9 _ . : @ / # , = + -"
        )
    return name


def validate_event(event: object) -> str | None:
    """An optional event name: a short single-line string (it becomes an SSE ``event:``)."""
    if event is None:
        return None
    if not isinstance(event, str) or not event or len(event) > MAX_EVENT_LENGTH:
        raise BadRequestError(f"event must be a non-empty string of at most {MAX_EVENT_LENGTH}")
    if any(c in event for c in "\r\n\x00"):
        raise BadRequestError("event must not contain line breaks or NUL")
    if event.startswith(RESERVED_EVENT_PREFIX):
        raise BadRequestError(f"event names starting with {RESERVED_EVENT_PREFIX!r} are reserved")
    return event
