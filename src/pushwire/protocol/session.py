"""ClientSession: one ``/ws`` connection's protocol state, without I/O.

Messages in; replies and actions out. The session parses commands, answers
what needs no node (``ping``, malformed frames, limits), and hands out the
commands that do (subscribe, unsubscribe, publish) one at a time, in order;
except that publishes in a row are handed out together, so that a burst of them
can share one commit and one write to each subscriber: their replies still go
out in command order, and nothing else is handed out until they are all done.
The driver (``transports.ws_channels``) runs each against the node and reports
the outcome back, which becomes the reply. No asyncio, no sockets: every rule
of the ``/ws`` protocol is tested here without a network.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import orjson

from pushwire.errors import (
    RATE_LIMITED,
    AlreadySubscribedError,
    ClientError,
    Disconnect,
    LimitExceededError,
    PermissionDeniedError,
    RateLimitedError,
)
from pushwire.protocol.codec import reply
from pushwire.protocol.error_mapping import error_code, ws_error
from pushwire.protocol.messages import (
    Command,
    Ping,
    PresenceQuery,
    Publish,
    Refresh,
    Subscribe,
    Unsubscribe,
    parse_command,
)
from pushwire.protocol.rate_limit import PublishRate

__all__ = ["MAX_PUBLISHING", "Action", "ClientSession", "Permissions"]

#: Publishes one connection may have out at once (handed out, not yet reported).
MAX_PUBLISHING = 64

#: A command the driver must run against the node.
Action = Subscribe | Unsubscribe | Publish | Refresh | PresenceQuery


class Permissions(Protocol):
    """What this connection may do (``core.permissions.ChannelPermissions``)."""

    def check_subscribe(self, channel: str) -> None:
        """Raise a ClientError (``unauthorized``, ``permission_denied``) if not allowed."""

    def check_publish(self, channel: str) -> None:
        """Raise a ClientError if this connection may not publish to ``channel``."""


class _AllowAll:
    __slots__ = ()

    def check_subscribe(self, channel: str) -> None:
        pass

    def check_publish(self, channel: str) -> None:
        pass


class ClientSession:
    """The ``/ws`` protocol for one connection.

    Use: feed each complete message to :meth:`receive_message` (or channels from
    the URL to :meth:`subscribe_from_url`); take :meth:`next_action` and run it,
    then report with :meth:`subscribed`, :meth:`unsubscribed`, :meth:`published`
    or :meth:`failed`; send whatever :meth:`data_to_send` returns, in order.
    """

    __slots__ = (
        "_current",
        "_on_refused",
        "_outgoing",
        "_publishing",
        "_queue",
        "_rate",
        "disconnect",
        "max_channels",
        "permissions",
        "subscriptions",
    )

    def __init__(
        self,
        *,
        max_channels: int,
        permissions: Permissions | None = None,
        max_publishes_per_second: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        """
        Args:
            max_channels: subscriptions this connection may hold at once.
            permissions: what it may subscribe and publish to (default: anything).
            max_publishes_per_second: publishes over this rate are refused with
                ``rate_limited`` (0: no limit).
            clock: monotonic seconds, for the rate limit.
            on_refused: told the error code of every error reply (for the counters).
        """
        self._on_refused = on_refused
        self.max_channels = max_channels
        self.permissions = permissions or _AllowAll()
        self._rate = (
            PublishRate(max_publishes_per_second, clock) if max_publishes_per_second else None
        )
        #: Set when the connection must be closed (for example, sustained flooding);
        #: the driver closes with it after handing over the replies.
        self.disconnect: Disconnect | None = None
        #: Channels this connection is subscribed to (as confirmed by the driver).
        self.subscriptions: set[str] = set()
        self._queue: deque[Command] | None = None  # only while commands wait
        self._current: Action | None = None  # handed out, not yet reported
        #: Publishes handed out together, oldest first, each with its reply once it
        #: is reported (b"" for none): a reply leaves when those before it have.
        self._publishing: deque[list[Publish | bytes | None]] | None = None
        self._outgoing: list[bytes] = []

    @property
    def is_busy(self) -> bool:
        """An action is out, or commands wait behind one."""
        return self._current is not None or bool(self._queue) or bool(self._publishing)

    # Input.

    def receive_message(self, data: bytes | str) -> None:
        """One complete client message (text or binary: many clients send JSON as bytes)."""
        try:
            command = parse_command(data)
        except Exception as exc:
            self._outgoing.append(ws_error(exc, getattr(exc, "ref", None), context="parsing"))
            if self._on_refused is not None:
                self._on_refused(error_code(exc))
            return
        if isinstance(command, Ping) and not self.is_busy:
            self._outgoing.append(reply("pong", command.ref))  # nothing to wait behind
            return
        if isinstance(command, Publish) and self._rate is not None and not self._rate.allow():
            self._refuse(command, RateLimitedError("too many publishes: slow down"))
            if self._rate.is_abused():
                self.disconnect = RATE_LIMITED
            return
        self._enqueue(command)

    def subscribe_from_url(self, channels: list[str]) -> None:
        """Channels named in the connection URL (``?channel=``), already validated."""
        for channel in channels:
            self._enqueue(Subscribe(channel, None))

    def _enqueue(self, command: Command) -> None:
        if self._queue is None:
            self._queue = deque()
        self._queue.append(command)

    # Actions.

    def next_action(self) -> Action | None:
        """The next command to run against the node; None while one is out or none waits.

        Commands that need no node are answered on the way (they queue replies).
        While publishes are out, only a publish that may go is handed out (and so a
        driver may ask again before reporting them); anything else, a refusal too,
        waits until they are all reported, so replies stay in command order.
        """
        queue = self._queue
        publishing = self._publishing
        if publishing:
            command = queue[0] if queue else None
            if not isinstance(command, Publish) or len(publishing) >= MAX_PUBLISHING:
                return None
            try:
                self.permissions.check_publish(command.channel)
            except ClientError:
                return None  # refused in its turn, once the publishes before it are done
            assert queue is not None  # it holds command
            queue.popleft()
            if not queue:
                self._queue = None
            publishing.append([command, None])
            return command
        while self._current is None and queue:
            command = queue.popleft()
            if isinstance(command, Ping):
                self._outgoing.append(reply("pong", command.ref))
            elif isinstance(command, Subscribe):
                if command.channel in self.subscriptions:
                    self._refuse(
                        command,
                        AlreadySubscribedError(f"already subscribed to {command.channel!r}"),
                    )
                elif len(self.subscriptions) >= self.max_channels:
                    self._refuse(
                        command,
                        LimitExceededError(f"at most {self.max_channels} channels per connection"),
                    )
                else:
                    self._hand_out(command)
            elif isinstance(command, Unsubscribe):
                if command.channel in self.subscriptions:
                    self._current = command
                else:
                    self._outgoing.append(
                        reply("unsubscribed", command.ref, channel=command.channel)
                    )
            elif isinstance(command, Refresh):
                self._current = command  # the driver verifies it
            elif isinstance(command, PresenceQuery):
                if command.channel in self.subscriptions:
                    self._current = command
                else:
                    self._refuse(
                        command,
                        PermissionDeniedError("presence is for subscribers of the channel"),
                    )
            elif self._hand_out(command):
                if not queue:
                    self._queue = None
                return command  # a publish: more may follow it out
        if not queue:
            self._queue = None
        return self._current

    def _hand_out(self, command: Subscribe | Publish) -> bool:
        """Hand ``command`` out, if this connection may do it; True if it is a publish."""
        try:
            if isinstance(command, Subscribe):
                self.permissions.check_subscribe(command.channel)
            else:
                self.permissions.check_publish(command.channel)
        except ClientError as exc:
            self._refuse(command, exc)
            return False
        if isinstance(command, Publish):
            self._publishing = deque([[command, None]])
            return True
        self._current = command
        return False

    def subscribed(self, command: Subscribe, cursor: str, recovered: bool | None) -> None:
        """The subscribe ran: live delivery continues after ``cursor``.

        ``recovered`` is None when the command carried no cursor, else whether
        every missed message follows (the driver sends them right after the reply).
        """
        self._done(command)
        self.subscriptions.add(command.channel)
        if recovered is None:
            self._outgoing.append(
                reply("subscribed", command.ref, channel=command.channel, cursor=cursor)
            )
        else:
            self._outgoing.append(
                reply(
                    "subscribed",
                    command.ref,
                    channel=command.channel,
                    cursor=cursor,
                    recovered=recovered,
                )
            )

    def unsubscribed(self, command: Unsubscribe) -> None:
        self._done(command)
        self.subscriptions.discard(command.channel)
        self._outgoing.append(reply("unsubscribed", command.ref, channel=command.channel))

    def presence_answered(self, command: PresenceQuery, members: list[bytes]) -> None:
        """The members (each a JSON object) of the channel asked about."""
        self._done(command)
        self._outgoing.append(
            reply(
                "presence",
                command.ref,
                channel=command.channel,
                members=[orjson.Fragment(member) for member in members],
            )
        )

    def refreshed(self, command: Refresh) -> None:
        """The new token was accepted (a refused one closes the connection)."""
        self._done(command)
        self._outgoing.append(reply("refreshed", command.ref))

    def ask_for_refresh(self) -> None:
        """The connection's token expired: ask the client for a new one."""
        self._outgoing.append(reply("refresh", None))

    def unsubscribed_by_server(self, channel: str) -> None:
        """The server took the subscription away (``POST /api/unsubscribe``)."""
        if channel in self.subscriptions:
            self.subscriptions.discard(channel)
            self._outgoing.append(reply("unsubscribed", None, channel=channel))

    def published(self, command: Publish, cursor: str) -> None:
        self._report(command, reply("published", command.ref, channel=command.channel, id=cursor))

    def failed(self, command: Action, exc: BaseException) -> None:
        """The action raised ``exc``: an error reply (an unexpected one is logged)."""
        self._report(command, self._error(command, exc))

    def abandoned(self, command: Action) -> None:
        """The connection closed while ``command`` ran: no reply."""
        self._report(command, b"")

    def _report(self, command: Action, answer: bytes) -> None:
        """``command`` is done: its reply (b"" for none) goes out, after any before it."""
        publishing = self._publishing
        if publishing and isinstance(command, Publish):
            for entry in publishing:
                if entry[0] is command and entry[1] is None:
                    entry[1] = answer
                    break
            else:
                raise RuntimeError("Publish was not the action handed out")
            while publishing and publishing[0][1] is not None:
                done = publishing.popleft()[1]
                if done:
                    self._outgoing.append(done)  # type: ignore[arg-type]
            if not publishing:
                self._publishing = None
            return
        self._done(command)
        if answer:
            self._outgoing.append(answer)

    def _done(self, command: Action) -> None:
        if command is not self._current:
            raise RuntimeError(f"{type(command).__name__} was not the action handed out")
        self._current = None

    def _error(self, command: Command, exc: BaseException) -> bytes:
        if self._on_refused is not None:
            self._on_refused(error_code(exc))
        return ws_error(exc, command.ref, context=type(command).__name__)

    def _refuse(self, command: Command, exc: BaseException) -> None:
        self._outgoing.append(self._error(command, exc))

    # Output.

    def data_to_send(self) -> list[bytes]:
        """Replies to send, in order (JSON objects; the driver frames them)."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def close(self) -> None:
        """The connection is gone: drop waiting commands and unsent replies."""
        self._queue = None
        # _current and _publishing stay: what runs finishes on its own and reports
        # here (a publish is not taken back); its reply is never sent.
        self._outgoing = []
