"""HTTP endpoints for backends (``/api/*``, API key) and for browsers (``/publish``).

Every handler returns ``(status, body)``; the router turns errors into JSON
bodies, so no handler formats an error of its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from pushwire.core.eager import start_eagerly
from pushwire.core.history import Publication, StreamPosition
from pushwire.core.node import Node
from pushwire.core.permissions import ChannelPermissions
from pushwire.errors import (
    BadRequestError,
    ClientError,
    InvalidJSONError,
    RateLimitedError,
    ServerError,
)
from pushwire.protocol.codec import message_json
from pushwire.protocol.names import validate_channel, validate_event
from pushwire.protocol.rate_limit import PublishRates
from pushwire.server.auth import ApiKey
from pushwire.server.http import Request

__all__ = ["MAX_BATCH_PUBLICATIONS", "MAX_BROADCAST_CHANNELS", "MAX_HISTORY_LIMIT", "PublishApi"]

MAX_HISTORY_LIMIT = 1000
MAX_BROADCAST_CHANNELS = 1000
MAX_BATCH_PUBLICATIONS = 1000


def _json_object(request: Request) -> dict[str, Any]:
    """A publish body: a JSON object with ``data``."""
    body = request.json_object()
    if "data" not in body:
        raise BadRequestError("body needs a data field")
    return body


def _user_of(body: dict[str, Any]) -> str:
    user = body.get("user")
    if not isinstance(user, str) or not user or len(user) > 255:
        raise BadRequestError("user must be a non-empty string (a user id)")
    return user


class PublishApi:
    """The HTTP API over one node: publishing, history, channels, health."""

    __slots__ = (
        "_api_key",
        "_client_permissions",
        "_connection_count",
        "_node",
        "_rates",
        "_statuses",
    )

    def __init__(
        self,
        node: Node,
        api_key: ApiKey,
        *,
        client_permissions: Callable[..., ChannelPermissions],
        connection_count: Callable[[], int],
        max_publishes_per_second: float = 0.0,
        statuses: Mapping[str, Callable[[], object]] | None = None,
    ) -> None:
        """
        Args:
            client_permissions: the permissions of a client request (its token),
                ``SubscriberEndpoints.permissions_of``.
            max_publishes_per_second: per user, for ``POST /publish`` (0: no limit).
            statuses: more parts of ``GET /health``, by name (the MQTT bridge's).
        """
        self._node = node
        self._api_key = api_key
        self._client_permissions = client_permissions
        self._connection_count = connection_count
        self._statuses = dict(statuses or {})
        self._rates = (
            PublishRates(max_publishes_per_second, time.monotonic)
            if max_publishes_per_second
            else None
        )

    async def api_publish(self, request: Request) -> tuple[int, object]:
        """One publication (a JSON object), or a batch of them (a JSON array of objects)."""
        self._api_key.check(request.headers.get("x-api-key"))
        if request.method == "POST" and request.body.lstrip()[:1] == b"[":
            return await self._api_publish_batch(request)
        body = _json_object(request)
        channel = validate_channel(body.get("channel"))
        event = validate_event(body.get("event"))
        publication = await self._node.publish_json(
            channel, orjson.dumps(body["data"]), event=event
        )
        return 200, {"channel": channel, "id": publication.position.cursor}

    def api_publish_soon(
        self,
        request: Request,
        answer: Callable[[int, object], None],
        refuse: Callable[[BaseException], None],
    ) -> bool:
        """``api_publish`` of one publication without a coroutine: answered by a callback.

        ``answer(status, body)`` once it is published, or ``refuse(error)``. False (and
        nothing done) for a batch, which goes through ``api_publish``. The fast path of
        a backend publishing one message per request: no task waits for the commit.

        Raises:
            ClientError: the request is refused before anything is published.
        """
        if request.method == "POST" and request.body.lstrip()[:1] == b"[":
            return False
        self._api_key.check(request.headers.get("x-api-key"))
        body = _json_object(request)
        channel = validate_channel(body.get("channel"))
        event = validate_event(body.get("event"))

        def done(publication: Publication | None, exc: BaseException | None) -> None:
            if publication is not None:
                answer(200, {"channel": channel, "id": publication.position.cursor})
            else:
                refuse(exc or ServerError("the publication failed"))

        self._node.publish_soon(channel, orjson.dumps(body["data"]), event=event, on_done=done)
        return True

    async def client_publish(self, request: Request) -> tuple[int, object]:
        """Publishing for clients without a WebSocket; the channel's rule must allow it."""
        body = _json_object(request)
        channel = validate_channel(body.get("channel"))
        event = validate_event(body.get("event"))
        permissions = self._client_permissions(request, long_lived=False)
        permissions.check_publish(channel)
        user = permissions.identity.user
        # Per user: each HTTP publish may come on a new connection. (Anonymous ones are
        # not counted here; a proxy in front can limit them by address.)
        if self._rates is not None and user is not None and not self._rates.allow(user):
            raise RateLimitedError("too many publishes: slow down")
        publication = await self._node.publish_json(
            channel,
            orjson.dumps(body["data"]),
            event=event,
            publisher=permissions.identity,
            source="client",
        )
        return 200, {"channel": channel, "id": publication.position.cursor}

    async def api_broadcast(self, request: Request) -> tuple[int, object]:
        self._api_key.check(request.headers.get("x-api-key"))
        body = _json_object(request)
        channels = body.get("channels")
        if not isinstance(channels, list) or not channels:
            raise BadRequestError("channels must be a non-empty list of channel names")
        if len(channels) > MAX_BROADCAST_CHANNELS:
            raise BadRequestError(f"at most {MAX_BROADCAST_CHANNELS} channels per broadcast")
        names = [validate_channel(channel) for channel in channels]
        event = validate_event(body.get("event"))
        data = orjson.dumps(body["data"])
        return 200, {"results": await self._publish_all([(name, data, event) for name in names])}

    async def _api_publish_batch(self, request: Request) -> tuple[int, object]:
        """``POST /api/publish`` with ``[{"channel", "data", "event"?}, ...]``.

        Every item is checked before any is published: a bad one refuses the whole
        batch (400, naming its index), so a batch is never half-published by mistake.
        """
        try:
            items = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidJSONError(f"body is not valid JSON: {exc.msg}") from None
        if not isinstance(items, list) or not items:
            raise BadRequestError("a batch is a non-empty JSON array of publications")
        if len(items) > MAX_BATCH_PUBLICATIONS:
            raise BadRequestError(f"at most {MAX_BATCH_PUBLICATIONS} publications per batch")
        batch = []
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict) or "data" not in item:
                    raise BadRequestError("must be an object with a data field")
                channel = validate_channel(item.get("channel"))
                event = validate_event(item.get("event"))
            except ClientError as exc:
                raise type(exc)(f"publication {index}: {exc}") from None
            batch.append((channel, orjson.dumps(item["data"]), event))
        return 200, {"results": await self._publish_all(batch)}

    async def _publish_all(
        self, batch: list[tuple[str, bytes, str | None]]
    ) -> list[dict[str, object]]:
        """Publish each, in order, without waiting for one before the next.

        A networked broker then sends them in one round trip; the embedded one
        finishes each at once. An item the broker refused carries its error; when
        every one was refused, that error is the answer (a plain 503 in an outage).
        """
        results: list[dict[str, object]] = [{} for _ in batch]
        failures: list[ServerError] = []

        async def publish(index: int, channel: str, data: bytes, event: str | None) -> None:
            try:
                publication = await self._node.publish_json(channel, data, event=event)
            except ServerError as exc:
                failures.append(exc)
                results[index] = {"channel": channel, "error": exc.code, "message": str(exc)}
                return
            results[index] = {"channel": channel, "id": publication.position.cursor}

        waiting = [
            task
            for index, (channel, data, event) in enumerate(batch)
            if (task := start_eagerly(publish(index, channel, data, event))) is not None
        ]
        if waiting:
            await asyncio.gather(*waiting)
        if len(failures) == len(batch):
            raise failures[0]
        return results

    async def api_history(self, request: Request) -> tuple[int, object]:
        self._api_key.check(request.headers.get("x-api-key"))
        return await self._history(request, validate_channel(request.param("channel")))

    async def client_history(self, request: Request) -> tuple[int, object]:
        """``GET /history``: a channel's history, for a client that may subscribe to it."""
        channel = validate_channel(request.param("channel"))
        self._client_permissions(request, long_lived=False).check_subscribe(channel)
        return await self._history(request, channel)

    async def _history(self, request: Request, channel: str) -> tuple[int, object]:
        raw_since = request.param("since")
        since = StreamPosition.from_cursor(raw_since) if raw_since else None
        limit = _limit_of(request)
        page = await self._node.history(channel, since=since, limit=limit)
        messages = [
            orjson.Fragment(
                message_json(p.channel, p.position.cursor, p.event, p.data, p.publisher)
            )
            for p in page.publications
        ]
        result: dict[str, object] = {
            "channel": channel,
            "messages": messages,
            "cursor": page.top.cursor,
        }
        if since is not None:
            first = (
                page.publications[0].position.offset if page.publications else page.top.offset + 1
            )
            result["gap"] = since.epoch != page.top.epoch or (
                since.offset < page.top.offset and first != since.offset + 1
            )
        return 200, result

    async def api_channels(self, request: Request) -> tuple[int, object]:
        self._api_key.check(request.headers.get("x-api-key"))
        # Every node's subscribers, summed: the same answer whichever node is asked.
        return 200, {
            "channels": [
                {"channel": channel, "subscribers": subscribers}
                for channel, subscribers in await self._node.channel_statistics()
            ]
        }

    async def api_presence(self, request: Request) -> tuple[int, object]:
        self._api_key.check(request.headers.get("x-api-key"))
        channel = validate_channel(request.param("channel"))
        members = [
            {"user": m.user, "info": m.info, "connections": m.connections}
            for m in await self._node.members(channel)
        ]
        return 200, {"channel": channel, "members": members}

    async def api_disconnect(self, request: Request) -> tuple[int, object]:
        """Close every connection of a user on every node (close 4000: do not come back)."""
        self._api_key.check(request.headers.get("x-api-key"))
        user = _user_of(request.json_object())
        return 200, {"user": user, "disconnected": await self._node.disconnect_user(user)}

    async def api_unsubscribe(self, request: Request) -> tuple[int, object]:
        """Take ``channel`` from every connection of a user (a WebSocket gets ``unsubscribed``)."""
        self._api_key.check(request.headers.get("x-api-key"))
        body = request.json_object()
        user = _user_of(body)
        channel = validate_channel(body.get("channel"))
        count = await self._node.unsubscribe_user(user, channel)
        return 200, {"user": user, "channel": channel, "unsubscribed": count}

    async def health(self, request: Request) -> tuple[int, object]:
        """``ok`` (200), or ``degraded`` (503) while the broker is out of reach.

        A load balancer routes new clients around a degraded node; the ones it has
        stay connected and recover what they missed once the broker is back. The
        other parts (``mqtt``) inform and do not degrade: every node shares that
        link's fate, so routing around one would not help.
        """
        broker = self._node.broker
        connected = broker.connected
        return 200 if connected else 503, {
            "status": "ok" if connected else "degraded",
            "broker": {"name": broker.name, "connected": connected},
            "connections": self._connection_count(),
            # Which process answered: with --workers, each worker answers for itself.
            "pid": os.getpid(),
            **{name: status() for name, status in self._statuses.items()},
        }


def _limit_of(request: Request) -> int:
    raw = request.param("limit")
    if raw is None or raw == "":
        return 100
    # isascii() too: isdigit() is true of "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 0 <= int(raw) <= MAX_HISTORY_LIMIT:
        raise BadRequestError(f"limit must be an integer from 0 to {MAX_HISTORY_LIMIT}")
    return int(raw)
