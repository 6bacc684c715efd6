"""Who a connection is: the verified user behind it, or nobody.

Pure data. Checking a token and turning it into an :class:`Identity` is the
server's job (see server.tokens); the core only reads the result.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANONYMOUS", "Identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    """The user a connection acts for, as a verified token says.

    Attributes:
        user: the user id (the token's ``sub``); None for an anonymous connection.
            Only ``A-Z a-z 0-9 _ . @ = + -``, so it fits into channel names such
            as ``user:ID`` and ``dm:A,B``.
        info: a JSON object shown to others in presence (the token's ``info``), or None.
        channels: channels the token lets this connection subscribe to beyond what
            the channel rules allow everyone.
        expires_at: when the token stops being valid (unix seconds), or None if never.
    """

    user: str | None
    info: dict[str, object] | None
    channels: frozenset[str]
    expires_at: float | None

    @property
    def is_anonymous(self) -> bool:
        """Whether no user stands behind this connection."""
        return self.user is None


#: A connection that presented no token.
ANONYMOUS = Identity(None, None, frozenset(), None)
