"""Who a connection is: the user id and what its token says, or anonymous."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANONYMOUS", "Identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A connection's verified identity.

    Attributes:
        user: the user id (the token's ``sub``); None for an anonymous connection.
        info: a JSON object shown to others in presence (the ``info`` claim).
        channels: extra channels the token lets it subscribe to.
        expires_at: when the token expires (unix seconds), if it does.
    """

    user: str | None
    info: dict[str, object] | None
    channels: frozenset[str]
    expires_at: float | None

    @property
    def is_anonymous(self) -> bool:
        return self.user is None


ANONYMOUS = Identity(None, None, frozenset(), None)
