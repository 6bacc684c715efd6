"""What the two halves of the NATS broker share: names, snapshot reads, failures.

Every stream, bucket and subject begins with the prefix; a channel or user name
becomes one subject token. A snapshot reads what a stream holds now through an
ephemeral consumer. Every failure to reach NATS becomes BrokerUnavailableError.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.manager import JetStreamManager

from pushwire.errors import BrokerUnavailableError, UsageError

__all__ = [
    "STREAM_NAME_IN_USE",
    "KeyedLocks",
    "NatsNames",
    "is_deleted",
    "reach_nats",
    "read_snapshot",
    "token",
]

#: JetStream's error code for "a stream of that name exists with another configuration".
STREAM_NAME_IN_USE = 10058

# Stream and bucket names allow less than subjects do; the prefix is part of both.
_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A consumer this node forgot to delete (it died mid-read) goes after this long unused.
_CONSUMER_INACTIVE_SECONDS = 10.0

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def token(name: str) -> str:
    """``name`` as one subject token (and KV key part): base64url, no padding.

    Channel names may hold ``.`` (the token separator), and users anything at all,
    so neither is ever used raw in a subject.
    """
    return base64.urlsafe_b64encode(name.encode()).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class NatsNames:
    """Every name the NATS broker uses on the server, derived from one prefix."""

    prefix: str

    def __post_init__(self) -> None:
        if _PREFIX.fullmatch(self.prefix) is None:
            raise UsageError(
                f"a NATS broker prefix is 1-64 letters, digits, '_' or '-'; not {self.prefix!r}"
            )

    @property
    def stream(self) -> str:
        """The JetStream stream holding every channel's history."""
        return f"{self.prefix}_history"

    @property
    def presence_bucket(self) -> str:
        return f"{self.prefix}_presence"

    @property
    def nodes_bucket(self) -> str:
        return f"{self.prefix}_nodes"

    @property
    def history_subjects(self) -> str:
        return f"{self.prefix}.h.*"

    def history(self, channel: str) -> str:
        """Where ``channel``'s publications are stored (one subject per channel)."""
        return f"{self.prefix}.h.{token(channel)}"

    @property
    def republished(self) -> str:
        """Where the stream republishes what it stored: ``P.c.<channel>.p``."""
        return f"{self.prefix}.c.{{{{wildcard(1)}}}}.p"

    def channel(self, channel: str) -> str:
        """Everything a subscribed node hears of ``channel``: publications and presence."""
        return f"{self.prefix}.c.{token(channel)}.*"

    def presence_events(self, channel: str) -> str:
        return f"{self.prefix}.c.{token(channel)}.e"

    @property
    def survey(self) -> str:
        return f"{self.prefix}.survey"

    @property
    def hello(self) -> str:
        """Where a starting node says it is alive, before any registry read shows it."""
        return f"{self.prefix}.hello"


async def reach_nats(what: str, timeout_seconds: float, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result; NATS failing, or not answering in ``timeout_seconds``, raises
    BrokerUnavailableError (naming ``what`` was being done).

    ``work`` runs in a task of its own, which is what gets cancelled on timeout: a
    broker call may be started eagerly (``core.eager``), its first step running in no
    task or in its caller's, so ``asyncio.timeout`` around it would have no task, or
    the wrong one, to cancel.
    """
    task = asyncio.get_running_loop().create_task(work)
    try:
        await asyncio.wait((task,), timeout=timeout_seconds)
    finally:
        finished = task.done()
        if not finished:  # timed out, or this caller was cancelled
            task.cancel()
            task.add_done_callback(_retrieve)  # whatever it ends with, nobody waits for it
    if not finished:
        raise BrokerUnavailableError(f"NATS did not answer {what} within {timeout_seconds:g} s")
    try:
        return task.result()
    except TimeoutError as exc:  # nats.errors.TimeoutError is one too
        raise BrokerUnavailableError(f"NATS did not answer {what} in time") from exc
    except (nats.errors.Error, OSError) as exc:
        raise BrokerUnavailableError(f"NATS failed {what}: {exc!r}") from exc


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def is_deleted(msg: Msg) -> bool:
    """A KV delete or purge marker: the key has no value."""
    headers = msg.headers
    return headers is not None and headers.get("KV-Operation") in ("DEL", "PURGE")


async def read_snapshot(
    connection: Client,
    manager: JetStreamManager,
    stream: str,
    subject: str,
    *,
    deliver_policy: DeliverPolicy,
    start_sequence: int | None = None,
    until: Callable[[Msg], bool] | None = None,
) -> list[Msg]:
    """What ``stream`` holds on ``subject`` now, in stream order, read by an ephemeral consumer.

    Reads until the consumer has nothing pending, or ``until`` says a message is the
    last one wanted. The caller bounds the time (see :func:`reach_nats`). The
    consumer lives in memory, acknowledges nothing and is deleted after.
    """
    inbox = connection.new_inbox()
    arrived: asyncio.Queue[Msg] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        arrived.put_nowait(msg)

    # Subscribed before the consumer exists (one connection keeps order), so nothing
    # it pushes can go to an inbox nobody listens on.
    subscription = await connection.subscribe(inbox, cb=collect)
    consumer: str | None = None
    try:
        config = ConsumerConfig(
            deliver_subject=inbox,
            filter_subject=subject,
            deliver_policy=deliver_policy,
            opt_start_seq=start_sequence,
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=_CONSUMER_INACTIVE_SECONDS,
        )
        info = await manager.add_consumer(stream, config=config)
        consumer = info.name
        messages: list[Msg] = []
        pending = info.num_pending or 0
        while pending > 0:
            msg = await arrived.get()
            messages.append(msg)
            if until is not None and until(msg):
                break
            pending = msg.metadata.num_pending
        return messages
    finally:
        with contextlib.suppress(nats.errors.Error):
            await subscription.unsubscribe()
        if consumer is not None and connection.is_connected:
            # Nobody waits for the answer: the server would delete it anyway, later.
            await connection.publish(f"$JS.API.CONSUMER.DELETE.{stream}.{consumer}")


class KeyedLocks(Generic[K]):
    """One lock per key, existing only while someone holds or awaits it.

    Waiters get the lock in the order they asked, so calls for one key that take
    it first thing take effect in the order they were made.
    """

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: dict[K, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: K) -> AsyncIterator[None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]
