"""What a connection may do on a channel, given who it is and the channel's rule.

Two kinds of channel need no rule: ``user:ID`` belongs to the user ``ID`` (all of
their connections, and no one else's), and ``dm:A,B`` to the users ``A`` and ``B``
(their ids sorted, so that a conversation has one name). Anything else under
those prefixes is refused. Refusals never say whether a channel or user exists.
"""

from __future__ import annotations

from pushwire.core.channels import MAX_CHANNEL_LENGTH, ChannelRule, ChannelRules
from pushwire.core.identity import ANONYMOUS, Identity
from pushwire.errors import InvalidChannelError, PermissionDeniedError, UnauthorizedError

__all__ = [
    "DEMO_CHANNEL_PREFIX",
    "DEMO_USER_PREFIX",
    "DM_PREFIX",
    "USER_PREFIX",
    "ChannelPermissions",
    "dm_channel",
    "owners_of",
]

USER_PREFIX = "user:"
DM_PREFIX = "dm:"
# Users of the demo chat (server.demo) and its channels. A demo user reaches only the
# demo's channels, its own user channel, DMs with other demo users and channels open
# to anyone: a running demo opens nothing of the application's.
DEMO_USER_PREFIX = "demo-"
DEMO_CHANNEL_PREFIX = "demo:"


def dm_channel(a: str, b: str) -> str:
    """The private channel of users ``a`` and ``b`` (the same either way round)."""
    first, second = sorted((a, b))
    return f"{DM_PREFIX}{first},{second}"


def owners_of(channel: str) -> frozenset[str] | None:
    """The users a ``user:`` or ``dm:`` channel belongs to; None for other channels.

    An empty set for a malformed name under those prefixes: no one may use it.
    """
    if channel.startswith(USER_PREFIX):
        user = channel[len(USER_PREFIX) :]
        return frozenset({user}) if user and "," not in user else frozenset()
    if channel.startswith(DM_PREFIX):
        users = channel[len(DM_PREFIX) :].split(",")
        if len(users) == 2 and all(users) and users[0] < users[1]:
            return frozenset(users)
        return frozenset()
    return None


class ChannelPermissions:
    """The checks for one connection; raise, or return None when allowed.

    Raises ``UnauthorizedError`` where a token would help (the connection is
    anonymous) and ``PermissionDeniedError`` where it would not.
    """

    __slots__ = ("identity", "max_channel_length", "rules")

    def __init__(
        self,
        rules: ChannelRules,
        identity: Identity = ANONYMOUS,
        *,
        max_channel_length: int = MAX_CHANNEL_LENGTH,
    ) -> None:
        self.rules = rules
        self.identity = identity
        self.max_channel_length = max_channel_length

    def _check_length(self, channel: str) -> None:
        if len(channel) > self.max_channel_length:
            raise InvalidChannelError(
                f"channel is longer than {self.max_channel_length} characters"
            )

    def check_subscribe(self, channel: str) -> None:
        self._check_length(channel)
        identity = self.identity
        owners = owners_of(channel)
        if owners is not None:
            self._check_owner(owners, "subscribe to", channel)
            return
        access = self.rules.rule_for(channel).subscribe
        if self._is_demo() and access != "anyone" and not channel.startswith(DEMO_CHANNEL_PREFIX):
            raise PermissionDeniedError(f"demo users may not subscribe to {channel!r}")
        if channel in identity.channels:
            return  # the token grants it
        if access == "anyone":
            return
        if identity.is_anonymous:
            raise UnauthorizedError(f"subscribing to {channel!r} needs a token")
        if access == "token":
            raise PermissionDeniedError(f"the token does not allow subscribing to {channel!r}")

    def check_publish(self, channel: str) -> None:
        self._check_length(channel)
        rule: ChannelRule = self.rules.rule_for(channel)
        if rule.publish == "none":
            raise PermissionDeniedError(f"clients may not publish to {channel!r}")
        owners = owners_of(channel)
        if owners is not None:
            self._check_owner(owners, "publish to", channel)
            return
        if (
            self._is_demo()
            and rule.publish != "anyone"
            and not channel.startswith(DEMO_CHANNEL_PREFIX)
        ):
            raise PermissionDeniedError(f"demo users may not publish to {channel!r}")
        if rule.publish == "authenticated" and self.identity.is_anonymous:
            raise UnauthorizedError(f"publishing to {channel!r} needs a token")

    def _is_demo(self) -> bool:
        user = self.identity.user
        return user is not None and user.startswith(DEMO_USER_PREFIX)

    def _check_owner(self, owners: frozenset[str], action: str, channel: str) -> None:
        user = self.identity.user
        if user is None:
            raise UnauthorizedError(f"to {action} {channel!r} you need a token")
        if user not in owners:
            raise PermissionDeniedError(f"not allowed to {action} {channel!r}")
        if self._is_demo() and not all(owner.startswith(DEMO_USER_PREFIX) for owner in owners):
            raise PermissionDeniedError(f"not allowed to {action} {channel!r}")
