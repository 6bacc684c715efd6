"""The door: how many connections may be open at once, in all and per client address.

A connection over a cap is answered with 503 and closed at once, so that the server
keeps files for the connections it has (and for its own: history, logs) and never
fails on ``accept``.
"""

from __future__ import annotations

from pushwire.errors import ServerBusyError
from pushwire.server.http import HttpConnection

__all__ = ["Door", "open_files_limit", "peer_ip"]


def peer_ip(connection: HttpConnection) -> str | None:
    """The client's IP address, if the transport knows it."""
    transport = connection.transport
    peer = None if transport is None else transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def open_files_limit() -> int:
    """This process's open-files limit (the soft one, which the command line raises)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 10_000
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1_000_000


class Door:
    """The connection caps: at most so many at once, and (if set) per client address."""

    __slots__ = ("_per_ip", "max_connections", "max_per_ip")

    def __init__(self, *, max_connections: int, max_per_ip: int) -> None:
        self.max_connections = max(max_connections, 1)
        self.max_per_ip = max_per_ip
        self._per_ip: dict[str, int] = {}

    def admit(self, open_now: int, ip: str | None) -> ServerBusyError | None:
        """Why a new connection must be refused, or None to let it in."""
        # Not logged here: the server logs refusals, at most so many a second.
        if open_now >= self.max_connections:
            return ServerBusyError(f"the server is at its {self.max_connections} connections")
        if self.max_per_ip and ip is not None and self._per_ip.get(ip, 0) >= self.max_per_ip:
            return ServerBusyError(f"at most {self.max_per_ip} connections per address")
        return None

    def opened(self, ip: str | None) -> None:
        if self.max_per_ip and ip is not None:
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1

    def closed(self, ip: str | None) -> None:
        if self.max_per_ip and ip is not None:
            left = self._per_ip.get(ip, 0) - 1
            if left > 0:
                self._per_ip[ip] = left
            else:
                self._per_ip.pop(ip, None)
