"""The real Redis and NATS the broker tests use, and what a test does when one is missing.

Locally a missing service skips its tests; in CI (``PUSHWIRE_REQUIRE_SERVICES=1``, set
by ``.ci/run``, which starts the services) it fails them.
"""

from __future__ import annotations

import os
import secrets
import socket

import pytest

__all__ = ["NATS_URL", "REDIS_URL", "require_service", "test_prefix"]

#: Database 9: the tests never touch what another program keeps in database 0.
REDIS_URL = os.environ.get("PUSHWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
NATS_URL = os.environ.get("PUSHWIRE_TEST_NATS_URL", "nats://127.0.0.1:4222")


def require_service(name: str, port: int, host: str = "127.0.0.1") -> None:
    """Skip (or, in CI, fail) the test unless something listens on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError:
        pass
    message = f"{name} is not running on {host}:{port}"
    if os.environ.get("PUSHWIRE_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (.ci/run starts it)")
    pytest.skip(message)


def test_prefix() -> str:
    """A key prefix (or stream name part) no other test or run uses."""
    return f"pwtest_{secrets.token_hex(5)}"


test_prefix.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


async def forget_redis_prefix(prefix: str, url: str = REDIS_URL) -> None:
    """Delete every key a test left under ``prefix`` in Redis."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
