"""Hypothesis settings and strategies shared by the fuzz tests: JSON values, names, codes.

Every fuzz test runs with :data:`FUZZ`: derandomized (the same examples on every run,
so a failure in CI reproduces locally), no example database (nothing written to the
tree) and no deadline (a network round trip is not a slow parser).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings, strategies as st

from pushwire import errors

__all__ = [
    "CODES",
    "FUZZ",
    "channel_names",
    "cursors",
    "json_values",
    "refs",
    "texts",
]

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    # One server serves every example of a network test on purpose: what one example
    # does must not harm the next (the witness checks that).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _codes() -> frozenset[str]:
    found: set[str] = set()
    pending: list[type] = [errors.ClientError, errors.ServerError]
    while pending:
        cls = pending.pop()
        found.add(cls.code)  # type: ignore[attr-defined]
        pending.extend(cls.__subclasses__())
    return frozenset(found)


#: Every wire error code pushwire has (``pushwire.errors``).
CODES = _codes()

# Control characters, surrogates' neighbours, bidi overrides, NUL: what breaks naive code.
_NASTY = st.sampled_from(["\x00", "\n", "\r", "\t", "\x7f", "\u202e", "\ufeff", "\U0001f600"])
texts = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=300),
    st.lists(_NASTY, max_size=5).map("".join),
)

#: Channel names: valid ones, and every way of being wrong (long, unicode, control).
channel_names = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.:@/#,=+\-]{1,20}", fullmatch=True),
    st.from_regex(r"[a-z]{250,260}", fullmatch=True),
    texts,
)

# Offsets, near both ends: cursors carry up to 19 digits, storage takes 63 bits.
_offsets = st.one_of(st.integers(0, 10**6), st.integers(2**63 - 3, 10**19))
#: Cursors: well-formed, nearly well-formed, and anything at all.
cursors = st.one_of(
    st.builds("{}-{}".format, st.from_regex(r"[0-9a-f]{1,16}", fullmatch=True), _offsets),
    st.from_regex(r"[0-9a-f]{1,16}-[0-9]{1,20}", fullmatch=True),
    st.from_regex(r"[0-9a-f]{8}-[0-9]{1,3}(\.[0-9a-f]{8}-[0-9]{1,3}){0,3}", fullmatch=True),
    st.text(alphabet="0123456789abcdefABCDEF-.²١", max_size=30),
    texts,
)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
#: JSON values, nested; what ``orjson.dumps`` accepts.
json_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
#: ``ref`` of every JSON type (only strings and integers are valid).
refs = json_values
