"""Group commit for the Redis broker: every script call of one moment in one round trip.

Publishes and presence changes arrive from many requests at once. Each waiting
for its own round trip would spend the node's CPU on syscalls and Redis's on
reading tiny commands; instead calls queue here, and one flusher sends all that
queued while the previous batch was in flight, as one pipeline, in order. Order
matters: a user's join and leave on one channel must reach Redis as they were made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError

from pushwire.brokers.redis_scripts import SCRIPTS, Script
from pushwire.errors import BrokerUnavailableError

__all__ = ["ScriptPipe", "await_answer"]

_MAX_BATCH = 1000  # calls per round trip: bounds the size of one pipeline

# A script with its keys and arguments (or None and a plain command), and its future.
_Call = tuple[Script | None, Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]


class ScriptPipe:
    """Runs Lua scripts (by their SHA) in batches over one client, in call order.

    On Redis Cluster the client is a ``RedisCluster``: its pipeline sends each call
    to the primary owning its keys' slot (one pipeline per primary, at once), so
    calls on one channel keep their order; ``SCRIPT LOAD`` goes to every primary.
    """

    __slots__ = ("_client", "_flusher", "_queue", "_shas")

    def __init__(self, client: Redis | RedisCluster) -> None:
        self._client = client
        self._shas: dict[str, str] = {}
        self._queue: list[_Call] = []
        self._flusher: asyncio.Task[None] | None = None

    def use(self, client: Redis | RedisCluster) -> None:
        """Send from now on through ``client`` (a Redis Cluster, once it is known as one)."""
        self._client = client
        self._shas.clear()

    async def load(self) -> None:
        """Load every script (again: a restarted Redis has forgotten them)."""
        for script in SCRIPTS:
            self._shas[script.name] = str(await self._client.script_load(script.source))

    def call(
        self, script: Script, keys: Sequence[bytes], args: Sequence[Any]
    ) -> asyncio.Future[Any]:
        """Queue one script call; the future gets its result, or the RedisError it raised."""
        return self._enqueue((script, keys, args, self._future()))

    def call_command(self, *command: Any) -> asyncio.Future[Any]:
        """Queue a plain command, in order with the scripts."""
        return self._enqueue((None, command, (), self._future()))

    @staticmethod
    def _future() -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def _enqueue(self, call: _Call) -> asyncio.Future[Any]:
        future = call[3]
        self._queue.append(call)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return future

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        self._fail(self._queue, RedisError("the broker is closed"))
        self._queue = []

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
                await self._send(batch)
        finally:
            self._flusher = None

    async def _send(self, batch: list[_Call]) -> None:
        try:
            results = await self._execute(batch)
            again = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
            if again:
                # Redis restarted (or SCRIPT FLUSH): load them again, and run once more
                # only the calls that did not run (the others must not run twice).
                await self.load()
                retried = await self._execute([batch[i] for i in again])
                for i, result in zip(again, retried, strict=True):
                    results[i] = result
        except asyncio.CancelledError:
            self._fail(batch, RedisError("the broker is closed"))
            raise
        except RedisError as exc:
            self._fail(batch, exc)
            return
        for (_, _, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        if not self._shas:
            await self.load()
        pipe = self._client.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            if script is None:
                pipe.execute_command(*keys)
            else:
                pipe.execute_command("EVALSHA", self._shas[script.name], len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    @staticmethod
    def _fail(batch: list[_Call], error: BaseException) -> None:
        for _, _, _, future in batch:
            if not future.done():
                future.set_exception(error)


async def await_answer(call: asyncio.Future[Any], timeout_seconds: float) -> Any:
    """The result of a queued call, as the broker's callers see a failure.

    Raises:
        BrokerUnavailableError: Redis failed the call, or did not answer in time.
    """
    try:
        return await asyncio.wait_for(call, timeout_seconds)
    except (RedisError, OSError, TimeoutError) as exc:
        raise BrokerUnavailableError(f"Redis did not answer: {exc}") from None
