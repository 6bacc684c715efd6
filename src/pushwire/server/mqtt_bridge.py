"""The MQTT bridge: pushwire as a client of a real MQTT broker, both ways (docs/mqtt.md).

In: a subscription per route (shared by a cluster's nodes), each message published on its
channel before it is acknowledged. Out: an outlet per route, confirmed by the broker's
PUBACK before the publisher's answer. Imported only when ``[mqtt]`` is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl

import aiomqtt
import orjson
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from pushwire.core.history import Publication
from pushwire.core.node import Node
from pushwire.errors import BridgeUnavailableError, ClientError, InvalidChannelError, ServerError
from pushwire.server.mqtt_mapping import (
    channel_to_topic,
    envelope_json,
    outgoing_payload,
    topic_to_channel,
)
from pushwire.server.mqtt_settings import MqttRoute, MqttSettings

__all__ = ["ORIGIN_PROPERTY", "MqttBridge"]

logger = logging.getLogger("pushwire.mqtt")

#: The MQTT 5 user property on every message the bridge publishes, valued with its
#: group: a message that carries it came from this cluster and is not taken back in.
ORIGIN_PROPERTY = "pushwire-group"
# MQTT messages taken in (and published) between two turns of the event loop, at most.
_MAX_BATCH = 64


class MqttBridge:
    """Carries messages between an MQTT broker and a node's channels, per the routes.

    ``start()`` returns at once: the bridge connects (and reconnects, with back-off)
    in the background while the rest of the server serves. Counters and the link's
    state are in :meth:`status` (``GET /health``, under ``mqtt``).
    """

    def __init__(
        self, node: Node, settings: MqttSettings, *, max_message_bytes: int, shared: bool
    ) -> None:
        """
        Args:
            max_message_bytes: larger MQTT payloads are dropped (and counted).
            shared: subscribe as a member of the cluster's shared subscription
                (several nodes on one broker), or on our own (one node).
        """
        self._node = node
        self._shared = shared
        self._settings = settings
        self._endpoint = settings.endpoint()
        self.client_id = ""  # given to start()
        self._max_message_bytes = max_message_bytes
        self._inbound = [route for route in settings.routes if route.inbound]
        self._outbound = [route for route in settings.routes if route.outbound]
        self._tls = _tls_context(settings) if self._endpoint.tls else None
        self._origin = _properties(PacketTypes.PUBLISH)
        self._origin.UserProperty = (ORIGIN_PROPERTY, settings.group)
        self._client: aiomqtt.Client | None = None  # only while connected
        self._lost: asyncio.Future[None] | None = None  # done when that connection ends
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._served = False  # the current attempt got connected
        self._idle = asyncio.Event()  # set while no message is half taken in
        self._idle.set()
        self.error: str | None = "not connected yet"
        #: Messages taken in from MQTT, publications sent out, payloads dropped.
        self.received = 0
        self.sent = 0
        self.dropped = 0

    @property
    def connected(self) -> bool:
        return self._client is not None

    def status(self) -> dict[str, object]:
        """What ``GET /health`` shows under ``mqtt``."""
        return {
            "connected": self.connected,
            "in": self.received,
            "out": self.sent,
            "dropped": self.dropped,
            "error": self.error,
        }

    # Life cycle.

    def start(self, client_id: str) -> None:
        """Register the outlets and start connecting in the background.

        ``client_id`` is fixed for this node (``MqttSettings.client_id_for``), so
        that its session, and what the broker queued for it, survive a restart.
        """
        self.client_id = client_id
        for route in self._outbound:
            self._node.outlets.add(route.prefix, _RouteOutlet(self, route))
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Finish the message being taken in (so it is acknowledged), then disconnect."""
        self._closing = True
        task = self._task
        if task is None:
            return
        if self._idle.is_set():
            task.cancel()  # waiting for a message, or to reconnect: nothing is half done
        # Otherwise the message in hand is published and acknowledged, and the task
        # leaves by itself, disconnecting in order (the PUBACKs go out before it).
        await asyncio.wait((task,), timeout=self._settings.publish_timeout_seconds)
        task.cancel()  # no-op once it has ended
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        """Connect, take messages in until the link drops, wait a back-off, again."""
        failures = 0
        while True:  # until close() cancels it, or sets _closing and it returns
            self._served = False
            try:
                await self._connect_and_serve()
            except aiomqtt.MqttError as exc:
                self._client = None
                self.error = str(exc) or type(exc).__name__
            except Exception as exc:  # our bug, or the library's: keep the bridge alive
                logger.exception("MQTT: the bridge failed")
                self._client = None
                self.error = f"internal error: {type(exc).__name__}"
            if self._closing:
                return
            # A link that was up starts the back-off afresh; a refusal makes it grow.
            failures = 1 if self._served else failures + 1
            settings = self._settings
            cap = min(
                settings.reconnect_max_delay_seconds,
                settings.reconnect_min_delay_seconds * 2.0 ** min(failures - 1, 32),
            )
            delay = cap * (0.5 + random.random() / 2)  # jitter: nodes do not come back at once
            logger.warning("MQTT: %s; reconnecting in %.1f s", self.error, delay)
            await asyncio.sleep(delay)

    async def _connect_and_serve(self) -> None:
        endpoint, settings = self._endpoint, self._settings
        connect = _properties(PacketTypes.CONNECT)
        # MQTT 5: without an expiry the session would end with the connection.
        connect.SessionExpiryInterval = settings.session_expiry_seconds
        client = aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            username=endpoint.username,
            password=endpoint.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=connect,
            keepalive=settings.keepalive_seconds,
            timeout=settings.publish_timeout_seconds,
            tls_context=self._tls,
        )
        # A message is acknowledged once it is in history, not when it arrives.
        # aiomqtt 2.5 has no switch for it yet (aiomqtt issue #345): paho's own.
        _paho(client).manual_ack_set(True)
        async with client:
            lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            try:
                await self._subscribe(client)
                self._client, self._lost, self.error = client, lost, None
                self._served = True
                logger.info("MQTT: connected to %s as %r", settings.display_url, self.client_id)
                messages = client.messages
                async for first in messages:
                    self._idle.clear()
                    try:
                        for message in await _batch(messages, first):
                            await self._take_in(client, message)
                            if self._closing:
                                return  # the rest stay unacknowledged: sent again
                    finally:
                        self._idle.set()
            finally:
                self._client = self._lost = None
                if not lost.done():
                    lost.set_result(None)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        """Subscribe every inbound route, shared in a cluster, plain on one node.

        Plain on one node because Mosquitto (2.0.11) queues nothing for a shared
        subscription of a session it restored after a restart until the client
        subscribes again: a lone node would lose what came in that window. A plain
        subscription also lets the broker keep our own messages from us (No Local).
        """
        group = self._settings.group
        for route in self._inbound:
            plain = route.topic_filter
            shared = f"$share/{group}/{plain}"
            wanted, other = (shared, plain) if self._shared else (plain, shared)
            # Retained messages only for a subscription the session did not have: a
            # reconnect gets what was queued meanwhile, not stale state after it.
            options = SubscribeOptions(
                qos=route.qos,
                noLocal=not self._shared,  # a protocol error on a shared subscription
                retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB,
            )
            granted = await client.subscribe(wanted, options=options)
            code = granted[0]
            if isinstance(code, ReasonCode) and code.is_failure:
                raise aiomqtt.MqttError(f"the broker refused the subscription {wanted}: {code}")
            # Left from the other mode (the node joined or left a cluster), it would
            # bring every message a second time.
            await client.unsubscribe(other)

    # In: MQTT -> pushwire.

    async def _take_in(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Publish one MQTT message on its channel, then acknowledge it (or drop it)."""
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else b""
        if self._is_echo(message):
            pass  # this cluster published it: it is on its channel already
        elif len(payload) > self._max_message_bytes:
            self._drop(f"{len(payload)} bytes on {topic!r}, over max_message_bytes")
        elif self._inbound_route(topic) is None:
            self._drop(f"{topic!r} is outside every inbound route (an old subscription?)")
        else:
            try:
                channel = topic_to_channel(topic)
            except InvalidChannelError as exc:
                self._drop(str(exc))
            else:
                data = envelope_json(topic, message.qos, message.retain, payload)
                if message.retain and await self._is_latest(channel, data):
                    logger.debug(
                        "MQTT: retained message on %r: %r has it as its latest already",
                        topic,
                        channel,
                    )
                elif not await self._publish_in(channel, data):
                    return  # closing: unacknowledged, so the broker sends it again
        _paho(client).ack(message.mid, message.qos)

    def _is_echo(self, message: aiomqtt.Message) -> bool:
        marks = getattr(message.properties, "UserProperty", None) or ()
        return (ORIGIN_PROPERTY, self._settings.group) in marks

    def _inbound_route(self, topic: str) -> MqttRoute | None:
        for route in self._inbound:
            if topic.startswith(route.topic_filter[:-1]):  # "devices/#" -> "devices/"
                return route
        return None

    def _drop(self, why: str) -> None:
        self.dropped += 1
        logger.warning("MQTT: dropped a message: %s", why)

    async def _is_latest(self, channel: str, data: bytes) -> bool:
        """Whether the channel's newest publication already is this retained message.

        A retained message comes again with every new subscription (a new session,
        another node): the channel's latest state is not published twice.
        """
        try:
            page = await self._node.history(channel, limit=1)
        except ServerError:
            return False
        if not page.publications:
            return False
        newest = orjson.loads(page.publications[-1].data)
        retained = orjson.loads(data)
        return (
            isinstance(newest, dict)
            and newest.get("topic") == retained["topic"]
            and newest.get("payload") == retained["payload"]
        )

    async def _publish_in(self, channel: str, data: bytes) -> bool:
        """Publish until it is in history (True), retrying while the broker is away.

        False if the bridge closes meanwhile. One message at a time, in order: what
        follows waits (and the MQTT broker holds it) rather than overtaking.
        """
        delay = self._settings.reconnect_min_delay_seconds
        while True:
            try:
                await self._node.publish_json(channel, data, to_outlet=False, source="mqtt")
            except ServerError as exc:
                if self._closing:
                    return False
                logger.warning("MQTT: cannot publish on %r (%s); retrying", channel, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.reconnect_max_delay_seconds)
                continue
            except ClientError as exc:
                self._drop(f"publishing on {channel!r} was refused: {exc}")
            except Exception:
                self.dropped += 1
                logger.exception("MQTT: dropped a message on %r", channel)
            else:
                self.received += 1
            return True

    # Out: pushwire -> MQTT.

    def check_outgoing(self, channel: str) -> None:
        channel_to_topic(channel)  # refuses a channel that has no topic
        if self._client is None:
            raise BridgeUnavailableError(
                f"{channel!r} is bridged to MQTT and the bridge is not connected ({self.error})"
            )

    async def send(self, route: MqttRoute, publication: Publication) -> None:
        client, lost = self._client, self._lost
        if client is None or lost is None:
            raise BridgeUnavailableError(f"the MQTT bridge is not connected ({self.error})")
        topic = channel_to_topic(publication.channel)
        sending = asyncio.ensure_future(
            client.publish(
                topic, outgoing_payload(publication.data), qos=route.qos, properties=self._origin
            )
        )
        # The link may drop before the PUBACK: fail then, not after the timeout.
        await asyncio.wait((sending, lost), return_when=asyncio.FIRST_COMPLETED)
        if not sending.done():
            sending.cancel()
            raise BridgeUnavailableError(
                f"the MQTT link dropped before the broker confirmed {publication.channel!r} "
                f"{publication.position.cursor} (published here)"
            )
        try:
            sending.result()
        except aiomqtt.MqttError as exc:
            raise BridgeUnavailableError(
                f"MQTT did not confirm {publication.channel!r} {publication.position.cursor} "
                f"(published here): {exc}"
            ) from None
        self.sent += 1


async def _batch(
    messages: aiomqtt.client.MessagesIterator, first: aiomqtt.Message
) -> list[aiomqtt.Message]:
    """``first`` and the messages queued behind it, up to :data:`_MAX_BATCH`.

    paho reads one packet per turn of the event loop, so publishing each message as
    it comes would have the hub write to every subscriber once per message. Taken
    while more are queued (a backlog), then published without a pause between, a
    batch reaches each subscriber in one write. An idle link adds no wait.
    """
    batch = [first]
    while len(messages) and len(batch) < _MAX_BATCH:
        batch.append(await anext(messages))
    return batch


class _RouteOutlet:
    """One outbound route as the node's outlet for its prefix."""

    __slots__ = ("_bridge", "_route")

    def __init__(self, bridge: MqttBridge, route: MqttRoute) -> None:
        self._bridge = bridge
        self._route = route

    def check(self, channel: str) -> None:
        self._bridge.check_outgoing(channel)

    async def send(self, publication: Publication) -> None:
        await self._bridge.send(self._route, publication)


def _paho(client: aiomqtt.Client) -> paho.Client:
    """The paho client under aiomqtt's, for what aiomqtt does not offer (manual acks)."""
    return client._client


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho leaves it untyped


def _tls_context(settings: MqttSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.ca_file or None)
