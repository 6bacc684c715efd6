"""Who may subscribe and publish: channel rules, tokens' channels, user and DM channels."""

from __future__ import annotations

import pytest

from pushwire.core.channels import ChannelRule, ChannelRules
from pushwire.core.identity import ANONYMOUS, Identity
from pushwire.core.permissions import ChannelPermissions, dm_channel, owners_of
from pushwire.errors import PermissionDeniedError, UnauthorizedError

RULES = ChannelRules(
    [
        ChannelRule(prefix="members:", subscribe="authenticated", publish="authenticated"),
        ChannelRule(prefix="vip:", subscribe="token"),
        ChannelRule(prefix="news:", publish="none"),
    ]
)


def _as(user: str | None, channels: frozenset[str] = frozenset()) -> ChannelPermissions:
    identity = ANONYMOUS if user is None else Identity(user, None, channels, None)
    return ChannelPermissions(RULES, identity)


def test_public_channels_are_open_to_anyone() -> None:
    _as(None).check_subscribe("lobby")
    _as(None).check_publish("lobby")


def test_authenticated_channels_refuse_anonymous_connections_with_401() -> None:
    with pytest.raises(UnauthorizedError):
        _as(None).check_subscribe("members:1")
    with pytest.raises(UnauthorizedError):
        _as(None).check_publish("members:1")

    _as("alice").check_subscribe("members:1")
    _as("alice").check_publish("members:1")


def test_token_channels_need_the_channel_in_the_token() -> None:
    with pytest.raises(PermissionDeniedError):
        _as("alice").check_subscribe("vip:room")

    _as("alice", frozenset({"vip:room"})).check_subscribe("vip:room")


def test_a_channel_listed_in_the_token_is_open_whatever_the_rule() -> None:
    _as("alice", frozenset({"members:x"})).check_subscribe("members:x")


def test_publish_none_refuses_every_client() -> None:
    with pytest.raises(PermissionDeniedError):
        _as("alice", frozenset({"news:1"})).check_publish("news:1")


def test_a_user_channel_belongs_to_its_user_only() -> None:
    _as("alice").check_subscribe("user:alice")

    with pytest.raises(PermissionDeniedError):
        _as("bob").check_subscribe("user:alice")
    with pytest.raises(UnauthorizedError):
        _as(None).check_subscribe("user:alice")
    with pytest.raises(PermissionDeniedError):
        _as("bob", frozenset({"user:alice"})).check_subscribe("user:alice")


def test_a_dm_channel_belongs_to_its_two_users_who_may_publish() -> None:
    channel = dm_channel("bob", "alice")

    assert channel == "dm:alice,bob"
    for user in ("alice", "bob"):
        _as(user).check_subscribe(channel)
        _as(user).check_publish(channel)
    with pytest.raises(PermissionDeniedError):
        _as("carol").check_subscribe(channel)
    with pytest.raises(PermissionDeniedError):
        _as("carol").check_publish(channel)


@pytest.mark.parametrize(
    "channel", ["user:", "user:a,b", "dm:bob,alice", "dm:alice", "dm:alice,alice", "dm:a,b,c"]
)
def test_malformed_user_and_dm_channels_are_refused_to_everyone(channel: str) -> None:
    assert owners_of(channel) == frozenset()
    for user in ("alice", "bob", "a", "b"):
        with pytest.raises(PermissionDeniedError):
            _as(user).check_subscribe(channel)


def test_a_refusal_does_not_say_whether_the_user_exists() -> None:
    with pytest.raises(PermissionDeniedError) as refused:
        _as("bob").check_subscribe("user:alice")

    assert "exist" not in str(refused.value)


@pytest.mark.parametrize(
    ("field", "value"), [("subscribe", "everyone"), ("publish", "token"), ("history_size", -1)]
)
def test_a_rule_with_an_unknown_access_value_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ChannelRule(**{field: value})  # type: ignore[arg-type]
