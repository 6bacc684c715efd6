"""The admin page: its static files (``/admin``) and ``GET /api/info``, what it shows.

The page (``static/admin/``) is public and holds no data: everything it shows comes
from the backend API with the API key the person types in, ``/api/info`` included.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import PurePosixPath

from pushwire.core.counters import NodeStatistics
from pushwire.core.node import Node
from pushwire.errors import ServerError
from pushwire.server.auth import ApiKey
from pushwire.server.http import Request

__all__ = ["AdminApi", "admin_file"]

logger = logging.getLogger("pushwire.server")

_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
}


def admin_file(path: str) -> tuple[bytes, bytes] | None:
    """The file for request path ``/admin`` or ``/admin/NAME`` and its type, if there is one."""
    if path == "/admin":
        name = "index.html"
    elif path.startswith("/admin/"):
        name = path[len("/admin/") :]
    else:
        return None  # /administrator and the like
    content_type = _TYPES.get(PurePosixPath(name).suffix)
    # One flat folder: no subfolders, no dot files, so no way out of it.
    if content_type is None or "/" in name or "\\" in name or name.startswith("."):
        return None
    try:
        return (resources.files("pushwire") / "static" / "admin" / name).read_bytes(), content_type
    except OSError:
        return None


class AdminApi:
    """``GET /api/info``: every node's identity, uptime and totals (API key)."""

    __slots__ = ("_api_key", "_node")

    def __init__(self, node: Node, api_key: ApiKey) -> None:
        self._node = node
        self._api_key = api_key

    async def api_info(self, request: Request) -> tuple[int, object]:
        """The nodes of the cluster (this one alone while the broker is out of reach).

        With several nodes, each answers for itself through the broker's survey, as
        ``/api/channels`` does; ``partial`` says when only this node could answer.
        """
        self._api_key.check(request.headers.get("x-api-key"))
        node = self._node
        partial = False
        try:
            nodes = await node.cluster_statistics()
        except ServerError as exc:
            logger.info("/api/info answers for this node only: %s", exc)
            nodes, partial = [node.statistics()], True
        return 200, {
            "node": node.id,
            "partial": partial,
            "broker": {"name": node.broker.name, "connected": node.broker.connected},
            "totals": _totals(nodes),
            "nodes": [_node_json(statistics) for statistics in nodes],
        }


def _node_json(statistics: NodeStatistics) -> dict[str, object]:
    return {
        "node": statistics.node,
        **statistics.about,
        "started_at": statistics.started_at,
        "uptime_seconds": round(statistics.uptime_seconds, 3),
        "broker": {"name": statistics.broker, "connected": statistics.broker_connected},
        "channels": statistics.channels,
        "subscriptions": statistics.subscriptions,
        "connections": statistics.connections,
        "publications": statistics.publications,
        "deliveries": statistics.deliveries,
    }


def _totals(nodes: list[NodeStatistics]) -> dict[str, object]:
    """Sums over the nodes: connections by transport, publications, deliveries."""
    connections: dict[str, int] = {}
    for statistics in nodes:
        for transport, count in statistics.connections.items():
            connections[transport] = connections.get(transport, 0) + count
    return {
        "nodes": len(nodes),
        "connections": connections,
        "subscriptions": sum(s.subscriptions for s in nodes),
        "publications": sum(sum(s.publications.values()) for s in nodes),
        "deliveries": sum(sum(s.deliveries.values()) for s in nodes),
    }
