"""pushwire: a real-time push server and library.

Publish to named channels; subscribers receive over WebSocket, SSE or polling
and recover what they missed after a reconnect. Run ``pushwire serve``, or embed
a :class:`Server` (or just a :class:`Node`) in your own asyncio program.

Every name here is loaded on first use: ``from pushwire import Client`` loads
the client (httpx, websockets' client) and none of the server (httptools,
uvloop), and ``from pushwire import Server`` none of the client.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from pushwire.errors import ClientError, PushwireError, ServerError, UsageError

# Each public name, and the module it lives in.
_LAZY_NAMES = {
    "ChannelRule": "pushwire.core.channels",
    "Publication": "pushwire.core.history",
    "StreamPosition": "pushwire.core.history",
    "Node": "pushwire.core.node",
    "Server": "pushwire.server.app",
    "Config": "pushwire.server.config",
    "load_config": "pushwire.server.config",
    "ApiClient": "pushwire.client",
    "AsyncApiClient": "pushwire.client",
    "Backoff": "pushwire.client",
    "Client": "pushwire.client",
    "ClientOptions": "pushwire.client",
    "Gap": "pushwire.client",
    "Message": "pushwire.client",
    "PublishResult": "pushwire.client",
    "Subscription": "pushwire.client",
}

__all__ = ["ClientError", "PushwireError", "ServerError", "UsageError", *_LAZY_NAMES]
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
    from pushwire.core.channels import ChannelRule as ChannelRule
    from pushwire.core.history import Publication as Publication, StreamPosition as StreamPosition
    from pushwire.core.node import Node as Node
    from pushwire.server.app import Server as Server
    from pushwire.server.config import Config as Config, load_config as load_config


def __getattr__(name: str) -> object:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'pushwire' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value
