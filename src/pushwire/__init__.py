"""pushwire: a real-time push server and library.

Publish to named channels; subscribers receive over WebSocket, SSE or polling
and recover what they missed after a reconnect. Run ``pushwire serve``, or embed
a :class:`Server` (or just a :class:`Node`) in your own asyncio program.
"""

from typing import TYPE_CHECKING

from pushwire.core.channels import ChannelRule
from pushwire.core.history import Publication, StreamPosition
from pushwire.core.node import Node
from pushwire.errors import ClientError, PushwireError, ServerError, UsageError
from pushwire.server.app import Server
from pushwire.server.config import Config, load_config

# The client pulls in httpx; load it only when asked, so ``pushwire serve`` stays lean.
_CLIENT_NAMES = (
    "ApiClient",
    "AsyncApiClient",
    "Backoff",
    "Client",
    "ClientOptions",
    "Gap",
    "Message",
    "PublishResult",
    "Subscription",
)

__all__ = [
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
    *_CLIENT_NAMES,
]
__version__ = "0.1.0"

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from pushwire.client import (
        ApiClient as ApiClient,
        AsyncApiClient as AsyncApiClient,
        Backoff as Backoff,
        Client as Client,
        ClientOptions as ClientOptions,
        Gap as Gap,
        Message as Message,
        PublishResult as PublishResult,
        Subscription as Subscription,
    )


def __getattr__(name: str) -> object:
    if name in _CLIENT_NAMES:
        from pushwire import client

        return getattr(client, name)
    raise AttributeError(f"module 'pushwire' has no attribute {name!r}")
