"""The backend API client: publish, broadcast, history, channels, presence and
disconnecting users, with the API key.

:class:`ApiClient` (blocking) and :class:`AsyncApiClient` (asyncio) differ only
in how they send; what they send and how answers and errors are read is written
once, in the request builders and ``_answer`` below.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
import orjson

from pushwire.client.errors import (
    ConnectionLostError,
    RequestTimeoutError,
    UnreachableError,
    error_from_response,
)
from pushwire.client.messages import (
    ChannelInfo,
    History,
    Member,
    PublishResult,
    channel_info_from_json,
    history_from_json,
    members_from_json,
    publish_result_from_json,
)
from pushwire.client.options import DEFAULT_URL, http_base_url
from pushwire.errors import PushwireError, ServerError, UsageError

__all__ = ["ApiClient", "AsyncApiClient"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Call(Generic[_T]):
    """One API request, and how to read its answer."""

    method: str
    path: str
    read: Callable[[Any], _T]
    body: dict[str, Any] | None = None
    params: dict[str, str | int] = field(default_factory=dict)


def _publish(channel: str, data: Any, event: str | None) -> _Call[PublishResult]:
    body: dict[str, Any] = {"channel": channel, "data": data}
    if event is not None:
        body["event"] = event
    return _Call("POST", "/api/publish", publish_result_from_json, body)


def _broadcast(channels: Sequence[str], data: Any, event: str | None) -> _Call[list[PublishResult]]:
    if isinstance(channels, str):
        raise UsageError("broadcast takes a list of channels, not one name")
    body: dict[str, Any] = {"channels": list(channels), "data": data}
    if event is not None:
        body["event"] = event
    return _Call("POST", "/api/broadcast", _read_results, body)


def _history(channel: str, since: str | None, limit: int | None) -> _Call[History]:
    params: dict[str, str | int] = {"channel": channel}
    if since is not None:
        params["since"] = since
    if limit is not None:
        params["limit"] = limit
    return _Call("GET", "/api/history", history_from_json, params=params)


def _channels() -> _Call[list[ChannelInfo]]:
    return _Call("GET", "/api/channels", _read_channels)


def _disconnect(user: str) -> _Call[int]:
    return _Call("POST", "/api/disconnect", _count_of("disconnected"), {"user": user})


def _unsubscribe(user: str, channel: str) -> _Call[int]:
    body = {"user": user, "channel": channel}
    return _Call("POST", "/api/unsubscribe", _count_of("unsubscribed"), body)


def _presence(channel: str) -> _Call[list[Member]]:
    return _Call(
        "GET",
        "/api/presence",
        lambda value: members_from_json(value, channel),
        params={"channel": channel},
    )


def _count_of(name: str) -> Callable[[Any], int]:
    def read(value: Any) -> int:
        count = value.get(name) if isinstance(value, dict) else None
        if not isinstance(count, int) or isinstance(count, bool):
            raise ValueError(f"the answer needs an integer {name}")
        return count

    return read


def _read_results(value: Any) -> list[PublishResult]:
    if not isinstance(value, dict) or not isinstance(value.get("results"), list):
        raise ValueError("a broadcast answer needs a results list")
    return [publish_result_from_json(result) for result in value["results"]]


def _read_channels(value: Any) -> list[ChannelInfo]:
    if not isinstance(value, dict) or not isinstance(value.get("channels"), list):
        raise ValueError("a channels answer needs a channels list")
    return [channel_info_from_json(entry) for entry in value["channels"]]


def _settings(url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and headers, from the arguments or the environment."""
    key = api_key if api_key is not None else os.environ.get("PUSHWIRE_API_KEY")
    if not key:
        raise UsageError("no API key: pass api_key or set PUSHWIRE_API_KEY")
    base = http_base_url(url or os.environ.get("PUSHWIRE_URL") or DEFAULT_URL)
    return base, {"X-API-Key": key, "Accept": "application/json"}


def _encode(call: _Call[Any]) -> dict[str, Any]:
    """httpx arguments for ``call``."""
    arguments: dict[str, Any] = {"params": call.params}
    if call.body is not None:
        try:
            arguments["content"] = orjson.dumps(call.body)
        except TypeError as exc:
            raise UsageError(f"data is not JSON-serialisable: {exc}") from None
        arguments["headers"] = {"Content-Type": "application/json"}
    return arguments


def _answer(call: _Call[_T], response: httpx.Response) -> _T:
    """The answer's value, or the server's error as an exception."""
    if response.status_code != 200:
        raise error_from_response(response.status_code, response.content)
    try:
        return call.read(orjson.loads(response.content))
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise ServerError(f"malformed answer from {call.path}: {exc}") from None


def _transport_error(call: _Call[Any], base: str, exc: httpx.TransportError) -> PushwireError:
    """Say whether the request may have taken effect: only if it was sent."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return UnreachableError(f"cannot reach {base}: {exc!r}")
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeoutError(f"no answer from {call.path} in time: {exc!r}")
    return ConnectionLostError(f"{call.path} failed: {exc!r}")


class ApiClient:
    """The backend API over blocking HTTP; a ``with`` block closes it.

    Args:
        url: the server (default: ``PUSHWIRE_URL``, else http://127.0.0.1:8000).
        api_key: sent as ``X-API-Key`` (default: ``PUSHWIRE_API_KEY``).
        timeout_seconds: the longest one request may take.

    Every method raises the server's error as a ``PushwireError`` carrying its
    ``code`` (``UnauthorizedError`` for a wrong key, ``InvalidChannelError``...);
    ``UnreachableError`` if nothing was sent; ``ConnectionLostError`` or
    ``RequestTimeoutError`` if the request may or may not have taken effect.

    Raises:
        UsageError: no API key was given or found in the environment.
    """

    def __init__(
        self, url: str | None = None, api_key: str | None = None, *, timeout_seconds: float = 10.0
    ) -> None:
        self.url, headers = _settings(url, api_key)
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_seconds)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def publish(self, channel: str, data: Any, *, event: str | None = None) -> PublishResult:
        """Publish ``data`` (any JSON value) to ``channel``; returns its id."""
        return self._send(_publish(channel, data, event))

    def broadcast(
        self, channels: Sequence[str], data: Any, *, event: str | None = None
    ) -> list[PublishResult]:
        """Publish the same ``data`` to each of ``channels``; one result per channel."""
        return self._send(_broadcast(channels, data, event))

    def history(
        self, channel: str, *, since: str | None = None, limit: int | None = None
    ) -> History:
        """The newest ``limit`` messages (server default 100), or the first after ``since``."""
        return self._send(_history(channel, since, limit))

    def channels(self) -> list[ChannelInfo]:
        """The channels that have subscribers on the server, with their counts."""
        return self._send(_channels())

    def disconnect(self, user: str) -> int:
        """Close every connection of ``user`` (WebSockets with 4000: don't come back).

        Returns how many connections were closed. The user's clients stop; this
        does not keep them from connecting again with a valid token.
        """
        return self._send(_disconnect(user))

    def unsubscribe(self, user: str, channel: str) -> int:
        """Take ``channel`` away from every connection of ``user``; returns how many."""
        return self._send(_unsubscribe(user, channel))

    def presence(self, channel: str) -> list[Member]:
        """The members of ``channel`` (a ``presence = true`` channel), sorted by user.

        Raises:
            BadRequestError: presence is off for this channel.
        """
        return self._send(_presence(channel))

    def _send(self, call: _Call[_T]) -> _T:
        try:
            response = self._http.request(call.method, call.path, **_encode(call))
        except httpx.TransportError as exc:
            raise _transport_error(call, self.url, exc) from exc
        return _answer(call, response)


class AsyncApiClient:
    """The backend API over asyncio HTTP; ``async with`` closes it.

    The same methods, arguments and errors as :class:`ApiClient`, awaited.
    """

    def __init__(
        self, url: str | None = None, api_key: str | None = None, *, timeout_seconds: float = 10.0
    ) -> None:
        self.url, headers = _settings(url, api_key)
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout_seconds)

    async def __aenter__(self) -> AsyncApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def publish(self, channel: str, data: Any, *, event: str | None = None) -> PublishResult:
        """Publish ``data`` (any JSON value) to ``channel``; returns its id."""
        return await self._send(_publish(channel, data, event))

    async def broadcast(
        self, channels: Sequence[str], data: Any, *, event: str | None = None
    ) -> list[PublishResult]:
        """Publish the same ``data`` to each of ``channels``; one result per channel."""
        return await self._send(_broadcast(channels, data, event))

    async def history(
        self, channel: str, *, since: str | None = None, limit: int | None = None
    ) -> History:
        """The newest ``limit`` messages (server default 100), or the first after ``since``."""
        return await self._send(_history(channel, since, limit))

    async def channels(self) -> list[ChannelInfo]:
        """The channels that have subscribers on the server, with their counts."""
        return await self._send(_channels())

    async def disconnect(self, user: str) -> int:
        """Close every connection of ``user`` (WebSockets with 4000); returns how many."""
        return await self._send(_disconnect(user))

    async def unsubscribe(self, user: str, channel: str) -> int:
        """Take ``channel`` away from every connection of ``user``; returns how many."""
        return await self._send(_unsubscribe(user, channel))

    async def presence(self, channel: str) -> list[Member]:
        """The members of ``channel`` (a ``presence = true`` channel), sorted by user."""
        return await self._send(_presence(channel))

    async def _send(self, call: _Call[_T]) -> _T:
        try:
            response = await self._http.request(call.method, call.path, **_encode(call))
        except httpx.TransportError as exc:
            raise _transport_error(call, self.url, exc) from exc
        return _answer(call, response)
