"""Outlets: systems outside pushwire that publications on some channels also go to.

A bridge (``server.mqtt_bridge``) registers an outlet for a channel prefix. The
node hands an outlet each publication on its channels that was *published at
this node* (a client's or the API's), and waits for it before acknowledging the
publish. Publications that arrive from other nodes, and delivery to subscribers,
never pass here: each publication goes out once, from the node that took it.
"""

from __future__ import annotations

from typing import Protocol

from pushwire.core.history import Publication

__all__ = ["Outlet", "Outlets"]


class Outlet(Protocol):
    """Where publications on a prefix's channels also go (an MQTT broker)."""

    def check(self, channel: str) -> None:
        """Raise if a publication on ``channel`` could not go out now.

        Called before the publication is made, so that a refusal publishes nothing.

        Raises:
            ClientError: the channel cannot be carried (its name has no counterpart).
            ServerError: the outlet's link is down just now.
        """

    async def send(self, publication: Publication) -> None:
        """Hand ``publication`` on; return once the other side has confirmed it.

        Raises:
            ServerError: it was not confirmed (the publication stays in history).
        """


class Outlets:
    """The outlets of one node, by channel prefix; the longest matching prefix wins."""

    __slots__ = ("_by_prefix",)

    def __init__(self) -> None:
        self._by_prefix: list[tuple[str, Outlet]] = []

    def add(self, prefix: str, outlet: Outlet) -> None:
        """Send publications on channels starting with ``prefix`` to ``outlet`` too."""
        self._by_prefix.append((prefix, outlet))
        self._by_prefix.sort(key=lambda entry: len(entry[0]), reverse=True)

    def outlet_for(self, channel: str) -> Outlet | None:
        """The outlet of ``channel``, if any (a node without outlets answers at once)."""
        for prefix, outlet in self._by_prefix:
            if channel.startswith(prefix):
                return outlet
        return None
