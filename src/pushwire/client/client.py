"""The asyncio client: subscriptions that survive reconnects, publishing and presence.

One background task owns the connection: it fetches a token (``get_token``),
connects (WebSocket first, then SSE), re-subscribes every channel from its
cursor, waits for the connection to drop, and tries again after a jittered
back-off, unless the server said not to come back. Subscriptions, publish and
presence calls never touch sockets themselves; they go through whatever
connection is up.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from pushwire.client.base import Closed, Connection, TokenSource
from pushwire.client.errors import (
    TOKEN_ERROR_CODES,
    DisconnectedError,
    RequestTimeoutError,
    UnreachableError,
)
from pushwire.client.messages import Member, PublishResult
from pushwire.client.options import DEFAULT_URL, ClientOptions, http_base_url, websocket_url
from pushwire.client.sse import SSEConnection
from pushwire.client.subscription import (
    GapCallback,
    JoinCallback,
    LeaveCallback,
    MessageCallback,
    Subscription,
    SubscriptionCallbacks,
    Subscriptions,
    UnsubscribedCallback,
)
from pushwire.client.websocket import WebSocketConnection
from pushwire.errors import RATE_LIMITED, TOKEN_EXPIRED, ClientError, PushwireError, UsageError

__all__ = ["Client", "ConnectCallback", "DisconnectCallback"]

_T = TypeVar("_T")

logger = logging.getLogger("pushwire.client")

# A connection that lasts this long resets the back-off after it drops.
_STABLE_CONNECTION_SECONDS = 5.0
# Close codes after which the back-off keeps growing: 4401 (token expired or
# refused: get a new one) and 4429 (publishing far over the rate limit).
_PENALTY_CODES = frozenset({TOKEN_EXPIRED.code, RATE_LIMITED.code})
ConnectCallback = Callable[[str], Any]  # the transport's name
DisconnectCallback = Callable[[str], Any]  # why the connection was lost


class Client:
    """A pushwire client: subscribe to channels and publish, over WebSocket or SSE.

    Use it as ``async with Client(url) as client:``, or call :meth:`start` and
    :meth:`close`. It connects in the background and reconnects for ever (or up
    to ``options.backoff.max_attempts`` failed attempts in a row), resuming every
    subscription from its cursor so that no message is missed or repeated; when
    the server no longer has the missed messages, the subscription gets a
    :class:`~pushwire.client.Gap` instead.

    Args:
        url: the server, such as ``http://127.0.0.1:8000`` (default: the
            ``PUSHWIRE_URL`` environment variable, else that address).
        options: timeouts, back-off, heartbeat and transports.
        on_connect: called with ``"websocket"`` or ``"sse"`` after each connection.
        on_disconnect: called with the reason when a connection is lost (not
            when the client is closed). Both callbacks may be plain or async.
        token: a connection token (a JWT from your backend), sent with every
            connection: ``?token=`` on the WebSocket, ``Authorization: Bearer``
            over HTTP. When it expires or is refused, the client stops.
        get_token: an async function that returns a fresh token; called before
            every connection attempt and when the server asks for a new token.
            Give ``token`` or ``get_token``, not both.

    Raises:
        UsageError: both ``token`` and ``get_token`` were given.
    """

    def __init__(
        self,
        url: str | None = None,
        options: ClientOptions | None = None,
        *,
        on_connect: ConnectCallback | None = None,
        on_disconnect: DisconnectCallback | None = None,
        token: str | None = None,
        get_token: TokenSource | None = None,
    ) -> None:
        if token is not None and get_token is not None:
            raise UsageError("give token or get_token, not both")
        if token is not None and not token:
            raise UsageError("token must not be empty (leave it out to connect anonymously)")
        self._token = token
        self._get_token = get_token
        self.url = http_base_url(url or os.environ.get("PUSHWIRE_URL") or DEFAULT_URL)
        self.options = options or ClientOptions()
        self._ws_url = self.options.ws_url or websocket_url(self.url)
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._subscriptions = Subscriptions()
        self._connection: Connection | None = None
        self._changed = asyncio.Condition()
        self._runner: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._closed = False
        self._failure: PushwireError | None = None

    # Life cycle.

    async def __aenter__(self) -> Client:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def start(self) -> None:
        """Start connecting in the background; returns at once.

        ``subscribe``, ``publish`` and ``wait_connected`` call it for you.

        Raises:
            UsageError: the client is closed.
            UnreachableError: the client gave up reconnecting.
        """
        if self._closed:
            raise UsageError("this client is closed; make a new one")
        if self._failure is not None:
            raise self._failure
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="pushwire-client")

    async def close(self) -> None:
        """Disconnect and end every subscription (their iterators stop). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        for task in list(self._sends):
            task.cancel()
        await asyncio.gather(*self._sends, return_exceptions=True)
        for subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            subscription.end()
            await subscription.wait_dispatched(self.options.close_timeout_seconds)
        await self._notify()

    async def wait_closed(self) -> None:
        """Wait until the client stops for good; returns after :meth:`close`.

        Raises:
            DisconnectedError: the server disconnected the client and said not to
                come back (``code`` 4000), or the token expired (4401) without a
                ``get_token`` to renew it.
            InvalidTokenError, TokenExpiredError, UnauthorizedError: the server
                refused the static ``token`` (or the lack of one) when connecting.
            UnreachableError: the client gave up reconnecting (``max_attempts``).
        """
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or self._failure is not None)
        if self._failure is not None:
            raise self._failure

    @property
    def transport(self) -> str | None:
        """``"websocket"`` or ``"sse"`` while connected, else None."""
        return None if self._connection is None else self._connection.transport

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def wait_connected(self) -> str:
        """Wait until connected (now or later); returns the transport's name.

        Raises:
            UnreachableError: the client gave up reconnecting.
            UsageError: the client is closed, or was never started.
        """
        self.start()
        return (await self._wait_connection()).transport

    # Subscribing and publishing.

    def subscribe(
        self,
        channel: str,
        *,
        cursor: str | None = None,
        on_message: MessageCallback | None = None,
        on_gap: GapCallback | None = None,
        on_join: JoinCallback | None = None,
        on_leave: LeaveCallback | None = None,
        on_unsubscribed: UnsubscribedCallback | None = None,
    ) -> Subscription:
        """Subscribe to ``channel`` now and after every reconnect, until unsubscribed.

        Without callbacks, iterate the result: ``async for item in client.subscribe(...)``
        yields :class:`Message` and :class:`Gap` items. With ``on_message`` (and
        ``on_gap``), those are called instead, in order, one at a time; they may
        be plain functions or coroutines. Await the result to wait for the
        server's confirmation.

        If the server takes the subscription away (``POST /api/unsubscribe``), it
        ends: the iterator stops after the items already received, and
        ``on_unsubscribed`` is called; it is not renewed on reconnect.

        Args:
            channel: the channel's name.
            cursor: resume right after this message id (from a previous run); if
                history no longer reaches back that far, a ``Gap`` comes first.
            on_message: called with each :class:`Message`.
            on_gap: called with each :class:`Gap`; without it gaps are logged.
            on_join: called with each :class:`Join` (a ``join_leave`` channel), in
                order with the messages, with the iterator or without it.
            on_leave: likewise with each :class:`Leave`.
            on_unsubscribed: called with the channel's name, after the last item,
                when the server ends the subscription.

        Raises:
            UsageError: already subscribed to ``channel``, the client is closed,
                or ``on_gap`` was given without ``on_message``.
        """
        self.start()
        if self._subscriptions.get(channel) is not None:
            raise UsageError(f"already subscribed to {channel!r}")
        if on_gap is not None and on_message is None:
            raise UsageError("on_gap needs on_message too")
        subscription = Subscription(
            channel,
            cursor=cursor,
            on_message=on_message,
            on_gap=on_gap,
            remove=self._unsubscribe,
            duplicate_window=self.options.duplicate_window,
            callbacks=SubscriptionCallbacks(on_join, on_leave, on_unsubscribed),
            presence=self._presence,
        )
        self._subscriptions.add(subscription)
        connection = self._connection
        if connection is not None:
            self._spawn_send(self._request_subscription(connection, subscription))
        return subscription

    async def unsubscribe(self, channel: str) -> None:
        """Stop the subscription to ``channel``, if any (see :meth:`Subscription.unsubscribe`)."""
        subscription = self._subscriptions.get(channel)
        if subscription is not None:
            await self._unsubscribe(subscription)

    async def publish(self, channel: str, data: Any, *, event: str | None = None) -> PublishResult:
        """Publish ``data`` (any JSON value) to ``channel``, as a client.

        Waits for a connection if there is none, all within
        ``options.request_timeout_seconds``. Never retried automatically: after a
        lost connection the publication may or may not have happened.

        Raises:
            PermissionDeniedError: the channel's rule forbids client publishing.
            ClientError: another refusal, with the server's ``code``.
            ConnectionLostError: the connection dropped before the answer.
            RequestTimeoutError: no answer in time.
            UnreachableError: the client gave up reconnecting.
        """
        self.start()

        async def send(connection: Connection) -> PublishResult:
            return await connection.publish(channel, data, event)

        return await self._on_connection("publish", send)

    async def _presence(self, subscription: Subscription) -> list[Member]:
        async def ask(connection: Connection) -> list[Member]:
            # The server answers a channel's subscribers only: make sure this
            # connection was asked to subscribe first (the request goes before).
            await self._request_subscription(connection, subscription)
            return await connection.presence(subscription.channel)

        return await self._on_connection("presence", ask)

    async def _on_connection(self, what: str, request: Callable[[Connection], Awaitable[_T]]) -> _T:
        """Run ``request`` on the connection (waiting for one), within the request timeout."""
        timeout = self.options.request_timeout_seconds or None
        try:
            async with asyncio.timeout(timeout):
                return await request(await self._wait_connection())
        except TimeoutError as exc:
            if isinstance(exc, PushwireError):
                raise
            raise RequestTimeoutError(f"no answer to {what} within {timeout:g} s") from None

    # The connection task.

    async def _run(self) -> None:
        backoff = self.options.backoff
        failures = 0  # failed attempts in a row: the attempt limit counts these
        # Connections in a row that dropped soon after opening: a server that
        # accepts and then hangs up at once gets the back-off as well.
        unstable = 0
        while True:
            try:
                connection = await self._connect()
            except (ClientError, UnreachableError) as exc:
                problem: PushwireError = exc
            else:
                closed, lasted_seconds = await self._serve_timed(connection)
                stop = self._stop_for(closed)
                if stop is not None:
                    logger.error("stopped: %s", stop)
                    await self._give_up(stop)
                    return
                # A refused token or a rate limit keeps the back-off growing however
                # long the connection lasted: coming straight back would only repeat it.
                penalised = closed.refused is not None or closed.code in _PENALTY_CODES
                stable = lasted_seconds >= _STABLE_CONNECTION_SECONDS and not penalised
                unstable = 0 if stable else unstable + 1
                if closed.refused is None:
                    failures = 0
                    delay = backoff.delay_seconds(unstable)
                    logger.info("disconnected (%s); reconnecting in %.2f s", closed.reason, delay)
                    await asyncio.sleep(delay)
                    continue
                # A stream refused the token: a failed attempt, as at the door.
                problem = closed.refused
            # A refused token (or its absence) needs a new one from get_token, and
            # only after a back-off, or a bad token would loop hot.
            failures += 1
            refused = isinstance(problem, ClientError)
            if backoff.gives_up_after(failures) or (refused and self._get_token is None):
                logger.error("giving up after %d attempts: %s", failures, problem)
                await self._give_up(problem)
                return
            delay = backoff.delay_seconds(unstable + failures)
            logger.info("%s; retrying in %.2f s", problem, delay)
            await asyncio.sleep(delay)

    async def _serve_timed(self, connection: Connection) -> tuple[Closed, float]:
        """:meth:`_serve`, and how long the connection lasted."""
        loop = asyncio.get_running_loop()
        opened_at = loop.time()
        try:
            closed = await self._serve(connection)
        except Exception:
            # Our bug; losing the connection is better than losing the client.
            logger.exception("the connection failed unexpectedly")
            closed = Closed("internal error in the client")
        return closed, loop.time() - opened_at

    def _stop_for(self, closed: Closed) -> PushwireError | None:
        """Why the client must not reconnect after ``closed``; None if it should."""
        if not closed.reconnect:
            return DisconnectedError(closed.code or 0, closed.close_reason or closed.reason)
        if closed.code == TOKEN_EXPIRED.code and self._get_token is None:
            return DisconnectedError(TOKEN_EXPIRED.code, closed.close_reason or closed.reason)
        return None

    async def _connect(self) -> Connection:
        """One attempt: each transport in turn, the first that connects wins.

        Raises:
            ClientError: the server refused the token at the door (HTTP 401).
            UnreachableError: no transport connected, or ``get_token`` failed.
        """
        token = self._token
        if self._get_token is not None:
            try:
                token = await self._fetch_token(self.options.connect_timeout_seconds)
            except Exception as exc:
                logger.debug("get_token failed", exc_info=True)
                raise UnreachableError(f"get_token failed: {_describe(exc)}") from exc
        problems = []
        for name in self.options.transports:
            try:
                if name == "websocket":
                    return await WebSocketConnection.open(
                        self._ws_url,
                        self._subscriptions,
                        self.options,
                        token=token,
                        renew_token=self._renew_token if self._get_token is not None else None,
                    )
                return await SSEConnection.open(
                    self.url, self._subscriptions, self.options, token=token
                )
            except ClientError as exc:
                if exc.http_status == 401 and exc.code in TOKEN_ERROR_CODES:
                    raise  # every transport would refuse it alike
                logger.debug("%s connection failed", name, exc_info=True)
                problems.append(f"{name}: {_describe(exc)}")
            except Exception as exc:
                logger.debug("%s connection failed", name, exc_info=True)
                problems.append(f"{name}: {_describe(exc)}")
        raise UnreachableError(f"cannot connect to {self.url} ({'; '.join(problems)})")

    async def _renew_token(self) -> str:
        """For the connection, when the server asks for a new token (``refresh``)."""
        return await self._fetch_token(self.options.request_timeout_seconds)

    async def _fetch_token(self, timeout_seconds: float) -> str:
        """A fresh token from ``get_token``, within ``timeout_seconds`` (0: no limit).

        Raises:
            UsageError: ``get_token`` returned something else than a token.
            TimeoutError, or whatever ``get_token`` raised.
        """
        assert self._get_token is not None
        async with asyncio.timeout(timeout_seconds or None):
            token: object = await self._get_token()
        if not isinstance(token, str) or not token:
            raise UsageError(f"get_token returned {type(token).__name__}, not a token")
        return token

    async def _serve(self, connection: Connection) -> Closed:
        """Use ``connection`` until it drops: re-subscribe everything, then wait."""
        try:
            self._connection = connection
            await self._notify()
            logger.info("connected to %s over %s", self.url, connection.transport)
            for subscription in self._subscriptions:
                await self._request_subscription(connection, subscription)
            await _call(self._on_connect, connection.transport)
            closed = await connection.wait_closed()
        finally:
            self._connection = None
            # Shielded: the client's own close() cancels this task and must not
            # leave a socket open behind it.
            await asyncio.shield(connection.close())
        await self._notify()
        await _call(self._on_disconnect, closed.reason)
        return closed

    async def _request_subscription(
        self, connection: Connection, subscription: Subscription
    ) -> None:
        # Marked before the first await, so a subscription is requested once per
        # connection whether the connect loop or subscribe() gets to it first.
        if subscription.requested_on is connection or subscription.is_ended:
            return
        subscription.requested_on = connection
        await connection.subscribe(subscription.channel, subscription.resume_cursor)

    async def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        subscription.end()
        connection = self._connection
        if connection is not None and subscription.requested_on is connection:
            await connection.unsubscribe(subscription.channel)
        await subscription.wait_dispatched(self.options.close_timeout_seconds)

    async def _give_up(self, error: PushwireError) -> None:
        self._failure = error
        for subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            subscription.end(error)
        await self._notify()

    # Waiting for a connection.

    async def _wait_connection(self) -> Connection:
        async with self._changed:
            await self._changed.wait_for(self._connection_settled)
            if self._connection is not None:
                return self._connection
            if self._failure is not None:
                raise self._failure
            raise UsageError("the client is closed")

    def _connection_settled(self) -> bool:
        return self._connection is not None or self._failure is not None or self._closed

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _spawn_send(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)


async def _call(callback: Callable[[str], Any] | None, argument: str) -> None:
    """Run a user callback (plain or async); its failure is logged, never raised."""
    if callback is None:
        return
    try:
        result = callback(argument)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("callback %r failed", callback)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
