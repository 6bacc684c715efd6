"""Settings of :class:`pushwire.client.Client`, and the addresses derived from its URL.

One frozen dataclass, so a configuration can be built once, shared and
compared; every duration carries its unit in its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from pushwire.client.backoff import Backoff
from pushwire.errors import UsageError

__all__ = ["DEFAULT_URL", "TRANSPORTS", "ClientOptions", "http_base_url", "websocket_url"]

#: Where clients look for a server when neither an argument nor PUSHWIRE_URL says.
DEFAULT_URL = "http://127.0.0.1:8000"
#: Transports the client speaks, in its default order of preference.
TRANSPORTS = ("websocket", "sse")


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How a :class:`~pushwire.client.Client` connects, keeps alive and reconnects.

    Attributes:
        transports: tried in this order at every (re)connection; the first that
            connects is used until the connection drops. ``("sse",)`` never tries
            WebSocket.
        backoff: delays between reconnection attempts, and the attempt limit.
        ping_interval_seconds: how often to send ``{"type": "ping"}`` over
            WebSocket; 0 turns the heartbeat off.
        pong_timeout_seconds: a ping unanswered this long means the connection is
            dead (a half-open TCP connection, a frozen server): reconnect.
        connect_timeout_seconds: the longest one connection attempt may take.
        request_timeout_seconds: the longest ``publish`` waits, including waiting
            for a connection.
        sse_read_timeout_seconds: an event stream silent this long is presumed
            dead; keep it above the server's ``sse_ping_interval_seconds`` (15 s).
        close_timeout_seconds: how long a clean WebSocket close may take.
        duplicate_window: how many recent message ids each subscription remembers
            to drop a message delivered twice.
        ws_url: the WebSocket address, if not ``/ws`` on the client's URL.
    """

    transports: tuple[str, ...] = TRANSPORTS
    backoff: Backoff = field(default_factory=Backoff)
    ping_interval_seconds: float = 20.0
    pong_timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 10.0
    request_timeout_seconds: float = 10.0
    sse_read_timeout_seconds: float = 45.0
    close_timeout_seconds: float = 2.0
    duplicate_window: int = 1000
    ws_url: str | None = None

    def __post_init__(self) -> None:
        unknown = [name for name in self.transports if name not in TRANSPORTS]
        if unknown or not self.transports:
            raise UsageError(f"transports must be chosen from {TRANSPORTS}, not {self.transports}")
        for name in (
            "ping_interval_seconds",
            "pong_timeout_seconds",
            "connect_timeout_seconds",
            "request_timeout_seconds",
            "sse_read_timeout_seconds",
            "close_timeout_seconds",
        ):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must not be negative")
        if self.duplicate_window < 0:
            raise UsageError("duplicate_window must not be negative")
        if self.ws_url is not None and urlsplit(self.ws_url).scheme not in ("ws", "wss"):
            raise UsageError(f"ws_url must be a ws:// or wss:// address, not {self.ws_url!r}")


def http_base_url(url: str) -> str:
    """The server's HTTP root from whatever the user gave: ``ws://h:p/ws`` -> ``http://h:p``.

    Raises:
        UsageError: if ``url`` is not an http(s) or ws(s) address.
    """
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"not a server address: {url!r} (expected http://HOST:PORT)")
    path = parts.path.rstrip("/")
    # Accept the address of an endpoint too, such as the /ws a browser client uses.
    for endpoint in ("/ws", "/sse"):
        if path.endswith(endpoint):
            path = path[: -len(endpoint)]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def websocket_url(base_url: str) -> str:
    """``/ws`` under an HTTP root from :func:`http_base_url`."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/ws", "", ""))
