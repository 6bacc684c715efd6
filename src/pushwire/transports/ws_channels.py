"""``/ws``: the two-way JSON protocol over a WebSocket (docs/protocol.md).

Commands from one connection run in order, by one task that lives only while
commands are waiting; replies echo the command's ``ref``. Deliveries do not pass
through here: the hub writes them to :meth:`WebSocketSession.send_batch`.
"""

from __future__ import annotations

import asyncio
import logging

from pushwire.core.history import StreamPosition
from pushwire.core.hub import ChannelState
from pushwire.core.node import Node
from pushwire.core.recovery import Recovery
from pushwire.errors import (
    AlreadySubscribedError,
    ClientError,
    LimitExceededError,
)
from pushwire.protocol.codec import error_reply, message_json, reply, ws_message_frame
from pushwire.protocol.messages import (
    Command,
    Ping,
    Publish,
    Ref,
    Subscribe,
    Unsubscribe,
    parse_command,
)
from pushwire.transports.base import ConnectionLimits
from pushwire.transports.websocket import Heartbeat, WebSocketSession

__all__ = ["ChannelSession"]

logger = logging.getLogger("pushwire.websocket")


class ChannelSession(WebSocketSession):
    """A ``/ws`` client: subscribes, unsubscribes, publishes and pings by JSON commands."""

    __slots__ = ("_commands", "_pump", "node", "subscriptions")

    def __init__(
        self,
        transport: asyncio.Transport,
        limits: ConnectionLimits,
        heartbeat: Heartbeat | None,
        node: Node,
    ) -> None:
        super().__init__(transport, limits, heartbeat)
        self.node = node
        self.subscriptions: dict[str, ChannelState] = {}
        self._commands: list[Command] | None = None  # only while commands wait
        self._pump: asyncio.Task[None] | None = None

    def subscribe_all(self, channels: list[str]) -> None:
        """Subscribe to the channels named in the connection URL (``?channel=``).

        A channel this node already serves is joined at once, without a task:
        thousands of clients connecting to one busy channel is the common case.
        """
        hub = self.node.hub
        for channel in channels:
            state = hub.channel(channel)
            if state is None or self._commands is not None:
                self._enqueue(Subscribe(channel, None))
            else:
                self._join(state, None, None)

    def on_message(self, data: bytes, is_text: bool) -> None:
        # Binary frames are accepted too: many clients send JSON they encoded to bytes.
        try:
            command = parse_command(data)
        except ClientError as exc:
            self.send(error_reply(exc.code, str(exc), exc.ref))
            return
        if isinstance(command, Ping) and self._commands is None:
            self.send(reply("pong", command.ref))
            return
        self._enqueue(command)

    def _enqueue(self, command: Command) -> None:
        if self._commands is None:
            self._commands = []
        self._commands.append(command)
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run_commands())

    async def _run_commands(self) -> None:
        try:
            while self._commands and not self.closed:
                command = self._commands.pop(0)
                if not self._commands:
                    self._commands = None
                try:
                    await self._execute(command)
                except ClientError as exc:
                    self.send(error_reply(exc.code, str(exc), command.ref))
                except Exception:
                    logger.exception("command %s failed", type(command).__name__)
                    self.send(error_reply("internal", "internal server error", command.ref))
        finally:
            self._pump = None
            self._commands = None

    async def _execute(self, command: Command) -> None:
        if isinstance(command, Subscribe):
            await self._subscribe(command)
        elif isinstance(command, Unsubscribe):
            state = self.subscriptions.pop(command.channel, None)
            if state is not None:
                self.node.hub.remove_ws(state, self)
            self.send(reply("unsubscribed", command.ref, channel=command.channel))
        elif isinstance(command, Publish):
            publication = await self.node.publish_json(
                command.channel, command.data, event=command.event, from_client=True
            )
            self.send(
                reply(
                    "published",
                    command.ref,
                    channel=command.channel,
                    id=publication.position.cursor,
                )
            )
        else:
            self.send(reply("pong", command.ref))

    async def _subscribe(self, command: Subscribe) -> None:
        channel = command.channel
        if channel in self.subscriptions:
            raise AlreadySubscribedError(f"already subscribed to {channel!r}")
        if len(self.subscriptions) >= self.limits.max_channels:
            raise LimitExceededError(f"at most {self.limits.max_channels} channels per connection")
        since = None if command.cursor is None else StreamPosition.from_cursor(command.cursor)
        state = await self.node.open_channel(channel)
        try:
            recovery = None if since is None else await self.node.recover(state, since)
        except BaseException:
            self.node.hub.release(state)
            raise
        if self.closed:
            self.node.hub.release(state)
            return
        self._join(state, recovery, command.ref)

    def _join(self, state: ChannelState, recovery: Recovery | None, ref: Ref) -> None:
        """Reply, replay what was recovered, and register for live delivery.

        Nothing here awaits, so live delivery continues exactly after the replay.
        """
        channel = state.name
        fields: dict[str, object] = {"channel": channel, "cursor": state.delivered.cursor}
        if recovery is not None:
            fields["recovered"] = recovery.recovered
        self.send(reply("subscribed", ref, **fields))
        if recovery is not None and recovery.publications:
            frames = b"".join(
                [
                    ws_message_frame(message_json(p.channel, p.position.cursor, p.event, p.data))
                    for p in recovery.publications
                ]
            )
            self.transport.write(frames)
        self.subscriptions[channel] = state
        self.node.hub.add_ws(state, self)

    def on_closed(self) -> None:
        self._commands = None
        hub = self.node.hub
        for state in self.subscriptions.values():
            hub.remove_ws(state, self)
        self.subscriptions.clear()
