"""The pushwire server: one listening socket, routes, and start-up and shutdown.

Also the in-process API: build a :class:`Server` in your own asyncio program,
``await server.start()``, and ``await server.publish(channel, data)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from pushwire.brokers.memory import MemoryBroker
from pushwire.brokers.memory_history import MemoryHistoryStore
from pushwire.brokers.registry import BrokerSettings, open_broker, redacted_url
from pushwire.brokers.sqlite_history import SqliteHistoryStore
from pushwire.core.broker import Broker
from pushwire.core.channels import ChannelRule, ChannelRules
from pushwire.core.eager import start_eagerly
from pushwire.core.history import Publication
from pushwire.core.node import Node
from pushwire.errors import (
    GOING_AWAY,
    ClientError,
    NotFoundError,
    OriginNotAllowedError,
    ServerError,
    UsageError,
)
from pushwire.protocol.error_mapping import error_code, http_error
from pushwire.server.admin import AdminApi, admin_file
from pushwire.server.auth import ApiKey, Authenticator
from pushwire.server.config import Config
from pushwire.server.demo import DEMO_RULE, DemoLogins, demo_secret as load_demo_secret, static_file
from pushwire.server.door import Door, open_files_limit, peer_ip
from pushwire.server.http import HttpConnection, Request
from pushwire.server.logs import BrokerWatch, LogEvent, RefusalLog
from pushwire.server.metrics import MetricsAccess, MetricsEndpoint
from pushwire.server.origins import OriginPolicy
from pushwire.server.publish_api import PublishApi
from pushwire.server.streaming import StreamSettings, SubscriberEndpoints
from pushwire.server.tokens import TokenVerifier, verifier_from_config
from pushwire.transports.base import ConnectionLimits, Ticker
from pushwire.transports.sse import SSEPinger
from pushwire.transports.websocket import Heartbeat
from pushwire.transports.ws_channels import SessionSettings

if TYPE_CHECKING:
    from pushwire.server.mqtt_bridge import MqttBridge

__all__ = ["Server"]

logger = logging.getLogger("pushwire")

Handler = Callable[[Request], Awaitable[tuple[int, object]]]
StreamHandler = Callable[[Request, HttpConnection], Awaitable[None]]
# Browsers may call these from other origins (the API is for backends).
# Endpoints for browsers: their Origin is checked, and their answers carry CORS headers
# (the API is for backends; /health carries CORS headers but is open to every origin).
_BROWSER_PATHS = frozenset(
    {"/ws", "/sse", "/poll", "/publish", "/presence", "/history", "/demo/login", "/demo/refresh"}
)
# What / answers when there is no demo chat to serve.
_ENDPOINTS = {
    "/ws": "WebSocket: subscribe, publish, presence (docs/protocol.md)",
    "/sse": "Server-Sent Events: ?channel=NAME",
    "/poll": "long and short polling: ?channel=NAME&cursor=C&timeout=S",
    "/publish": "POST: publish as a client",
    "/presence": "GET: members of a channel (?channel=NAME)",
    "/history": "GET: a channel's recent messages (?channel=NAME&limit=N&since=C)",
    "/api/": "backend API with X-API-Key: publish, broadcast, history, channels, presence",
    "/health": "GET: status",
    "/metrics": "GET: Prometheus metrics (loopback, or X-API-Key / metrics token)",
    "/pushwire.js": "the browser client",
    "/admin": "the admin page (asks for the API key)",
}
# Refusals here are connections refused, and logged (see server.logs.RefusalLog).
_CONNECTION_PATHS = frozenset({"/ws", "/sse", "/poll"})
_CORS_PATHS = frozenset({"/sse", "/poll", "/publish", "/presence", "/history", "/health"})
# Publications a client pipelines on one connection start without waiting for the answer
# to the one before (see HttpConnection): in arrival order, so each channel keeps its order,
# and one loop iteration's publications are stored in one commit. Everything else (reads
# that must see the publications before them, streams, upgrades) waits its turn.
_OVERLAPPING_PATHS = frozenset({"/api/publish", "/api/broadcast"})
_SHUTDOWN_GRACE_SECONDS = 2.0


def _open_mqtt_bridge(node: Node, config: Config) -> MqttBridge:
    """The bridge of ``config.mqtt``, imported now: ``pushwire[mqtt]`` brings its library."""
    assert config.mqtt is not None
    try:
        from pushwire.server.mqtt_bridge import MqttBridge
    except ImportError as exc:
        raise UsageError(
            f"the MQTT bridge needs its client library: pip install 'pushwire[mqtt]' ({exc})"
        ) from None
    return MqttBridge(
        node,
        config.mqtt,
        max_message_bytes=config.max_message_bytes,
        shared=config.broker != "memory",  # several nodes on one broker: a cluster
    )


@functools.cache
def _version() -> str:
    try:
        return importlib.metadata.version("pushwire")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


@functools.cache
def _client_script(*, module: bool) -> bytes | None:
    """pushwire.js (a classic script) or, for ``module``, pushwire.mjs; None if not built."""
    name = "pushwire.mjs" if module else "pushwire.js"
    resource = resources.files("pushwire") / "static" / name
    try:
        return resource.read_bytes()
    except OSError:
        return None


class Server:
    """A pushwire node serving WebSocket, SSE, polling and the HTTP API on one port."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        broker: Broker | None = None,
        demo_secret: str | None = None,
    ) -> None:
        """
        Args:
            broker: a broker to use instead of the one the configuration names.
            demo_secret: the demo chat's token secret, when a supervisor shares one
                among workers (server.workers); None reads or makes it (server.demo).
        """
        self.config = config = config or Config()
        self.api_key = ApiKey(config.api_key)
        self.limits = ConnectionLimits(
            max_message_bytes=config.max_message_bytes,
            max_buffer_bytes=config.max_buffer_bytes,
            max_channels=config.max_channels_per_connection,
            close_timeout_seconds=config.close_timeout_seconds,
        )
        self.origins = OriginPolicy(config.allowed_origins)
        rules = list(config.channels)
        self.demo: DemoLogins | None = None
        if config.demo:
            secret = demo_secret or load_demo_secret(
                config.data_dir, persistent=config.history != "memory"
            )
            self.demo = DemoLogins(TokenVerifier("HS256", secret))
            if not any(rule.prefix == DEMO_RULE.prefix for rule in rules):
                rules.append(DEMO_RULE)
        self.authenticator = Authenticator(
            verifier_from_config(config),
            allow_anonymous=config.allow_anonymous,
            demo_verifier=None if self.demo is None else self.demo.verifier,
        )
        self.node = Node(broker or self._configured_broker(rules), ChannelRules(rules))
        #: The MQTT bridge, when ``[mqtt]`` is configured (its library is imported only then).
        self.mqtt: MqttBridge | None = None
        if config.mqtt is not None:
            self.mqtt = _open_mqtt_bridge(self.node, config)
        self.heartbeat = Heartbeat(config.ws_ping_interval_seconds, config.ws_ping_timeout_seconds)
        self.sse_pinger = SSEPinger(config.sse_ping_interval_seconds)
        self.connections: set[HttpConnection] = set()
        self.subscribers = SubscriberEndpoints(
            self.node,
            self.limits,
            origins=self.origins,
            heartbeat=self.heartbeat,
            sse_pinger=self.sse_pinger,
            authenticator=self.authenticator,
            settings=StreamSettings(
                config.sse_retry_ms,
                config.poll_max_timeout_seconds,
                max_connections_per_user=config.max_connections_per_user,
                presence_poll_grace_seconds=config.presence_poll_grace_seconds,
                max_channel_length=config.max_channel_length,
            ),
            session_settings=SessionSettings(
                self.authenticator.verify,
                refresh_timeout_seconds=config.token_refresh_timeout_seconds,
                max_publishes_per_second=config.max_publishes_per_second,
            ),
        )
        self._api = api = PublishApi(
            self.node,
            self.api_key,
            client_permissions=self.subscribers.permissions_of,
            connection_count=lambda: len(self.connections),
            max_publishes_per_second=config.max_publishes_per_second,
            statuses={} if self.mqtt is None else {"mqtt": self.mqtt.status},
        )
        self._api_routes: dict[str, Handler] = {
            "/api/publish": api.api_publish,
            "/api/broadcast": api.api_broadcast,
            "/api/history": api.api_history,
            "/api/channels": api.api_channels,
            "/api/presence": api.api_presence,
            "/presence": self.subscribers.presence,
            "/api/disconnect": api.api_disconnect,
            **(
                {}
                if self.demo is None
                else {"/demo/login": self.demo.login, "/demo/refresh": self.demo.refresh}
            ),
            "/api/unsubscribe": api.api_unsubscribe,
            "/api/info": AdminApi(self.node, self.api_key).api_info,
            "/publish": api.client_publish,
            "/history": api.client_history,
            "/health": api.health,
        }
        self._stream_routes: dict[str, StreamHandler] = {
            "/sse": self.subscribers.sse,
            "/poll": self.subscribers.poll,
        }
        self._door = Door(
            max_connections=config.max_connections or open_files_limit() - 100,
            max_per_ip=config.max_connections_per_ip,
        )
        self._idle_sweep = Ticker(1.0, self._sweep_idle)
        self.metrics = MetricsEndpoint(
            self.node,
            MetricsAccess(self.api_key, config.metrics_token),
            open_connections=lambda: len(self.connections),
            version=_version(),
            mqtt=self.mqtt,
        )
        self.node.about.update(
            version=_version(),
            worker=self.metrics.worker,
            host=socket.gethostname(),
            pid=str(os.getpid()),
        )
        self._refusal_log = RefusalLog()
        self._broker_watch = Ticker(1.0, BrokerWatch(self.node.broker).check)
        self._listener: asyncio.Server | None = None
        self._running = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = asyncio.Event()
        self._all_closed = asyncio.Event()

    def _configured_broker(self, rules: list[ChannelRule]) -> Broker:
        config = self.config
        if config.broker != "memory":
            return open_broker(
                config.broker,
                BrokerSettings(
                    prefix=config.broker_prefix,
                    history_meta_ttl_seconds=config.history_meta_ttl_seconds,
                    presence_ttl_seconds=config.presence_ttl_seconds,
                    max_history_size=max(rule.history_size for rule in [*rules, ChannelRule()]),
                ),
            )
        meta_ttl = config.history_meta_ttl_seconds
        if config.history == "memory":
            return MemoryBroker(MemoryHistoryStore(meta_ttl_seconds=meta_ttl))
        path = Path(self.config.data_dir) / "history.sqlite3"
        return MemoryBroker(SqliteHistoryStore(path, meta_ttl_seconds=meta_ttl))

    # Life cycle.

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port=0``)."""
        if self._listener is None or not self._listener.sockets:
            return self.config.port
        return int(self._listener.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def start(self, *, listen: bool = True) -> None:
        """Start the node and listen; returns once the socket accepts connections.

        ``listen=False`` starts everything but the socket: requests then come from
        elsewhere (``pushwire.asgi.PushwireApp`` hands them over).
        """
        await self.node.start()
        self._running = True
        if listen:
            self._listener = await asyncio.get_running_loop().create_server(
                lambda: HttpConnection(self, self.config.max_message_bytes),
                self.config.host,
                self.config.port,
                backlog=4096,
                reuse_address=True,
                # Workers of one `pushwire serve --workers N` each bind the port; the
                # kernel spreads new connections over them (server.workers).
                reuse_port=self.config.workers > 1,
            )
        self.heartbeat.start()
        self.sse_pinger.start()
        self.subscribers.poll_presence.start()
        self._idle_sweep.start()
        self.metrics.start()
        if self.mqtt is not None and self.config.mqtt is not None:
            self.mqtt.start(self.config.mqtt.client_id_for(self.port))
        self._broker_watch.start()
        where = f"listening on {self.url}" if listen else "started inside an ASGI server"
        logger.info(
            "pushwire %s (%s, version %s)",
            where,
            self._history_label(),
            _version(),
            extra={"event": LogEvent.STARTED, "version": _version(), "url": self.url},
        )

    def _history_label(self) -> str:
        if self.config.broker != "memory":
            return f"broker {redacted_url(self.config.broker)}"
        if self.config.history == "memory":
            return "history in memory"
        return f"history in sqlite in {os.path.abspath(self.config.data_dir)}"

    async def stop(self) -> None:
        """Stop accepting, close every client cleanly so it reconnects, then release the broker."""
        if not self._running:
            return
        self._running = False
        listener, self._listener = self._listener, None
        # Stop accepting new connections.
        if listener is not None:
            listener.close()
        self.heartbeat.stop()
        self.sse_pinger.stop()
        self.subscribers.poll_presence.stop()
        self._idle_sweep.stop()
        self.metrics.stop()
        self._broker_watch.stop()
        # Tell every subscriber to go elsewhere: WebSockets get 1001, polls their
        # answer, streams their end; then WebSockets without subscriptions.
        self.node.hub.close_all(GOING_AWAY)
        for session in self.heartbeat.sessions():
            session.close(GOING_AWAY)
        for connection in list(self.connections):
            if connection.upgraded is None:
                connection.close()
        # Give closing handshakes a moment, then cut what is left.
        if self.connections:
            self._all_closed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), _SHUTDOWN_GRACE_SECONDS)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        # What the bridge is taking in is published and acknowledged, then it goes.
        if self.mqtt is not None:
            await self.mqtt.close()
        await self.node.close()
        logger.info("pushwire stopped (%s)", self.url, extra={"event": LogEvent.STOPPED})
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def publish(self, channel: str, data: Any, *, event: str | None = None) -> Publication:
        """Publish from your own program to every subscriber of ``channel``."""
        return await self.node.publish(channel, data, event=event)

    # Router protocol, called by HttpConnection.

    def connection_opened(self, connection: HttpConnection) -> None:
        ip = peer_ip(connection)
        refusal = self._door.admit(len(self.connections), ip)
        if refusal is not None:
            # Refused, answered at once: the server itself must never run out of files.
            self.request_refused(refusal.code)
            self._refusal_log.refused(refusal, path="(accept)", peer=ip)
            connection.fail(*http_error(refusal, context="accepting"))
            return
        self.connections.add(connection)
        self._door.opened(ip)

    def connection_closed(self, connection: HttpConnection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self._door.closed(peer_ip(connection))
        if not self.connections:
            self._all_closed.set()

    def request_refused(self, code: str) -> None:
        self.node.counters.refuse("http", code)

    def overlaps(self, request: Request) -> bool:
        return (
            request.path in _OVERLAPPING_PATHS and request.method == "POST" and not request.upgrade
        )

    def _sweep_idle(self) -> None:
        """Close HTTP connections that idle too long; answer 408 to requests too slow."""
        now = time.monotonic()
        request_seconds = self.config.request_head_timeout_seconds
        idle_seconds = self.config.keep_alive_timeout_seconds
        for connection in list(self.connections):
            connection.check_timeouts(
                now, request_seconds=request_seconds, idle_seconds=idle_seconds
            )

    def handle(self, request: Request, connection: HttpConnection) -> None:
        path = request.path
        if request.method == "OPTIONS":
            headers = []
            if path in _CORS_PATHS:
                origin, host = request.headers.get("origin"), request.headers.get("host")
                headers = self.origins.preflight_headers(origin, host)
            connection.respond(204, b"", headers=headers)
            return
        if path in _BROWSER_PATHS:
            try:
                self.origins.check(request.headers.get("origin"), request.headers.get("host"))
            except OriginNotAllowedError as exc:
                # A refused upgrade must not become a WebSocket: answer and close.
                if request.upgrade:
                    self._fail(request, connection, exc)
                else:
                    self._refuse(request, connection, exc)
                return
        if path == "/ws" or (path == "/echo" and self.config.echo):
            self._run_sync(request, connection, self.subscribers.websocket)
            return
        if request.upgrade:
            self._fail(request, connection, NotFoundError(f"no WebSocket endpoint at {path[:100]}"))
            return
        if path in ("/pushwire.js", "/pushwire.mjs"):
            self._serve_client_script(request, connection)
            return
        if path == "/" or path.startswith("/chat/"):
            self._serve_page(request, connection)
            return
        if path == "/metrics":
            self._serve_metrics(request, connection)
            return
        if path == "/admin/":
            # The page's links are relative to /admin (so that they work under a mount).
            headers = [(b"Location", b"../admin")]
            connection.respond(301, b"", headers=headers)
            return
        if path.startswith("/admin"):
            self._serve_file(request, connection, admin_file(path))
            return
        stream_handler = self._stream_routes.get(path)
        if stream_handler is not None:
            self._spawn(request, connection, stream_handler(request, connection))
            return
        if path == "/api/publish":
            self._publish_soon(request, connection)
            return
        api_handler = self._api_routes.get(path)
        if api_handler is None:
            self._refuse(request, connection, NotFoundError(f"no endpoint at {path[:100]}"))
            return
        self._spawn(request, connection, self._answer(api_handler, request, connection))

    def _serve_client_script(self, request: Request, connection: HttpConnection) -> None:
        """The browser client, served by the server so pages need no build step."""
        script = _client_script(module=request.path.endswith(".mjs"))
        if script is None:
            self._refuse(request, connection, NotFoundError("this build has no pushwire.js"))
            return
        connection.respond(
            200,
            script,
            content_type=b"text/javascript; charset=utf-8",
            headers=[(b"Access-Control-Allow-Origin", b"*"), (b"Cache-Control", b"no-cache")],
        )

    def _serve_file(
        self, request: Request, connection: HttpConnection, file: tuple[bytes, bytes] | None
    ) -> None:
        """A static page's file, or 404 (the admin page: public, it shows nothing by itself)."""
        if file is None:
            self._refuse(request, connection, NotFoundError(f"no file {request.path[:100]}"))
            return
        data, content_type = file
        connection.respond(
            200,
            data,
            content_type=content_type,
            headers=[(b"Cache-Control", b"no-cache")],
        )

    def _serve_metrics(self, request: Request, connection: HttpConnection) -> None:
        """``/metrics``: read from the counters now, in the Prometheus text format."""
        try:
            body, content_type = self.metrics.scrape(peer_ip(connection), request.headers)
        except ClientError as exc:
            self._refuse(request, connection, exc)
            return
        connection.respond(
            200,
            body,
            content_type=content_type,
            headers=[(b"Cache-Control", b"no-store")],
        )

    def _serve_page(self, request: Request, connection: HttpConnection) -> None:
        """``/``: the demo chat (its files under ``/chat/``), or an index of the endpoints."""
        name = "index.html" if request.path == "/" else request.path[len("/chat/") :]
        page = static_file(name) if self.demo is not None else None
        if page is None:
            if request.path != "/":
                self._refuse(request, connection, NotFoundError(f"no file {request.path[:100]}"))
                return
            body = orjson.dumps({"pushwire": _version(), "endpoints": _ENDPOINTS})
            connection.respond(200, body)
            return
        data, content_type = page
        connection.respond(
            200,
            data,
            content_type=content_type,
            headers=[(b"Cache-Control", b"no-cache")],
        )

    async def _answer(self, handler: Handler, request: Request, connection: HttpConnection) -> None:
        status, value = await handler(request)
        connection.respond(
            status,
            orjson.dumps(value),
            headers=self._cors_headers(request),
            request=request,
        )

    def _publish_soon(self, request: Request, connection: HttpConnection) -> None:
        """``POST /api/publish``: one publication answered by a callback, a batch by a task."""

        def answer(status: int, value: object) -> None:
            connection.respond(status, orjson.dumps(value), request=request)

        def refuse(exc: BaseException) -> None:
            if isinstance(exc, ClientError | ServerError):
                self._refuse(request, connection, exc)
            else:
                self._fail(request, connection, exc)

        try:
            if self._api.api_publish_soon(request, answer, refuse):
                return
        except Exception as exc:
            refuse(exc)
            return
        handler = self._api_routes["/api/publish"]
        self._spawn(request, connection, self._answer(handler, request, connection))

    def _cors_headers(self, request: Request) -> list[tuple[bytes, bytes]]:
        if request.path not in _CORS_PATHS:
            return []
        return self.origins.cors_headers(request.headers.get("origin"), request.headers.get("host"))

    def _refuse(self, request: Request, connection: HttpConnection, exc: BaseException) -> None:
        """Answer with the error's JSON; the connection carries on with the next request."""
        self._count_refusal(request, connection, exc)
        status, body = http_error(exc, context=f"{request.method} {request.path[:100]}")
        connection.respond(
            status,
            body,
            headers=self._cors_headers(request),
            request=request,
        )

    def _count_refusal(
        self, request: Request, connection: HttpConnection, exc: BaseException
    ) -> None:
        self.request_refused(error_code(exc))
        if request.path in _CONNECTION_PATHS:
            self._refusal_log.refused(exc, path=request.path, peer=peer_ip(connection))

    def _fail(self, request: Request, connection: HttpConnection, exc: BaseException) -> None:
        """Answer with the error's JSON and close: the request may have left the stream unsound."""
        self._count_refusal(request, connection, exc)
        status, body = http_error(exc, context=f"{request.method} {request.path[:100]}")
        connection.fail(status, body)

    def _run_sync(
        self,
        request: Request,
        connection: HttpConnection,
        handler: Callable[[Request, HttpConnection], None],
    ) -> None:
        try:
            handler(request, connection)
        except Exception as exc:
            self._fail(request, connection, exc)

    def _spawn(self, request: Request, connection: HttpConnection, work: Awaitable[None]) -> None:
        task = start_eagerly(self._guard(request, connection, work))
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _guard(
        self, request: Request, connection: HttpConnection, work: Awaitable[None]
    ) -> None:
        """Turn a handler's exception into a JSON error; never a stack trace to the client."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except (ClientError, ServerError) as exc:
            self._refuse(request, connection, exc)
        except Exception as exc:
            self._fail(request, connection, exc)
