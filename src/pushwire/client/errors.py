"""Errors the Python client adds, and how server error codes become exceptions.

The server's codes map onto the classes in :mod:`pushwire.errors`, so a caller
catches ``UnauthorizedError`` whether the server or the client raised it. What only
a client can run into (no server to talk to, an answer that never came) lives here.
"""

from __future__ import annotations

import orjson

from pushwire.errors import (
    AlreadySubscribedError,
    BadRequestError,
    ClientError,
    InvalidChannelError,
    InvalidCursorError,
    InvalidJSONError,
    InvalidTokenError,
    LimitExceededError,
    MessageTooLargeError,
    NotFoundError,
    OriginNotAllowedError,
    PermissionDeniedError,
    PushwireError,
    RateLimitedError,
    ServerError,
    TokenExpiredError,
    UnauthorizedError,
    UnknownTypeError,
)

__all__ = [
    "TOKEN_ERROR_CODES",
    "ConnectionLostError",
    "DisconnectedError",
    "RequestTimeoutError",
    "UnreachableError",
    "error_from_code",
    "error_from_response",
]

_BY_CODE: dict[str, type[ClientError] | type[ServerError]] = {
    cls.code: cls
    for cls in (
        BadRequestError,
        InvalidJSONError,
        UnknownTypeError,
        InvalidChannelError,
        InvalidCursorError,
        LimitExceededError,
        AlreadySubscribedError,
        MessageTooLargeError,
        RateLimitedError,
        UnauthorizedError,
        InvalidTokenError,
        TokenExpiredError,
        PermissionDeniedError,
        OriginNotAllowedError,
        NotFoundError,
        ServerError,
    )
}
#: The codes of an HTTP 401 that refuses the connection's token (or its lack of one).
TOKEN_ERROR_CODES = frozenset({"invalid_token", "token_expired", "unauthorized"})
# What a status means when the body is not a pushwire error (a proxy answered, say).
_BY_STATUS: dict[int, type[ClientError]] = {
    401: UnauthorizedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: MessageTooLargeError,
}


class UnreachableError(PushwireError):
    """The server could not be reached; nothing was sent, so retrying is safe."""


class ConnectionLostError(PushwireError):
    """The connection dropped before the answer arrived.

    The request may or may not have taken effect: a publish might have happened.
    Check (for example with ``history``) before retrying if duplicates matter.
    """


class DisconnectedError(PushwireError):
    """The server ended the connection, and the client does not come back by itself.

    Either the server said not to (close code 4000, ``POST /api/disconnect``, or an
    SSE ``pushwire.disconnect`` event with ``"reconnect": false``), or the token
    expired (4401) and the client has no ``get_token`` to fetch a new one.

    Attributes:
        code: the WebSocket close code (or the SSE event's ``code``), such as 4000.
        reason: the server's reason, such as ``"disconnected by server"``.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} ({code})" if reason else f"closed by the server ({code})")
        self.code = code
        self.reason = reason


class RequestTimeoutError(PushwireError, TimeoutError):
    """No answer within the configured time; like :class:`ConnectionLostError`,
    the request may or may not have taken effect."""


def error_from_code(
    code: str, message: str, http_status: int | None = None
) -> ClientError | ServerError:
    """The exception for an error the server reported with wire ``code``.

    Unknown codes (a newer server) still carry their ``code``: they become a
    plain ``ClientError``, or ``ServerError`` for HTTP 5xx.
    """
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = ServerError if http_status is not None and http_status >= 500 else ClientError
    error = cls(f"{code}: {message}")
    error.code = code
    if http_status is not None:
        error.http_status = http_status
    return error


def error_from_response(status: int, body: bytes) -> ClientError | ServerError:
    """The exception for an HTTP error answer, pushwire's JSON body or not."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return error_from_code(value["error"], str(value.get("message", "")), status)
    text = body[:200].decode("utf-8", "replace").strip() or "no body"
    if status >= 500:
        error: ClientError | ServerError = ServerError(f"HTTP {status}: {text}")
    else:
        error = _BY_STATUS.get(status, ClientError)(f"HTTP {status}: {text}")
    error.http_status = status
    return error
