"""Which browser origins may use the endpoints meant for browsers, and CORS for them.

WebSocket upgrades, ``/sse``, ``/poll`` and ``/publish`` are checked against one list,
``allowed_origins``. A request without an ``Origin`` header (not a browser, or a
same-origin navigation) and a same-origin request always pass; ``"*"`` allows every
origin. An allowed origin is echoed (not ``*``) with ``Vary: Origin``, so that
credentials and caches behave.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pushwire.errors import OriginNotAllowedError

__all__ = ["OriginPolicy"]

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


class OriginPolicy:
    """The origin check and the CORS headers, from ``allowed_origins``."""

    __slots__ = ("_allowed", "_any")

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self._any = "*" in allowed
        self._allowed = frozenset(origin.rstrip("/").lower() for origin in allowed)

    def is_allowed(self, origin: str | None, host: str | None) -> bool:
        if origin is None or self._any:
            return True
        return origin.lower() in self._allowed or _same_origin(origin, host)

    def check(self, origin: str | None, host: str | None) -> None:
        """Raises:
        OriginNotAllowedError: for a cross-origin request from an origin not listed.
        """
        if not self.is_allowed(origin, host):
            # The origin is the browser's page, not a secret: naming it helps whoever
            # configures the server, and tells the page nothing it does not know.
            raise OriginNotAllowedError(f"origin {(origin or '')[:100]!r} is not allowed")

    def cors_headers(self, origin: str | None, host: str | None) -> list[tuple[bytes, bytes]]:
        """Headers that let ``origin`` read the response, or none if it may not."""
        if origin is None or not self.is_allowed(origin, host):
            return []
        return [
            (b"Access-Control-Allow-Origin", origin.encode("latin-1")),
            (b"Access-Control-Allow-Credentials", b"true"),
            (b"Access-Control-Expose-Headers", b"Content-Type"),
            (b"Vary", b"Origin"),
        ]

    def preflight_headers(self, origin: str | None, host: str | None) -> list[tuple[bytes, bytes]]:
        """The answer to an ``OPTIONS`` preflight: methods and headers a client may use."""
        headers = self.cors_headers(origin, host)
        if headers:
            headers += [
                (b"Access-Control-Allow-Methods", b"GET, POST, OPTIONS"),
                (
                    b"Access-Control-Allow-Headers",
                    b"Authorization, Content-Type, Last-Event-ID, X-API-Key",
                ),
                (b"Access-Control-Max-Age", b"600"),
            ]
        return headers


def _same_origin(origin: str, host: str | None) -> bool:
    """Whether the page at ``origin`` is served by this server (the request's ``Host``)."""
    if host is None:
        return False
    try:
        parts = urlsplit(origin)
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        return False
    if not parts.hostname:
        return False
    default = _DEFAULT_PORTS.get(parts.scheme.lower(), "")
    origin_port = str(port) if port is not None else default
    host_name, _, host_port = host.lower().rpartition(":")
    if not host_name or not host_port.isdigit():  # no port in Host (or an IPv6 literal)
        host_name, host_port = host.lower(), default
    return parts.hostname == host_name.strip("[]") and origin_port == (host_port or default)
