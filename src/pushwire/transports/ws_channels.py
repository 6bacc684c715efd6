"""``/ws``: the two-way JSON protocol over a WebSocket (docs/protocol.md).

A thin driver around :class:`~pushwire.protocol.session.ClientSession`, which
holds every rule of the protocol: this module runs the session's actions
against the node, one at a time and in order, without a task unless one must
wait, and writes the replies. Deliveries do not pass through here: the hub
writes them to :meth:`WebSocketSession.write`, encoded by :data:`WS_MESSAGES`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from pushwire.core.eager import start_eagerly
from pushwire.core.history import Gap, Publication, StreamPosition
from pushwire.core.hub import Batch, ChannelState, Feed, Item
from pushwire.core.identity import Identity
from pushwire.core.node import Node
from pushwire.core.permissions import ChannelPermissions
from pushwire.core.presence import Join, Leave
from pushwire.core.recovery import Recovery
from pushwire.errors import TOKEN_EXPIRED, ClientError, Disconnect, token_refused
from pushwire.protocol.codec import (
    member_json,
    message_json,
    presence_json,
    ws_gap_frame,
    ws_message_frame,
    ws_text_frame,
)
from pushwire.protocol.messages import PresenceQuery, Publish, Refresh, Subscribe, Unsubscribe
from pushwire.protocol.session import Action, ClientSession
from pushwire.transports.base import ConnectionLimits, Timer
from pushwire.transports.websocket import Heartbeat, WebSocketSession

__all__ = ["WS_MESSAGES", "ChannelSession", "SessionSettings"]


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What every ``/ws`` session of a server shares besides its limits.

    Attributes:
        verify_token: turns a refresh token into an identity, or raises ClientError.
        refresh_timeout_seconds: after its token expires, how long a connection has
            to send a new one before it is closed with 4401.
        max_publishes_per_second: per connection; 0 for no limit.
    """

    verify_token: Callable[[str], Identity]
    refresh_timeout_seconds: float = 10.0
    max_publishes_per_second: float = 0.0


class _WebSocketFormat:
    """``/ws`` frames for one channel: messages, and live gaps."""

    __slots__ = ()

    answers_once = False
    transport = "websocket"

    def encode(self, batch: Batch, feed: Feed) -> bytes:
        return b"".join(
            [
                ws_message_frame(message) if message is not None else _event_frame(item)
                for item, message in zip(batch.items, batch.messages, strict=True)
            ]
        )


def _event_frame(item: Item) -> bytes:
    """The frame of what is not a publication: a gap, a join, a leave."""
    if isinstance(item, Gap):
        return ws_gap_frame(item.channel, item.position.cursor)
    if isinstance(item, Join | Leave):
        kind = "join" if isinstance(item, Join) else "leave"
        return ws_text_frame(presence_json(kind, item.channel, item.user, item.info))
    raise AssertionError(f"no frame for {type(item).__name__}")


WS_MESSAGES = _WebSocketFormat()


class ChannelSession(WebSocketSession):
    """A ``/ws`` client: subscribes, unsubscribes, publishes and pings by JSON commands."""

    __slots__ = (
        "_expiry",
        "_publishes",
        "_task",
        "feeds",
        "node",
        "permissions",
        "session",
        "settings",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        limits: ConnectionLimits,
        heartbeat: Heartbeat | None,
        node: Node,
        permissions: ChannelPermissions,
        settings: SessionSettings,
    ) -> None:
        super().__init__(transport, limits, heartbeat)
        self.node = node
        self.permissions = permissions
        self.settings = settings
        self.session = ClientSession(
            max_channels=limits.max_channels,
            permissions=permissions,
            max_publishes_per_second=settings.max_publishes_per_second,
            on_refused=node.counters.refuse_on_websocket,
        )
        node.counters.transports["websocket"].opened += 1
        self.feeds: dict[str, Feed] = {}
        self._task: asyncio.Task[None] | None = None  # only while an action waits
        #: Publishes that wait (for their commit), several at once: the session hands
        #: out publishes in a row together (see ``ClientSession.next_action``).
        self._publishes: set[asyncio.Task[None]] | None = None
        self._expiry: Timer | None = None  # only for a token that expires
        user = permissions.identity.user
        if user is not None:
            node.users.add(user, self)
        self._watch_expiry()

    def subscribe_all(self, channels: list[str]) -> None:
        """Subscribe to the channels named in the connection URL (``?channel=``).

        A channel this node already serves is joined at once, without a task:
        thousands of clients connecting to one busy channel is the common case.
        """
        self.session.subscribe_from_url(channels)
        self._advance()

    def on_message(self, data: bytes, is_text: bool) -> None:
        self.session.receive_message(data)
        self._advance()
        if self.session.disconnect is not None:
            self.close(self.session.disconnect)

    # Server-side changes (the API), as the UserConnection protocol has them.

    def unsubscribe(self, channel: str) -> bool:
        if not self._leave(channel):
            return False
        self.session.unsubscribed_by_server(channel)
        self._send_replies()
        return True

    def _leave(self, channel: str) -> bool:
        """Stop receiving ``channel``; False if this connection was not subscribed."""
        feed = self.feeds.pop(channel, None)
        if feed is None:
            return False
        self.node.hub.leave(feed, self)
        self.node.member_left(channel, self.permissions.identity)
        return True

    # Token expiry.

    def _watch_expiry(self) -> None:
        """Ask for a new token when this one expires; close if none comes in time."""
        expires_at = self.permissions.identity.expires_at
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if expires_at is not None:
            delay = max(expires_at - time.time(), 0.0)
            self._expiry = asyncio.get_running_loop().call_later(delay, self._token_expired)

    def _token_expired(self) -> None:
        self.session.ask_for_refresh()
        self._send_replies()
        self._expiry = asyncio.get_running_loop().call_later(
            self.settings.refresh_timeout_seconds, self.close, TOKEN_EXPIRED
        )

    # Running actions.

    def _advance(self) -> None:
        """Run the session's actions in order until one must wait (or none is left).

        Publishes in a row all start at once: a burst of them then shares one commit
        and one write to each subscriber, rather than one each.
        """
        session = self.session
        while self._task is None and not self.closed:
            action = session.next_action()
            self._send_replies()  # what the session answered on the way, first
            if action is None:
                return
            if self._run_now(action):
                continue
            task = start_eagerly(self._run(action))
            if task is None:
                continue
            if isinstance(action, Publish):
                if self._publishes is None:
                    self._publishes = set()
                self._publishes.add(task)
                task.add_done_callback(self._published)
            else:
                self._task = task
                task.add_done_callback(self._resume)

    def _resume(self, task: asyncio.Task[None]) -> None:
        self._task = None
        self._advance()

    def _published(self, task: asyncio.Task[None]) -> None:
        publishes = self._publishes
        if publishes is not None:
            publishes.discard(task)
            if not publishes:
                self._publishes = None
        self._advance()

    def _send_replies(self) -> None:
        for payload in self.session.data_to_send():
            self.send(payload)

    def _run_now(self, action: Action) -> bool:
        """Run ``action`` if it needs no wait; False if it must go through :meth:`_run`."""
        if isinstance(action, Refresh):
            self._refresh(action)
            return True
        if isinstance(action, Unsubscribe):
            self._leave(action.channel)
            self.session.unsubscribed(action)
            return True
        if isinstance(action, Subscribe) and action.cursor is None:
            state = self.node.hub.channel(action.channel)
            if state is not None:
                self._join(action, state, None)
                return True
        return False

    async def _run(self, action: Action) -> None:
        try:
            if isinstance(action, Subscribe):
                await self._subscribe(action)
            elif isinstance(action, Publish):
                publication = await self.node.publish_json(
                    action.channel,
                    action.data,
                    event=action.event,
                    publisher=self.permissions.identity,
                    source="client",
                )
                self.session.published(action, publication.position.cursor)
            elif isinstance(action, PresenceQuery):
                members = await self.node.members(action.channel)
                self.session.presence_answered(
                    action, [member_json(m.user, m.info, m.connections) for m in members]
                )
            else:  # the others are run at once (see _run_now)
                raise AssertionError(f"{type(action).__name__} is run at once")
        except asyncio.CancelledError:
            self.session.abandoned(action)
            raise
        except Exception as exc:
            self.session.failed(action, exc)

    def _refresh(self, action: Refresh) -> None:
        """A new token: the same user, verified, or the connection ends (4401)."""
        try:
            identity = self.settings.verify_token(action.token)
        except ClientError as exc:
            self.session.abandoned(action)
            self.close(token_refused(str(exc)))
            return
        if identity.user != self.permissions.identity.user:
            self.session.abandoned(action)
            self.close(token_refused("the token is for another user"))
            return
        self.permissions.identity = identity
        self.session.refreshed(action)
        self._watch_expiry()

    async def _subscribe(self, action: Subscribe) -> None:
        since = None if action.cursor is None else StreamPosition.from_cursor(action.cursor)
        hub = self.node.hub
        state = await self.node.open_channel(action.channel)
        try:
            recovery = None if since is None else await self.node.recover(state, since)
            if self.closed:
                self.session.abandoned(action)
            else:
                self._join(action, state, recovery)
        finally:
            hub.release(state)

    def _join(self, action: Subscribe, state: ChannelState, recovery: Recovery | None) -> None:
        """Reply, replay what was recovered, and join the channel's feed.

        Nothing here awaits, so live delivery continues exactly after the replay.
        """
        self.session.subscribed(
            action, state.delivered.cursor, None if recovery is None else recovery.recovered
        )
        self._send_replies()
        if recovery is not None and recovery.publications:
            self.transport.write(_replay_frames(recovery.publications))
        self.feeds[state.name] = self.node.hub.join(WS_MESSAGES, (state,), self)
        self.node.member_joined(state, self.permissions.identity)

    def close(self, reason: Disconnect) -> None:
        self._send_replies()  # what the session said last (an error, say) goes first
        super().close(reason)

    def on_closed(self) -> None:
        # A running action finishes on its own (a publish is not taken back) and
        # finds the connection closed.
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self.node.counters.transports["websocket"].close(self.close_reason())
        user = self.permissions.identity.user
        if user is not None:
            self.node.users.remove(user, self)
        self.session.close()
        for channel in list(self.feeds):
            self._leave(channel)


def _replay_frames(publications: tuple[Publication, ...]) -> bytes:
    return b"".join(
        [
            ws_message_frame(
                message_json(p.channel, p.position.cursor, p.event, p.data, p.publisher)
            )
            for p in publications
        ]
    )
