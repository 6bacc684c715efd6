"""The Redis broker's surveys: one question to every node, their answers collected.

A question is published on ``PREFIX:survey`` (classic pub/sub: every node
listens, this one too) as ``NODE ASK QUESTION``; each node answers on the
asker's own topic, ``PREFIX:reply:NODE``, as ``ASK ANSWER``. The asker waits for
as many answers as the node registry lists live nodes, and never longer than
``_SURVEY_SECONDS``: a survey is for statistics and best-effort commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from typing import Any

from redis.exceptions import RedisError

from pushwire.brokers.redis_link import RedisLink
from pushwire.brokers.redis_nodes import NodeRegistry
from pushwire.core.broker import BrokerEvents
from pushwire.errors import BrokerUnavailableError

__all__ = ["RedisSurveys", "survey_topics"]

logger = logging.getLogger("pushwire.redis")

_SURVEY_SECONDS = 1.0  # how long a survey waits for nodes that do not answer


def survey_topics(prefix: str, node: str) -> tuple[bytes, bytes]:
    """Where every node hears questions, and where ``node`` hears the answers to its own."""
    return f"{prefix}:survey".encode(), f"{prefix}:reply:{node}".encode()


class RedisSurveys:
    """Asks surveys, answers other nodes' questions, and collects the answers to ours."""

    def __init__(self, link: RedisLink, nodes: NodeRegistry, *, prefix: str, node: str) -> None:
        self._link = link
        self._nodes = nodes
        self._prefix = prefix
        self._node = node
        self._question_topic, _ = survey_topics(prefix, node)
        self._open: dict[str, tuple[list[bytes], asyncio.Event]] = {}
        self._replies: set[asyncio.Task[None]] = set()

    async def ask(self, question: bytes) -> list[bytes]:
        """Ask every live node ``question``; the answers that came within the wait.

        Raises:
            BrokerUnavailableError: Redis could not count the nodes or take the question.
        """
        with contextlib.suppress(RedisError):
            await self._nodes.forget_expired(self._link.client)
        try:
            live = await self._nodes.count(self._link.client)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailableError(f"Redis did not answer: {exc}") from None
        ask = secrets.token_hex(8)
        answers: list[bytes] = []
        done = asyncio.Event()
        self._open[ask] = (answers, done)
        try:
            message = self._node.encode() + b" " + ask.encode() + b" " + question
            try:
                await self._link.client.publish(self._question_topic, message)
            except (RedisError, OSError) as exc:
                raise BrokerUnavailableError(f"Redis did not answer: {exc}") from None
            expected = max(live, 1)
            deadline = asyncio.get_running_loop().time() + _SURVEY_SECONDS
            while len(answers) < expected:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                done.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), remaining)
            return list(answers)
        finally:
            del self._open[ask]

    def on_question(self, message: bytes, events: BrokerEvents | None) -> None:
        """A question (from any node, this one too): the node answers it to the asker."""
        if events is None:
            return
        asker, ask, question = message.split(b" ", 2)
        try:
            answer = events.on_survey(question)
        except Exception:
            logger.warning("cannot answer a survey", exc_info=True)
            return
        _, topic = survey_topics(self._prefix, asker.decode())
        self._spawn(self._reply(topic, ask + b" " + answer))

    def on_answer(self, message: bytes) -> None:
        """An answer to this node's question: kept if the survey is still open."""
        ask, answer = message.split(b" ", 1)
        survey = self._open.get(ask.decode())
        if survey is not None:
            survey[0].append(answer)
            survey[1].set()

    def stop(self) -> None:
        """Give up answers not yet sent (the broker is closing)."""
        for task in self._replies:
            task.cancel()

    async def _reply(self, topic: bytes, message: bytes) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._link.client.publish(topic, message)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)
