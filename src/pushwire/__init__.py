"""pushwire: a real-time push server and library.

Publish to named channels; subscribers receive over WebSocket, SSE or polling
and recover what they missed after a reconnect. Run ``pushwire serve``, or embed
a :class:`Server` (or just a :class:`Node`) in your own asyncio program.
"""

from pushwire.core.channels import ChannelRule
from pushwire.core.history import Publication, StreamPosition
from pushwire.core.node import Node
from pushwire.errors import ClientError, PushwireError, ServerError, UsageError
from pushwire.server.app import Server
from pushwire.server.config import Config, load_config

__all__ = [  # noqa: RUF022 (server first, then the lazily loaded client names)
    "ChannelRule",
    "ClientError",
    "Config",
    "Node",
    "Publication",
    "PushwireError",
    "Server",
    "ServerError",
    "StreamPosition",
    "UsageError",
    "load_config",
    "ApiClient",
    "AsyncApiClient",
    "Backoff",
    "Client",
    "ClientOptions",
    "Gap",
    "Message",
    "PublishResult",
    "Subscription",
]
__version__ = "0.1.0"

# The client pulls in httpx; load it only when asked, so ``pushwire serve`` stays lean.
_CLIENT_NAMES = frozenset(
    {
        "ApiClient",
        "AsyncApiClient",
        "Backoff",
        "Client",
        "ClientOptions",
        "Gap",
        "Message",
        "PublishResult",
        "Subscription",
    }
)


def __getattr__(name: str) -> object:
    if name in _CLIENT_NAMES:
        from pushwire import client

        return getattr(client, name)
    raise AttributeError(f"module 'pushwire' has no attribute {name!r}")
