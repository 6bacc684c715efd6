"""Client options and the addresses derived from the server URL."""

from __future__ import annotations

import pytest

from pushwire.client import ClientOptions
from pushwire.client.options import http_base_url, websocket_url
from pushwire.errors import UsageError


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("ws://127.0.0.1:8000/ws", "http://127.0.0.1:8000"),
        ("wss://push.example.com/ws", "https://push.example.com"),
        ("https://example.com/pushwire/sse?channel=x", "https://example.com/pushwire"),
    ],
)
def test_any_server_address_gives_the_http_root(given: str, base: str) -> None:
    assert http_base_url(given) == base


def test_the_websocket_address_follows_the_http_scheme() -> None:
    assert websocket_url("http://h:1") == "ws://h:1/ws"
    assert websocket_url("https://h/prefix") == "wss://h/prefix/ws"


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://example.com", "http://"])
def test_an_address_that_is_not_a_server_is_refused(url: str) -> None:
    with pytest.raises(UsageError):
        http_base_url(url)


def test_unknown_transports_are_refused() -> None:
    with pytest.raises(UsageError):
        ClientOptions(transports=("carrier-pigeon",))
    with pytest.raises(UsageError):
        ClientOptions(transports=())


def test_negative_durations_are_refused() -> None:
    with pytest.raises(UsageError):
        ClientOptions(pong_timeout_seconds=-1)
