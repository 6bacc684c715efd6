"""The PushwireError hierarchy and the wire codes that clients see.

Every error a client can receive is named here, once: the string ``code`` that
appears in WebSocket error frames and HTTP error bodies, and the WebSocket close
codes pushwire uses. ``docs/protocol.md`` lists the same table for readers.
"""

from __future__ import annotations

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_PING_TIMEOUT",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_SLOW_CONSUMER",
    "AlreadySubscribedError",
    "BadRequestError",
    "ClientError",
    "InvalidChannelError",
    "InvalidCursorError",
    "InvalidJSONError",
    "LimitExceededError",
    "MessageTooLargeError",
    "NotFoundError",
    "PermissionDeniedError",
    "PushwireError",
    "ServerError",
    "UnauthorizedError",
    "UnknownTypeError",
    "UsageError",
]

# RFC 6455 §7.4.1 codes, and our own in the 4000-4999 private-use range.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # server shutting down: reconnect (to another node)
CLOSE_POLICY_VIOLATION = 1008  # the client broke a rule: fix the client before retrying
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_PING_TIMEOUT = 4001  # no pong in time: the network is probably gone; reconnect
CLOSE_SLOW_CONSUMER = 4008  # outgoing buffer full: reconnect and recover from history


class PushwireError(Exception):
    """Base of every error pushwire raises on purpose."""


class ClientError(PushwireError):
    """The peer sent something wrong or is not allowed to do it.

    The peer gets ``code`` and the message; the connection stays open unless the
    transport cannot carry on (for example a WebSocket frame over the size limit).
    """

    code = "bad_request"
    http_status = 400
    #: The correlation id of the request that failed, echoed in the error reply.
    ref: str | int | None = None


class BadRequestError(ClientError):
    """A request is missing a field or has one of the wrong type."""


class InvalidJSONError(ClientError):
    """A body or frame is not valid JSON."""

    code = "invalid_json"


class UnknownTypeError(ClientError):
    """A WebSocket frame names a ``type`` the protocol does not have."""

    code = "unknown_type"


class InvalidChannelError(ClientError):
    """A channel name is empty, too long, or uses characters outside the allowed set."""

    code = "invalid_channel"


class InvalidCursorError(ClientError):
    """A cursor is not one pushwire issued (malformed, or for other channels)."""

    code = "invalid_cursor"


class MessageTooLargeError(ClientError):
    """A message or body is over the configured maximum size."""

    code = "message_too_large"
    http_status = 413


class LimitExceededError(ClientError):
    """A per-connection limit (such as the number of channels) would be exceeded."""

    code = "limit_exceeded"


class AlreadySubscribedError(ClientError):
    """The connection is already subscribed to this channel."""

    code = "already_subscribed"


class UnauthorizedError(ClientError):
    """A missing or wrong API key."""

    code = "unauthorized"
    http_status = 401


class PermissionDeniedError(ClientError):
    """The channel's rules forbid this action to this client."""

    code = "permission_denied"
    http_status = 403


class NotFoundError(ClientError):
    """No such endpoint."""

    code = "not_found"
    http_status = 404


class ServerError(PushwireError):
    """Our side failed; the client may retry later."""

    code = "internal"
    http_status = 500


class UsageError(PushwireError):
    """Application code called pushwire wrongly (bad configuration, wrong state)."""
