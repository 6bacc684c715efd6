"""History for the NATS broker: one JetStream stream, one subject per channel.

How publications are appended (offsets, epochs, optimistic concurrency) and read
back (links, marks, consumers). Fan-out and the connection live in ``nats.py``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import (
    DeliverPolicy,
    DiscardPolicy,
    RawStreamMsg,
    RePublish,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext

from pushwire.brokers.nats_jetstream import STREAM_NAME_IN_USE, KeyedLocks, NatsNames, read_snapshot
from pushwire.brokers.registry import BrokerSettings
from pushwire.core.broker import HistoryOptions
from pushwire.core.history import HistoryPage, Publication, StreamPosition
from pushwire.errors import BrokerUnavailableError

__all__ = ["NatsHistory"]

logger = logging.getLogger("pushwire.brokers.nats")

# Headers stored with every publication (values are ASCII: NATS headers are text).
_EPOCH = "Pushwire-Epoch"
_OFFSET = "Pushwire-Offset"
_TIME = "Pushwire-Time"
_EVENT = "Pushwire-Event"  # base64url
_PUBLISHER = "Pushwire-Publisher"  # base64url
_MARKS = "Pushwire-Marks"
# The channel's previous message, checked by JetStream on append and kept with the
# message: a verified link from each publication to the one before it.
_PREVIOUS = "Nats-Expected-Last-Subject-Sequence"
_SEQUENCE = "Nats-Sequence"  # added by the stream when it republishes

_WRONG_LAST_SEQUENCE = 10071  # JetStream: the subject's last message is another one
_APPEND_ATTEMPTS = 64
# Each publication keeps the stream sequence of its channel's newest offset that is a
# multiple of each stride: a read far back starts there instead of at the oldest.
_MARK_STRIDES = (8, 64, 512)
# Reads ending this close to the top follow the links back instead of making a consumer.
_WALK_LIMIT = 4
_REMEMBERED_CHANNELS = 10_000


@dataclass(frozen=True, slots=True)
class _Stored:
    """A publication as the stream holds it, with what links it to its channel's others."""

    publication: Publication
    sequence: int  # in the stream
    previous: int  # the stream sequence of the channel's message before it (0: none)
    marks: tuple[int, ...]  # see _MARK_STRIDES (0: no such message)


class NatsHistory:
    """Every channel's history in stream ``P_history``, one subject ``P.h.C`` per channel.

    Per-subject limits: the newest ``max_history_size`` (at least one, which carries
    the channel's top position), none older than ``history_meta_ttl_seconds``. A
    channel's epoch and offset are in its messages' headers. An append reads the
    subject's last message (or remembers it), takes the next offset and tells
    JetStream which message it expects to be the subject's last; if another node
    appended first, JetStream refuses and the append reads again. So offsets count
    1, 2, 3 whichever nodes publish, and a new epoch begins only on an empty subject:
    when the channel's history is gone.

    The stream republishes what it stored to ``P.c.C.p``: only what JetStream
    stored is ever delivered, and no node crashing between storing and fanning out
    can leave a publication in history that was never fanned out (the server does
    both). Core NATS may still drop a delivery: the node fills such holes from
    history on the next publication.

    ``Publication.time`` is the publishing node's clock (or the injected one), kept
    in the headers, so every node reads the same time for a publication. It is not
    JetStream's timestamp: NATS 2.9 does not republish that, and reading it back
    would cost a round trip per publish. Nodes' clocks must be synchronised (NTP)
    for the order across channels to follow real time.
    """

    def __init__(
        self, names: NatsNames, settings: BrokerSettings, clock: Callable[[], float]
    ) -> None:
        self._names = names
        self._settings = settings
        self._clock = clock
        # Each channel's newest message this node knows of: what its next append expects.
        self._last: OrderedDict[str, _Stored] = OrderedDict()
        self._appending: KeyedLocks[str] = KeyedLocks()
        self._stream_created = ""

    async def ensure_stream(self, js: JetStreamContext) -> None:
        """Create the stream if missing. Idempotent, and safe when other nodes do it at
        the same time: JetStream accepts an identical configuration again."""
        names, settings = self._names, self._settings
        config = StreamConfig(
            name=names.stream,
            subjects=[names.history_subjects],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_msgs_per_subject=max(settings.max_history_size, 1),
            max_age=settings.history_meta_ttl_seconds,
            duplicate_window=min(settings.history_meta_ttl_seconds, 120.0),
            allow_direct=True,
            republish=RePublish(src=names.history_subjects, dest=names.republished),
        )
        try:
            info = await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
            # Made by a node configured otherwise (a rolling upgrade): the newest wins.
            logger.warning("stream %s had another configuration: updated", names.stream)
            info = await js.update_stream(config)
        self._stream_created = info.created.isoformat() if info.created else names.stream

    def forget(self) -> None:
        """Forget every remembered top (after a reconnect: the server may be another)."""
        self._last.clear()

    async def append(
        self,
        js: JetStreamContext,
        channel: str,
        data: bytes,
        event: str | None,
        publisher: bytes | None,
    ) -> Publication:
        """Store at the channel's next offset; returns once JetStream has it.

        One append per channel at a time on this node, so that they take offsets in
        the order they were called and do not race each other. The caller bounds the
        time; JetStream refusing anything but a stale expectation propagates.
        """
        subject = self._names.history(channel)
        async with self._appending.hold(channel):
            last = self._last.get(channel)
            if last is None:
                last = await self._read_last(js, channel)
            for _ in range(_APPEND_ATTEMPTS):
                now = self._clock()
                if last is None:  # no history: a new epoch
                    position = StreamPosition(self._empty_epoch(channel, now), 1)
                else:
                    top = last.publication.position
                    position = StreamPosition(top.epoch, top.offset + 1)
                publication = Publication(channel, position, data, event, now, publisher)
                previous = 0 if last is None else last.sequence
                marks = _next_marks(last)
                headers = _headers(publication, previous, marks)
                try:
                    ack = await js.publish(subject, data, headers=headers)
                except nats.js.errors.BadRequestError as exc:
                    if exc.err_code != _WRONG_LAST_SEQUENCE:
                        raise
                    # Another node appended since, or the history expired: read again.
                    logger.debug("appending to %r: the top moved, reading it again", channel)
                    last = await self._read_last(js, channel)
                    continue
                self._remember(_Stored(publication, ack.seq, previous, marks))
                return publication
        raise BrokerUnavailableError(f"publishing to {channel!r} kept losing to other nodes")

    def delivered(self, channel: str, msg: Msg) -> Publication:
        """The publication the stream republished in ``msg`` (and remember it as a top).

        Raises:
            ValueError: (or KeyError) if it is not one a NatsBroker stored.
        """
        sequence = int((msg.headers or {})[_SEQUENCE])
        stored = _stored(channel, msg.headers, msg.data, sequence)
        self._remember(stored)
        return stored.publication

    async def read(
        self,
        connection: Client,
        js: JetStreamContext,
        channel: str,
        *,
        since: StreamPosition | None,
        limit: int,
        options: HistoryOptions,
    ) -> HistoryPage:
        """Up to ``limit`` publications after ``since`` (or the newest), oldest first.

        ``options`` apply here: at most ``size`` newest, none older than the TTL (by
        this broker's clock), whatever the stream still holds. The caller bounds the time.
        """
        top = await self._read_last(js, channel)
        if top is None:
            return HistoryPage((), StreamPosition(self._empty_epoch(channel, self._clock()), 0))
        position = top.publication.position
        first, last = _wanted(position, since, limit, options.size)
        if first > last:
            return HistoryPage((), position)
        if position.offset - first < _WALK_LIMIT:
            found = await self._walk_back(js, top, first)
        else:
            found = await self._scan(connection, js, top, first, last)
        publications = [
            s.publication for s in found if first <= s.publication.position.offset <= last
        ]
        # Expire the oldest run only, as the embedded broker does: a page never has holes.
        oldest_allowed = self._clock() - options.ttl_seconds
        expired = next(
            (i for i, p in enumerate(publications) if p.time >= oldest_allowed), len(publications)
        )
        return HistoryPage(tuple(publications[expired:]), position)

    async def _read_last(self, js: JetStreamContext, channel: str) -> _Stored | None:
        """The channel's newest message, or None if it has no history (any more)."""
        try:
            raw = await js.get_last_msg(self._names.stream, self._names.history(channel), True)
        except nats.js.errors.NotFoundError:
            self._last.pop(channel, None)
            return None
        stored = _from_raw(channel, raw)
        self._remember(stored)
        return stored

    async def _walk_back(self, js: JetStreamContext, top: _Stored, first: int) -> list[_Stored]:
        """From the top back to offset ``first`` along the links: a round trip each."""
        found = [top]
        current = top
        while current.publication.position.offset > first and current.previous:
            try:
                raw = await js.get_msg(self._names.stream, seq=current.previous, direct=True)
            except nats.js.errors.NotFoundError:
                break  # trimmed or expired: the history begins after it
            current = _from_raw(top.publication.channel, raw)
            found.append(current)
        found.reverse()
        return found

    async def _scan(
        self, connection: Client, js: JetStreamContext, top: _Stored, first: int, last: int
    ) -> list[_Stored]:
        """Forward through an ephemeral consumer from the newest mark at or before ``first``
        (so it reads fewer than a stride's worth it does not return), up to ``last``."""
        channel = top.publication.channel
        start = _mark_at_or_before(top, first)

        def done(msg: Msg) -> bool:
            offset = int((msg.headers or {}).get(_OFFSET, "0"))
            return offset >= last or msg.metadata.sequence.stream >= top.sequence

        messages = await read_snapshot(
            connection,
            js,
            self._names.stream,
            self._names.history(channel),
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start else DeliverPolicy.ALL,
            start_sequence=start or None,
            until=done,
        )
        return [
            _stored(channel, msg.headers, msg.data, msg.metadata.sequence.stream)
            for msg in messages
        ]

    def _remember(self, stored: _Stored) -> None:
        """Keep the channel's newest known message (for a bounded number of channels)."""
        channel = stored.publication.channel
        known = self._last.get(channel)
        if known is not None and known.sequence >= stored.sequence:
            return
        self._last[channel] = stored
        self._last.move_to_end(channel)
        if len(self._last) > _REMEMBERED_CHANNELS:
            self._last.popitem(last=False)

    def _empty_epoch(self, channel: str, now: float) -> str:
        """The epoch of a channel without history: the one its next publication starts.

        The same on every node for half a meta TTL, so a client holding ``EPOCH-0``
        from an empty channel recovers the first publications instead of hearing of a
        gap. It changes with each half meta TTL (and with the stream), so a channel
        never gets back an epoch it had: its history is gone no sooner than a meta
        TTL after that epoch began.
        """
        window = max(self._settings.history_meta_ttl_seconds / 2, 1.0)
        seed = f"{self._stream_created}|{int(now // window)}|{channel}"
        return hashlib.blake2b(seed.encode(), digest_size=4).hexdigest()


def _headers(publication: Publication, previous: int, marks: tuple[int, ...]) -> dict[str, str]:
    position = publication.position
    headers = {
        _PREVIOUS: str(previous),
        _EPOCH: position.epoch,
        _OFFSET: str(position.offset),
        _TIME: repr(publication.time),  # repr: the float comes back exactly
        _MARKS: " ".join(map(str, marks)),
    }
    if publication.event is not None:
        headers[_EVENT] = _encode(publication.event.encode())
    if publication.publisher is not None:
        headers[_PUBLISHER] = _encode(publication.publisher)
    return headers


def _stored(
    channel: str, headers: Mapping[str, str] | None, data: bytes | None, sequence: int
) -> _Stored:
    """Raises ValueError (or KeyError) if the message is not one a NatsBroker stored."""
    if headers is None:
        raise ValueError("a message without pushwire headers")
    event, publisher = headers.get(_EVENT), headers.get(_PUBLISHER)
    publication = Publication(
        channel,
        StreamPosition(headers[_EPOCH], int(headers[_OFFSET])),
        data or b"",
        None if event is None else _decode(event).decode(),
        float(headers[_TIME]),
        None if publisher is None else _decode(publisher),
    )
    marks = [int(mark) for mark in headers.get(_MARKS, "").split()]
    marks += [0] * (len(_MARK_STRIDES) - len(marks))
    previous = int(headers.get(_PREVIOUS, "0"))
    return _Stored(publication, sequence, previous, tuple(marks[: len(_MARK_STRIDES)]))


def _from_raw(channel: str, raw: RawStreamMsg) -> _Stored:
    if raw.seq is None:
        raise ValueError("a stream message without a sequence")
    return _stored(channel, raw.headers, raw.data, raw.seq)


def _next_marks(last: _Stored | None) -> tuple[int, ...]:
    """The marks of the publication after ``last``: ``last`` itself where its offset is a
    multiple of the stride, else the same as ``last``'s."""
    if last is None:
        return (0,) * len(_MARK_STRIDES)
    offset = last.publication.position.offset
    return tuple(
        last.sequence if offset % stride == 0 else mark
        for stride, mark in zip(_MARK_STRIDES, last.marks, strict=True)
    )


def _mark_at_or_before(top: _Stored, first: int) -> int:
    """The stream sequence of the newest marked message at or before offset ``first`` (or 0)."""
    offset = top.publication.position.offset
    best_offset, best = 0, 0
    for stride, mark in zip(_MARK_STRIDES, top.marks, strict=True):
        marked = (offset - 1) // stride * stride
        if mark and best_offset < marked <= first:
            best_offset, best = marked, mark
    return best


def _wanted(
    top: StreamPosition, since: StreamPosition | None, limit: int, size: int
) -> tuple[int, int]:
    """The offsets a history read returns, first to last (none if first > last)."""
    if limit <= 0 or size <= 0 or (since is not None and since.epoch != top.epoch):
        return 1, 0
    first = top.offset - limit + 1 if since is None else since.offset + 1
    first = max(first, top.offset - size + 1, 1)
    return first, min(first + limit - 1, top.offset)


def _encode(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
