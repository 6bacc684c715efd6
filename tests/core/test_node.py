"""The node against a broker that drops, repeats and reorders, as Redis pub/sub may.

The broker here is the real embedded one (memory history), with its deliveries
to the node held back so that each test decides what arrives, twice or never.
"""

from __future__ import annotations

import asyncio
import time

from pushwire.brokers.memory import MemoryBroker
from pushwire.brokers.memory_history import MemoryHistoryStore
from pushwire.core.channels import ChannelRule, ChannelRules
from pushwire.core.history import Gap, Publication
from pushwire.core.hub import Batch, Feed
from pushwire.core.node import Node
from pushwire.errors import Disconnect
from tests.relaying_broker import RelayingBroker
from tests.waiting import wait_until


class HeldBroker(RelayingBroker):
    """The memory broker, except that publications reach the node only when released."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Publication] = []
        self.unsubscribe_gate: asyncio.Event | None = None

    def relay(self, publication: Publication) -> None:
        self.held.append(publication)

    def release(self, *publications: Publication) -> None:
        self.deliver(*publications)

    async def unsubscribe(self, channel: str) -> None:
        if self.unsubscribe_gate is not None:
            await self.unsubscribe_gate.wait()
        await super().unsubscribe(channel)


class Recorder:
    """A wire format and a sink in one: records the items it is sent, as (kind, offset)."""

    answers_once = False
    transport = "recorder"

    def __init__(self) -> None:
        self.received: list[tuple[str, int]] = []

    def encode(self, batch: Batch, feed: Feed) -> bytes:
        for item in batch.items:
            kind = "gap" if isinstance(item, Gap) else "pub"
            self.received.append((kind, item.position.offset))
        return b""

    def write(self, data: bytes) -> bool:
        return True

    def close(self, reason: Disconnect) -> None:
        pass


async def _node(history_size: int = 100) -> tuple[Node, HeldBroker]:
    broker = HeldBroker()
    node = Node(broker, ChannelRules([ChannelRule(history_size=history_size)]))
    await node.start()
    return node, broker


async def _listen(node: Node, channel: str) -> Recorder:
    recorder = Recorder()
    state = await node.open_channel(channel)
    node.hub.join(recorder, (state,), recorder)
    node.hub.release(state)
    return recorder


async def _publish(node: Node, broker: HeldBroker, count: int) -> list[Publication]:
    for n in range(count):
        await node.publish("c", n)
    published, broker.held = broker.held, []
    return published


async def test_a_publication_delivered_twice_reaches_subscribers_once() -> None:
    node, broker = await _node()
    recorder = await _listen(node, "c")
    first, second = await _publish(node, broker, 2)

    broker.release(first, first, second, first)
    await wait_until(lambda: len(recorder.received) >= 2)
    await asyncio.sleep(0.01)  # let any wrong extra delivery arrive

    assert recorder.received == [("pub", 1), ("pub", 2)]


async def test_publications_out_of_order_are_delivered_in_order() -> None:
    node, broker = await _node()
    recorder = await _listen(node, "c")
    one, two, three = await _publish(node, broker, 3)

    broker.release(three, one, two)
    await wait_until(lambda: len(recorder.received) >= 3)

    assert recorder.received == [("pub", 1), ("pub", 2), ("pub", 3)]


async def test_a_dropped_publication_is_filled_from_history() -> None:
    node, broker = await _node()
    recorder = await _listen(node, "c")
    one, _two, three = await _publish(node, broker, 3)

    broker.release(one, three)
    await wait_until(lambda: len(recorder.received) >= 3)

    assert recorder.received == [("pub", 1), ("pub", 2), ("pub", 3)]


async def test_a_hole_history_no_longer_holds_is_reported_as_a_gap() -> None:
    node, broker = await _node(history_size=2)
    recorder = await _listen(node, "c")
    published = await _publish(node, broker, 5)  # history keeps 4 and 5

    broker.release(published[0], published[4])
    await wait_until(lambda: len(recorder.received) >= 4)

    assert recorder.received == [("pub", 1), ("gap", 3), ("pub", 4), ("pub", 5)]


async def test_a_new_epoch_is_reported_as_a_gap_and_delivery_continues() -> None:
    node, broker = await _node()
    recorder = await _listen(node, "c")
    (one,) = await _publish(node, broker, 1)
    broker.release(one)
    await wait_until(lambda: len(recorder.received) >= 1)
    # The broker's history is lost (a restart): a new store, a new epoch.
    broker.inner = MemoryBroker(MemoryHistoryStore())
    await broker.inner.start(broker)
    fresh = await _publish(node, broker, 2)

    broker.release(*fresh)
    await wait_until(lambda: len(recorder.received) >= 2)
    await asyncio.sleep(0.01)

    assert recorder.received[0] == ("pub", 1)
    assert recorder.received[1][0] == "gap"
    state = node.hub.channel("c")
    assert state is not None
    assert state.delivered == fresh[-1].position


async def test_after_the_broker_resubscribes_what_was_missed_is_delivered() -> None:
    node, broker = await _node()
    recorder = await _listen(node, "c")
    await _publish(node, broker, 2)  # published while the node was cut off: never released

    node.on_resubscribed()
    await wait_until(lambda: len(recorder.received) >= 2)

    assert recorder.received == [("pub", 1), ("pub", 2)]


async def test_an_unsubscribe_still_in_flight_does_not_leave_the_node_deaf() -> None:
    node, broker = await _node()
    broker.unsubscribe_gate = asyncio.Event()
    recorder = await _listen(node, "c")
    (feed,) = node.hub.channel("c").feeds.values()  # type: ignore[union-attr]
    node.hub.leave(feed, recorder)  # the last subscriber leaves: an unsubscribe starts
    await asyncio.sleep(0)

    resubscribing = asyncio.create_task(_listen(node, "c"))  # and one comes back at once
    await asyncio.sleep(0.01)
    broker.unsubscribe_gate.set()
    await resubscribing
    await asyncio.sleep(0.01)

    assert "c" in broker.subscribed


async def test_a_new_epoch_on_a_channel_nothing_was_delivered_on_is_no_gap() -> None:
    store = MemoryHistoryStore(meta_ttl_seconds=0)
    broker = MemoryBroker(store)
    node = Node(broker, ChannelRules([ChannelRule(history_size=10)]))
    await node.start()
    recorder = await _listen(node, "quiet")  # opened at the store's epoch, offset 0
    await node.publish("other", 1)
    store.sweep(now=time.time() + 1)  # forgets "other": new streams get a new epoch

    await node.publish("quiet", "first")
    await wait_until(lambda: recorder.received, message="the first publication")

    assert recorder.received == [("pub", 1)]
    await node.close()
