"""How an exception is written on each wire: HTTP, ``/ws`` error frames, close frames.

The one place that turns errors into bytes. Errors pushwire raises on purpose
(:class:`~pushwire.errors.ClientError`, :class:`~pushwire.errors.ServerError`)
carry their own code and status; anything else is our bug: it is logged here,
with the context the caller gives, and the peer sees only ``internal``.
"""

from __future__ import annotations

import logging

import orjson

from pushwire.errors import ClientError, PushwireError, ServerError
from pushwire.protocol.messages import Ref

__all__ = ["error_body", "error_code", "error_reply", "http_error", "ws_error"]

logger = logging.getLogger("pushwire")

_INTERNAL_MESSAGE = "internal server error"


def error_body(code: str, message: str) -> bytes:
    """The JSON body of every HTTP error: ``{"error": code, "message": ...}``."""
    return orjson.dumps({"error": code, "message": message})


def error_reply(code: str, message: str, ref: Ref = None) -> bytes:
    """A ``/ws`` error object: ``{"type": "error", "code": ..., "message": ...}``."""
    if ref is None:
        return orjson.dumps({"type": "error", "code": code, "message": message})
    return orjson.dumps({"type": "error", "ref": ref, "code": code, "message": message})


def error_code(exc: BaseException) -> str:
    """The wire code a peer is shown for ``exc`` (``internal`` for anything unexpected)."""
    if isinstance(exc, ClientError | ServerError):
        return exc.code
    return ServerError.code


def http_error(exc: BaseException, *, context: str) -> tuple[int, bytes]:
    """The HTTP status and JSON body for ``exc``; an unexpected one is logged first."""
    if isinstance(exc, ClientError | ServerError):
        return exc.http_status, error_body(exc.code, str(exc))
    _log_unexpected(exc, context)
    return ServerError.http_status, error_body(ServerError.code, _INTERNAL_MESSAGE)


def ws_error(exc: BaseException, ref: Ref, *, context: str) -> bytes:
    """The ``/ws`` error frame payload for ``exc`` (echoing ``ref``)."""
    if isinstance(exc, ClientError | ServerError):
        return error_reply(exc.code, str(exc), ref)
    _log_unexpected(exc, context)
    return error_reply(ServerError.code, _INTERNAL_MESSAGE, ref)


def _log_unexpected(exc: BaseException, context: str) -> None:
    if isinstance(exc, PushwireError):  # a UsageError reaching a peer is still our bug
        logger.error("%s failed: %s", context, exc, exc_info=exc)
    else:
        logger.error("%s failed", context, exc_info=exc)
