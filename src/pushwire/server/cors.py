"""Cross-origin rules for browser requests to SSE, polling and client publishing.

Origins are matched exactly; ``"*"`` allows any. The allowed origin is echoed
(not ``*``) so that credentials and caches behave, with ``Vary: Origin``.
"""

from __future__ import annotations

__all__ = ["cors_headers", "preflight_headers"]


def cors_headers(origin: str | None, allowed: tuple[str, ...]) -> list[tuple[bytes, bytes]]:
    """Headers that let ``origin`` read the response, or none if it is not allowed."""
    if origin is None or not ("*" in allowed or origin in allowed):
        return []
    return [
        (b"Access-Control-Allow-Origin", origin.encode("latin-1")),
        (b"Access-Control-Allow-Credentials", b"true"),
        (b"Access-Control-Expose-Headers", b"Content-Type"),
        (b"Vary", b"Origin"),
    ]


def preflight_headers(origin: str | None, allowed: tuple[str, ...]) -> list[tuple[bytes, bytes]]:
    """The answer to an ``OPTIONS`` preflight: methods and headers a client may use."""
    headers = cors_headers(origin, allowed)
    if headers:
        headers += [
            (b"Access-Control-Allow-Methods", b"GET, POST, OPTIONS"),
            (b"Access-Control-Allow-Headers", b"Content-Type, Last-Event-ID, X-API-Key"),
            (b"Access-Control-Max-Age", b"600"),
        ]
    return headers
