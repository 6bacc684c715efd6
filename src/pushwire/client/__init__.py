"""The Python client for pushwire servers.

:class:`Client` subscribes and publishes over WebSocket (SSE as the fallback),
with a connection token if given, and recovers missed messages after every
reconnect; :class:`ApiClient` and :class:`AsyncApiClient` call the backend API
with the API key. See docs/client-python.md.
"""

from pushwire.client.api import ApiClient, AsyncApiClient
from pushwire.client.backoff import Backoff
from pushwire.client.client import Client
from pushwire.client.errors import (
    ConnectionLostError,
    DisconnectedError,
    RequestTimeoutError,
    UnreachableError,
)
from pushwire.client.messages import (
    ChannelInfo,
    Gap,
    History,
    Join,
    Leave,
    Member,
    Message,
    Publisher,
    PublishResult,
)
from pushwire.client.options import ClientOptions
from pushwire.client.subscription import Subscription

__all__ = [
    "ApiClient",
    "AsyncApiClient",
    "Backoff",
    "ChannelInfo",
    "Client",
    "ClientOptions",
    "ConnectionLostError",
    "DisconnectedError",
    "Gap",
    "History",
    "Join",
    "Leave",
    "Member",
    "Message",
    "PublishResult",
    "Publisher",
    "RequestTimeoutError",
    "Subscription",
    "UnreachableError",
]
