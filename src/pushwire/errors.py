"""The PushwireError hierarchy and the wire codes that clients see.

Every error a client can receive is named here, once: the string ``code`` that
appears in WebSocket error frames and HTTP error bodies, and the reasons
(:class:`Disconnect`) for which pushwire ends a connection. ``docs/protocol.md``
lists the same tables for readers. How an error is written on each wire is
decided in one place, :mod:`pushwire.protocol.error_mapping`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CLOSE_MESSAGE_TOO_BIG",
    "DISCONNECTED",
    "GOING_AWAY",
    "INTERNAL_ERROR",
    "PING_TIMEOUT",
    "RATE_LIMITED",
    "SLOW_CONSUMER",
    "TOKEN_EXPIRED",
    "UNSUBSCRIBED",
    "AlreadySubscribedError",
    "BadRequestError",
    "BridgeUnavailableError",
    "BrokerUnavailableError",
    "ClientError",
    "Disconnect",
    "HeadersTooLargeError",
    "InvalidChannelError",
    "InvalidCursorError",
    "InvalidJSONError",
    "InvalidTokenError",
    "LimitExceededError",
    "MessageTooLargeError",
    "NotFoundError",
    "OriginNotAllowedError",
    "PermissionDeniedError",
    "PushwireError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ServerBusyError",
    "ServerError",
    "TokenExpiredError",
    "TooManyConnectionsError",
    "UnauthorizedError",
    "UnknownTypeError",
    "UpgradeRequiredError",
    "UrlTooLongError",
    "UsageError",
    "invalid_utf8",
    "token_refused",
]


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Why the server ends a connection, and whether the client should come back.

    ``code`` and ``reason`` are the WebSocket close frame's; transports without
    close frames (SSE, polling) end the response instead.
    """

    code: int
    reason: str
    reconnect: bool


# RFC 6455 §7.4.1 codes, and our own in the 4000-4999 private-use range (§7.4.2).
GOING_AWAY = Disconnect(1001, "server shutting down", reconnect=True)  # to another node
INTERNAL_ERROR = Disconnect(1011, "internal error", reconnect=True)
PING_TIMEOUT = Disconnect(4001, "ping timeout", reconnect=True)  # the network is probably gone
# Outgoing buffer full: reconnect and recover from history.
SLOW_CONSUMER = Disconnect(4008, "slow consumer: outgoing buffer full", reconnect=True)
# Disconnected through the API (``POST /api/disconnect``): do not reconnect by yourself.
DISCONNECTED = Disconnect(4000, "disconnected by server", reconnect=False)
# A stream that carried a channel the server took away (``POST /api/unsubscribe``).
UNSUBSCRIBED = Disconnect(4004, "unsubscribed by server", reconnect=True)
# The token expired and no new one came in time (or the new one was refused).
TOKEN_EXPIRED = Disconnect(4401, "token expired", reconnect=True)
# Publishing far over the rate limit, again and again.
RATE_LIMITED = Disconnect(4429, "rate limit exceeded", reconnect=True)
# Sent by the websockets library itself for a message over ``max_message_bytes``.
CLOSE_MESSAGE_TOO_BIG = 1009


def token_refused(detail: str) -> Disconnect:
    """A refresh token that was refused: get a valid one before reconnecting."""
    return Disconnect(4401, f"token refused: {detail}"[:120], reconnect=True)


def invalid_utf8(detail: str) -> Disconnect:
    """A text frame that is not UTF-8 (RFC 6455 §8.1): fix the client before retrying."""
    return Disconnect(1007, f"invalid UTF-8: {detail}", reconnect=False)


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
    """A request is missing a field or has one of the wrong type, or is malformed HTTP."""


class UrlTooLongError(BadRequestError):
    """A request URL over the head-size limit."""

    http_status = 414


class RequestTimeoutError(ClientError):
    """A request that did not arrive whole in time (a slow or stalled client)."""

    code = "request_timeout"
    http_status = 408


class HeadersTooLargeError(BadRequestError):
    """Request headers over the head-size limit."""

    http_status = 431


class UpgradeRequiredError(BadRequestError):
    """A plain HTTP request to an endpoint that speaks only WebSocket."""

    http_status = 426


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


class TooManyConnectionsError(LimitExceededError):
    """The user already has ``max_connections_per_user`` connections open."""

    http_status = 429


class RateLimitedError(ClientError):
    """More publishes than ``max_publishes_per_second`` allows: slow down."""

    code = "rate_limited"
    http_status = 429


class AlreadySubscribedError(ClientError):
    """The connection is already subscribed to this channel."""

    code = "already_subscribed"


class UnauthorizedError(ClientError):
    """A missing or wrong API key."""

    code = "unauthorized"
    http_status = 401


class InvalidTokenError(UnauthorizedError):
    """A connection token that pushwire refuses: bad signature, algorithm, claims or form.

    The message says what is wrong and never repeats the token. The client should
    get a new token from its backend rather than retry the same one.
    """

    code = "invalid_token"


class TokenExpiredError(InvalidTokenError):
    """A connection token past its ``exp``: the client should fetch a fresh one."""

    code = "token_expired"


class PermissionDeniedError(ClientError):
    """The channel's rules forbid this action to this client."""

    code = "permission_denied"
    http_status = 403


class OriginNotAllowedError(PermissionDeniedError):
    """A browser page on an origin not in ``allowed_origins`` (and not this server's)."""

    code = "origin_not_allowed"


class NotFoundError(ClientError):
    """No such endpoint."""

    code = "not_found"
    http_status = 404


class ServerError(PushwireError):
    """Our side failed; the client may retry later."""

    code = "internal"
    http_status = 500


class ServerBusyError(ServerError):
    """The server is at its connection cap: try again later, or another node."""

    code = "server_busy"
    http_status = 503


class BrokerUnavailableError(ServerError):
    """The node cannot reach its broker (Redis, NATS) just now: publish again shortly.

    Subscribers stay connected meanwhile and get what they missed once it is back.
    """

    code = "broker_unavailable"
    http_status = 503


class BridgeUnavailableError(ServerError):
    """A channel bridged to another system (MQTT) whose link is down or did not confirm.

    Raised before publishing when the link is known to be down, so nothing is
    published; raised after, when the other side did not confirm in time, so the
    publication is in pushwire's history but may be missing there: retry shortly.
    """

    code = "bridge_unavailable"
    http_status = 503


class UsageError(PushwireError):
    """Application code called pushwire wrongly (bad configuration, wrong state)."""
