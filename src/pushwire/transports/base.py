"""What every transport shares: the limits a connection lives within.

Transports are thin: they translate between bytes on one connection and calls
on the node. Who receives what is decided in ``core``, never here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConnectionLimits"]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Bounds on one client connection.

    Attributes:
        max_message_bytes: largest message a client may send (WebSocket message, body).
        max_buffer_bytes: most unsent bytes the server queues for a client before
            it cuts the client off as a slow consumer.
        max_channels: most channels one connection may subscribe to.
        close_timeout_seconds: how long to wait for the peer's close frame.
        cors_origins: origins allowed to read SSE and polling responses ("*" any).
    """

    max_message_bytes: int = 64 * 1024
    max_buffer_bytes: int = 1024 * 1024
    max_channels: int = 256
    close_timeout_seconds: float = 5.0
    cors_origins: tuple[str, ...] = ("*",)
