"""Outlets: the node's seam for bridges, checked before a publish and awaited after it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pushwire.brokers.memory import MemoryBroker
from pushwire.brokers.memory_history import MemoryHistoryStore
from pushwire.core.channels import ChannelRules
from pushwire.core.history import Publication
from pushwire.core.node import Node
from pushwire.errors import BridgeUnavailableError, InvalidChannelError


class RecordingOutlet:
    """Notes what it is asked, and what history held when it was asked."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.checked: list[str] = []
        self.sent: list[tuple[Publication, int]] = []
        self.refuse: Exception | None = None
        self.fail: Exception | None = None

    def check(self, channel: str) -> None:
        self.checked.append(channel)
        if self.refuse is not None:
            raise self.refuse

    async def send(self, publication: Publication) -> None:
        page = await self.node.history(publication.channel, limit=10)
        self.sent.append((publication, len(page.publications)))
        if self.fail is not None:
            raise self.fail


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    made = Node(MemoryBroker(MemoryHistoryStore()), ChannelRules([]))
    await made.start()
    yield made
    await made.close()


async def test_a_publication_goes_out_after_it_is_in_history(node: Node) -> None:
    outlet = RecordingOutlet(node)
    node.outlets.add("devices:", outlet)

    publication = await node.publish("devices:42:commands", {"led": "on"})

    assert outlet.checked == ["devices:42:commands"]
    assert outlet.sent == [(publication, 1)]


async def test_channels_outside_the_prefix_and_incoming_publications_stay_in(node: Node) -> None:
    outlet = RecordingOutlet(node)
    node.outlets.add("devices:", outlet)

    await node.publish("chat:lobby", "hi")
    await node.publish_json("devices:42:telemetry", b"1", to_outlet=False)

    assert outlet.checked == []
    assert outlet.sent == []


async def test_the_longest_prefix_takes_the_channel(node: Node) -> None:
    broad, narrow = RecordingOutlet(node), RecordingOutlet(node)
    node.outlets.add("site:", broad)
    node.outlets.add("site:berlin:", narrow)

    await node.publish("site:berlin:door", 1)
    await node.publish("site:paris:door", 2)

    assert narrow.checked == ["site:berlin:door"]
    assert broad.checked == ["site:paris:door"]


async def test_an_outlet_that_refuses_first_leaves_nothing_published(node: Node) -> None:
    outlet = RecordingOutlet(node)
    outlet.refuse = BridgeUnavailableError("not connected")
    node.outlets.add("devices:", outlet)

    with pytest.raises(BridgeUnavailableError):
        await node.publish("devices:42:commands", 1)
    outlet.refuse = InvalidChannelError("no topic")
    with pytest.raises(InvalidChannelError):
        await node.publish("devices:a/b", 1)

    assert (await node.history("devices:42:commands")).publications == ()
    assert outlet.sent == []


async def test_an_outlet_that_does_not_confirm_fails_the_publish_after_history(
    node: Node,
) -> None:
    outlet = RecordingOutlet(node)
    outlet.fail = BridgeUnavailableError("no PUBACK")
    node.outlets.add("devices:", outlet)

    with pytest.raises(BridgeUnavailableError, match="no PUBACK"):
        await node.publish("devices:42:commands", 1)

    assert len((await node.history("devices:42:commands")).publications) == 1
