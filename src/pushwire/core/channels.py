"""Channel names and the per-prefix rules that say how a channel behaves.

A rule applies to every channel whose name starts with its prefix; the longest
matching prefix wins, and the rule with prefix ``""`` is the default.
"""

from __future__ import annotations

from dataclasses import dataclass

from pushwire.core.finite import non_finite_field
from pushwire.protocol.names import MAX_CHANNEL_LENGTH, validate_channel

__all__ = [
    "MAX_CHANNEL_LENGTH",
    "PUBLISH_ACCESS",
    "SUBSCRIBE_ACCESS",
    "ChannelRule",
    "ChannelRules",
    "validate_channel",
]


#: Who may subscribe: anyone, any connection with a valid token, or only connections
#: whose token lists the channel (its ``channels`` claim).
SUBSCRIBE_ACCESS = ("anyone", "authenticated", "token")
#: Who may publish as a client (backends with the API key always may).
PUBLISH_ACCESS = ("anyone", "authenticated", "none")


@dataclass(frozen=True, slots=True)
class ChannelRule:
    """How channels under one prefix behave.

    Attributes:
        prefix: channel-name prefix this rule covers ("" covers everything).
        history_size: publications kept per channel (0 keeps none: no recovery).
        history_ttl_seconds: publications older than this are dropped from history.
        subscribe: who may subscribe (:data:`SUBSCRIBE_ACCESS`).
        publish: who may publish from a client connection (:data:`PUBLISH_ACCESS`).
        presence: whether the channel keeps a list of the users subscribed to it.
        join_leave: whether subscribers are told when a user joins or leaves; off by
            default, as each join costs one delivery per subscriber.
    """

    prefix: str = ""
    history_size: int = 1000
    history_ttl_seconds: float = 86400.0
    subscribe: str = "anyone"
    publish: str = "anyone"
    presence: bool = False
    join_leave: bool = False

    def __post_init__(self) -> None:
        if self.subscribe not in SUBSCRIBE_ACCESS:
            raise ValueError(
                f"subscribe must be one of {', '.join(SUBSCRIBE_ACCESS)}, not {self.subscribe!r}"
            )
        if self.publish not in PUBLISH_ACCESS:
            raise ValueError(
                f"publish must be one of {', '.join(PUBLISH_ACCESS)}, not {self.publish!r}"
            )
        if self.history_size < 0:
            raise ValueError("history_size must not be negative")
        unbounded = non_finite_field(self)
        if unbounded is not None:
            value = getattr(self, unbounded)
            raise ValueError(f"{unbounded} must be a finite number, not {value}")


# Enough for every channel in use; a flood of made-up names only costs a refill.
_MAX_CACHED_RULES = 4096


class ChannelRules:
    """Finds the rule for a channel name; caches answers, since names repeat."""

    __slots__ = ("_cache", "_rules")

    def __init__(self, rules: list[ChannelRule]) -> None:
        by_prefix = {rule.prefix: rule for rule in rules}
        by_prefix.setdefault("", ChannelRule())
        # Longest prefix first, so the first match is the most specific rule.
        self._rules = sorted(by_prefix.values(), key=lambda rule: len(rule.prefix), reverse=True)
        self._cache: dict[str, ChannelRule] = {}

    def rule_for(self, channel: str) -> ChannelRule:
        """The most specific rule whose prefix ``channel`` starts with."""
        rule = self._cache.get(channel)
        if rule is None:
            rule = next(r for r in self._rules if channel.startswith(r.prefix))
            if len(self._cache) >= _MAX_CACHED_RULES:
                self._cache.clear()  # made-up names must not grow it: start again
            self._cache[channel] = rule
        return rule
