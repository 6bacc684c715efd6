"""Members counted per user across connections."""

from __future__ import annotations

from pushwire.core.presence import LocalPresence, Member


def test_the_first_connection_joins_and_the_last_leaves() -> None:
    presence = LocalPresence()

    firsts = [presence.add("room", "alice", {"n": i}) for i in range(3)]
    lasts = [presence.remove("room", "alice")[0] for _ in range(3)]

    assert firsts == [True, False, False]
    assert lasts == [False, False, True]
    assert presence.members("room") == []


def test_members_are_sorted_with_their_newest_info_and_connection_count() -> None:
    presence = LocalPresence()
    presence.add("room", "bob", None)
    presence.add("room", "alice", {"name": "A"})
    presence.add("room", "alice", {"name": "Alice"})

    assert presence.members("room") == [
        Member("alice", {"name": "Alice"}, 2),
        Member("bob", None, 1),
    ]


def test_removing_someone_never_added_changes_nothing() -> None:
    presence = LocalPresence()
    presence.add("room", "alice", None)

    assert presence.remove("room", "bob") == (False, None)
    assert presence.remove("other", "alice") == (False, None)
    assert [m.user for m in presence.members("room")] == ["alice"]
