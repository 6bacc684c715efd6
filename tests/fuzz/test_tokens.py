"""Fuzzing the token verifier: arbitrary strings, and JWTs signed around arbitrary claims.

``TokenVerifier("HS256", secret).verify`` gives an Identity or raises
InvalidTokenError (TokenExpiredError included), whatever it is handed: garbage,
near-JWTs, or tokens signed with the right key around claims and headers of any type.
Derandomized (see tests.fuzz.strategies).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import orjson
from hypothesis import given, settings, strategies as st

from pushwire.core.identity import Identity
from pushwire.errors import InvalidTokenError
from pushwire.server.tokens import TokenVerifier
from tests.fuzz.strategies import FUZZ, json_values, texts

SECRET = "a-secret-of-at-least-thirty-two-bytes"
_NOW = 1_700_000_000.0
_VERIFIER = TokenVerifier("HS256", SECRET, clock=lambda: _NOW)


def _segment(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


_times = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.sampled_from([_NOW, _NOW - 10, _NOW + 10, True, "1700000000"]),
    json_values,
)
_claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.one_of(st.from_regex(r"[A-Za-z0-9_.@=+\-]{1,130}", fullmatch=True), json_values),
        "exp": _times,
        "nbf": _times,
        "iat": _times,
        "info": json_values,
        "channels": st.one_of(st.lists(st.one_of(texts, json_values), max_size=3), json_values),
        "aud": json_values,
        "iss": json_values,
        "jti": json_values,
    },
)
_headers = st.fixed_dictionaries(
    {}, optional={"kid": json_values, "typ": json_values, "crit": json_values, "x": json_values}
)


@st.composite
def near_jwts(draw: st.DrawFn) -> str:
    """Three dot-separated segments of arbitrary JSON or bytes, maybe signed right."""
    header = draw(st.one_of(json_values.map(orjson.dumps), st.binary(max_size=40)))
    payload = draw(st.one_of(json_values.map(orjson.dumps), st.binary(max_size=40)))
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    signature = draw(st.one_of(st.binary(max_size=40).map(_segment), texts))
    return f"{signing_input}.{signature}"


@settings(FUZZ, max_examples=300)
@given(st.one_of(texts, near_jwts(), st.integers(8100, 8300).map("a.b.".ljust)))
def test_any_string_is_an_identity_or_refused(token: str) -> None:
    _check(token)


@settings(FUZZ, max_examples=300)
@given(_claims, _headers)
def test_signed_tokens_with_any_claims_are_an_identity_or_refused(
    claims: dict[str, Any], headers: dict[str, Any]
) -> None:
    _check(_signed({"alg": "HS256", "typ": "JWT", **headers}, claims))


def _signed(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWT signed with the right key; by hand, as PyJWT refuses to encode bad claims."""
    # The json module writes what orjson refuses: integers past 64 bits, NaN, Infinity.
    signing_input = (
        f"{_segment(json.dumps(header).encode())}.{_segment(json.dumps(claims).encode())}"
    )
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_segment(signature)}"


def _check(token: str) -> None:
    refusal: InvalidTokenError | None = None
    try:
        identity = _VERIFIER.verify(token)
    except InvalidTokenError as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.code in ("invalid_token", "token_expired")
        assert token not in str(refusal) or not token
        return

    assert isinstance(identity, Identity)
    assert isinstance(identity.user, str)
    assert identity.info is None or isinstance(identity.info, dict)
