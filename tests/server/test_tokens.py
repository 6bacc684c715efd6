"""Connection tokens: minted by any JWT library (PyJWT here), verified into an Identity."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushwire import UsageError
from pushwire.core.identity import ANONYMOUS, Identity
from pushwire.errors import InvalidTokenError, TokenExpiredError, UnauthorizedError
from pushwire.server.config import Config
from pushwire.server.tokens import (
    LEEWAY_SECONDS,
    MAX_USER_LENGTH,
    TokenVerifier,
    bearer_token,
    verifier_from_config,
)

SECRET = "a-test-secret-of-at-least-32-bytes!"
NOW = 1_800_000_000.0


class Clock:
    """A wall clock that moves only when told."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def hs256(claims: dict[str, Any], secret: str = SECRET, **options: Any) -> str:
    return jwt.encode(claims, secret, algorithm=options.pop("algorithm", "HS256"), **options)


def claims(**changes: Any) -> dict[str, Any]:
    """Claims a backend would send: a user, issued now, valid for an hour (``...`` drops one)."""
    values: dict[str, Any] = {"sub": "ann", "iat": int(NOW), "exp": int(NOW) + 3600}
    values.update(changes)
    return {name: value for name, value in values.items() if value is not ...}


def verifier(**options: Any) -> TokenVerifier:
    return TokenVerifier("HS256", SECRET, clock=Clock(), **options)


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def segment(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def key_file(tmp_path: Path) -> Callable[[bytes], str]:
    def write(data: bytes) -> str:
        path = tmp_path / "token-key.pem"
        path.write_bytes(data)
        return str(path)

    return write


# Identity.


def test_anonymous_is_an_identity_without_a_user() -> None:
    assert ANONYMOUS.is_anonymous
    assert Identity(None, None, frozenset(), None) == ANONYMOUS
    assert not Identity("ann", None, frozenset(), None).is_anonymous


# Valid tokens.


def test_an_hs256_token_from_pyjwt_becomes_the_identity_it_describes() -> None:
    token = hs256(claims(info={"name": "Ann", "tags": [1]}, channels=["chat:ops", "user:bob"]))

    identity = verifier().verify(token)

    assert identity == Identity(
        user="ann",
        info={"name": "Ann", "tags": [1]},
        channels=frozenset({"chat:ops", "user:bob"}),
        expires_at=NOW + 3600,
    )


def test_a_token_with_only_a_subject_is_valid_forever() -> None:
    token = hs256({"sub": "ann@example.com"})

    identity = verifier().verify(token)

    assert identity == Identity("ann@example.com", None, frozenset(), None)


def test_an_rs256_token_verifies_with_the_rsa_public_key_file(
    rsa_key: rsa.RSAPrivateKey, key_file: Callable[[bytes], str]
) -> None:
    checker = verifier_from_config(Config(token_public_key=key_file(pem(rsa_key))))
    token = jwt.encode(claims(exp=..., iat=...), rsa_key, algorithm="RS256")

    identity = None if checker is None else checker.verify(token)

    assert checker is not None
    assert checker.algorithm == "RS256"
    assert identity == Identity("ann", None, frozenset(), None)


def test_an_es256_token_verifies_with_the_ec_public_key_file(
    ec_key: ec.EllipticCurvePrivateKey, key_file: Callable[[bytes], str]
) -> None:
    checker = verifier_from_config(Config(token_public_key=key_file(pem(ec_key))))
    token = jwt.encode(claims(exp=..., iat=..., info={"n": 1}), ec_key, algorithm="ES256")

    identity = None if checker is None else checker.verify(token)

    assert checker is not None
    assert checker.algorithm == "ES256"
    assert identity == Identity("ann", {"n": 1}, frozenset(), None)


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": int(NOW) - int(LEEWAY_SECONDS) + 1},
        {"nbf": int(NOW) + int(LEEWAY_SECONDS) - 1},
        {"iat": int(NOW) + int(LEEWAY_SECONDS) - 1},
        {"exp": NOW + 0.5, "iat": NOW - 0.5},
    ],
    ids=["just-expired", "almost-valid", "issued-a-moment-ahead", "fractional-times"],
)
def test_clock_skew_within_the_leeway_is_forgiven(changes: dict[str, Any]) -> None:
    token = hs256(claims(**changes))

    identity = verifier().verify(token)

    assert identity.user == "ann"


# Refused tokens.


def test_the_token_errors_are_unauthorized_with_their_own_codes() -> None:
    assert issubclass(InvalidTokenError, UnauthorizedError)
    assert issubclass(TokenExpiredError, InvalidTokenError)
    assert (InvalidTokenError.code, InvalidTokenError.http_status) == ("invalid_token", 401)
    assert (TokenExpiredError.code, TokenExpiredError.http_status) == ("token_expired", 401)


def test_an_expired_token_is_refused_as_expired() -> None:
    token = hs256(claims(exp=int(NOW) - int(LEEWAY_SECONDS)))

    with pytest.raises(TokenExpiredError, match="expired") as refused:
        verifier().verify(token)

    assert refused.value.code == "token_expired"


def test_a_token_expires_while_the_clock_moves_on() -> None:
    clock = Clock()
    checker = TokenVerifier("HS256", SECRET, clock=clock)
    token = hs256(claims(exp=int(NOW) + 60))
    checker.verify(token)

    clock.now += 60 + LEEWAY_SECONDS

    with pytest.raises(TokenExpiredError):
        checker.verify(token)


def _tampered() -> str:
    header, _, signature = hs256(claims()).split(".")
    return ".".join([header, segment(claims(sub="admin")), signature])


def _unsigned() -> str:
    return ".".join([segment({"alg": "none", "typ": "JWT"}), segment(claims()), ""])


def _oversized() -> str:
    return hs256(claims(info={"padding": "x" * 9000}))


REFUSED = [
    ("other-algorithm", lambda: hs256(claims(), "s" * 64, algorithm="HS512"), "not HS256"),
    ("alg-none", _unsigned, "not HS256"),
    ("alg-none-by-pyjwt", lambda: jwt.encode(claims(), "", algorithm="none"), "HS256"),
    ("wrong-secret", lambda: hs256(claims(), secret="another-secret-of-32-bytes-or-more"), "sign"),
    ("tampered", _tampered, "signature does not verify"),
    ("not-yet-valid", lambda: hs256(claims(nbf=int(NOW) + 60)), "not valid yet"),
    ("issued-in-the-future", lambda: hs256(claims(iat=int(NOW) + 60)), "future"),
    ("exp-not-a-number", lambda: hs256(claims(exp="tomorrow")), "exp must be a number"),
    ("exp-null", lambda: hs256(claims(exp=None)), "exp must be a number"),
    ("nbf-a-boolean", lambda: hs256(claims(nbf=True)), "nbf must be a number"),
    ("iat-beyond-floats", lambda: hs256(claims(iat=10**400)), "iat must be a number"),
    ("empty", lambda: "", "empty"),
    ("one-segment", lambda: "abc", "malformed"),
    ("three-junk-segments", lambda: "a.b.c", "malformed"),
    ("payload-not-an-object", lambda: jwt.api_jws.encode(b"[1]", SECRET), "malformed"),
    ("not-ascii", lambda: hs256(claims()) + "é", "malformed"),
    ("oversized", _oversized, "longer than 8192 bytes"),
    ("no-sub", lambda: hs256(claims(sub=...)), "no sub claim"),
    ("sub-a-number", lambda: hs256(claims(sub=42)), "sub must be a non-empty string"),
    ("sub-empty", lambda: hs256(claims(sub="")), "sub must be a non-empty string"),
    ("sub-with-colon", lambda: hs256(claims(sub="user:ann")), "sub has characters outside"),
    ("sub-with-comma", lambda: hs256(claims(sub="ann,bob")), "sub has characters outside"),
    ("sub-with-space", lambda: hs256(claims(sub="ann b")), "sub has characters outside"),
    ("sub-too-long", lambda: hs256(claims(sub="a" * (MAX_USER_LENGTH + 1))), "longer than"),
    ("info-a-list", lambda: hs256(claims(info=[1])), "info must be a JSON object"),
    ("info-a-string", lambda: hs256(claims(info="Ann")), "info must be a JSON object"),
    ("info-null", lambda: hs256(claims(info=None)), "info must be a JSON object"),
    ("channels-a-string", lambda: hs256(claims(channels="chat:a")), "list of strings"),
    ("channels-numbers", lambda: hs256(claims(channels=["a", 2])), "list of strings"),
    (
        "channels-bad-name",
        lambda: hs256(claims(channels=["ok", "no spaces"])),
        r"channels\[1\] is not",
    ),
    ("audience", lambda: hs256(claims(aud="another-service")), "aud"),
]


@pytest.mark.parametrize(
    ("make_token", "message"),
    [pytest.param(make, message, id=name) for name, make, message in REFUSED],
)
def test_a_bad_token_is_refused_saying_why_without_repeating_it(
    make_token: Callable[[], str], message: str
) -> None:
    token = make_token()

    with pytest.raises(InvalidTokenError, match=message) as refused:
        verifier().verify(token)

    assert refused.type is InvalidTokenError
    assert refused.value.code == "invalid_token"
    for part in token.split("."):
        assert len(part) < 4 or part not in str(refused.value)


def test_any_altered_character_or_truncation_is_refused_as_an_invalid_token() -> None:
    checker = verifier()
    token = hs256(claims(info={"name": "Ann"}, channels=["chat:a"]))
    genuine = checker.verify(token)
    variants = [token[:end] for end in range(len(token))]
    for index, character in enumerate(token):
        replacement = "A" if character != "A" else "B"
        variants += [
            token[:index] + replacement + token[index + 1 :],
            token[:index] + "%" + token[index:],
        ]

    accepted = []
    for variant in variants:
        try:
            identity = checker.verify(variant)
        except InvalidTokenError:
            continue
        assert identity == genuine
        accepted.append(variant)

    # Base64 ignores the spare bits of the signature's last character: no real change.
    assert all(variant[:-1] == token[:-1] for variant in accepted)


def test_the_size_limit_follows_max_token_bytes() -> None:
    token = hs256(claims())
    checker = verifier(max_token_bytes=len(token) - 1)

    with pytest.raises(InvalidTokenError, match=f"longer than {len(token) - 1} bytes"):
        checker.verify(token)


def test_an_rs256_verifier_refuses_tokens_signed_otherwise(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    checker = TokenVerifier("RS256", rsa_key.public_key(), clock=Clock())
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # The public key used as an HMAC secret: the classic algorithm-confusion attack.
    confused = ".".join(
        [segment({"alg": "HS256", "typ": "JWT"}), segment(claims()), "c2lnbmF0dXJl"]
    )

    refusals = [
        (jwt.encode(claims(), other_rsa, algorithm="RS256"), "signature does not verify"),
        (jwt.encode(claims(), rsa_key, algorithm="RS512"), "not RS256"),
        (jwt.encode(claims(), ec_key, algorithm="ES256"), "not RS256"),
        (confused, "not RS256"),
    ]

    for token, message in refusals:
        with pytest.raises(InvalidTokenError, match=message):
            checker.verify(token)


def test_an_es256_verifier_refuses_a_token_from_another_key(
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    checker = TokenVerifier("ES256", ec_key.public_key(), clock=Clock())
    token = jwt.encode(claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")

    with pytest.raises(InvalidTokenError, match="signature does not verify"):
        checker.verify(token)


# Minting.


def test_a_minted_token_verifies_into_the_same_identity() -> None:
    checker = verifier()

    token = checker.mint(
        "ann", info={"name": "Ann"}, channels=["user:ann", "chat:a"], ttl_seconds=900
    )

    assert checker.verify(token) == Identity(
        "ann", {"name": "Ann"}, frozenset({"user:ann", "chat:a"}), NOW + 900
    )


def test_a_minted_token_is_a_plain_hs256_jwt() -> None:
    token = verifier().mint("ann", ttl_seconds=60)

    header = jwt.get_unverified_header(token)
    decoded = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_iat": False})

    assert header["alg"] == "HS256"
    assert decoded == {"sub": "ann", "iat": int(NOW), "exp": int(NOW) + 60}


def test_minting_needs_the_secret(rsa_key: rsa.RSAPrivateKey) -> None:
    checker = TokenVerifier("RS256", rsa_key.public_key())

    with pytest.raises(UsageError, match="only a public key"):
        checker.mint("ann", ttl_seconds=60)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"user": "user:ann"}, "user id has characters outside"),
        ({"user": ""}, "user id must be a non-empty string"),
        ({"ttl_seconds": 0}, "ttl_seconds"),
        ({"channels": "chat:a"}, "not one string"),
        ({"channels": ["no spaces"]}, "channel"),
        ({"info": {"when": object()}}, "info is not JSON-serializable"),
    ],
)
def test_minting_refuses_what_verify_would_refuse(arguments: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"user": "ann", "ttl_seconds": 60, **arguments}

    with pytest.raises(UsageError, match=message):
        verifier().mint(values.pop("user"), **values)


# The Authorization header.


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("Bearer abc.DEF-_.x~+/==", "abc.DEF-_.x~+/=="),
        ("bearer  abc", "abc"),
        ("BEARER abc ", "abc"),
    ],
)
def test_bearer_token_reads_the_authorization_header(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic YTpi", "Bearer a b", "Token a"])
def test_a_malformed_authorization_header_is_an_invalid_token(header: str) -> None:
    with pytest.raises(InvalidTokenError, match="Bearer"):
        bearer_token(header)


# Building the verifier from the configuration.


def test_without_a_secret_or_key_there_is_no_verifier() -> None:
    assert verifier_from_config(Config()) is None


def test_a_secret_makes_an_hs256_verifier_with_the_configured_size_limit() -> None:
    checker = verifier_from_config(Config(token_secret=SECRET, max_token_bytes=100))
    token = hs256(claims(info={"padding": "x" * 100}))

    assert checker is not None
    assert checker.algorithm == "HS256"
    with pytest.raises(InvalidTokenError, match="longer than 100 bytes"):
        checker.verify(token)


def test_a_short_secret_is_accepted_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pushwire"):
        checker = verifier_from_config(Config(token_secret="short"))
    assert checker is not None

    # PyJWT's own warning at every use would fail the test (filterwarnings = error).
    identity = checker.verify(checker.mint("ann", ttl_seconds=60))

    assert identity.user == "ann"
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert "shorter than 32 bytes" in caplog.text


def test_an_unreadable_key_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"

    with pytest.raises(UsageError, match=f"cannot read token_public_key {missing}"):
        verifier_from_config(Config(token_public_key=str(missing)))


def test_a_key_file_that_is_not_pem_is_a_usage_error(key_file: Callable[[bytes], str]) -> None:
    path = key_file(b"ssh-rsa AAAAB3NzaC1yc2E user@host\n")

    with pytest.raises(UsageError, match="is not a PEM public key"):
        verifier_from_config(Config(token_public_key=path))


def test_a_private_key_file_is_refused(
    ec_key: ec.EllipticCurvePrivateKey, key_file: Callable[[bytes], str]
) -> None:
    private = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(UsageError, match="holds a private key"):
        verifier_from_config(Config(token_public_key=key_file(private)))


@pytest.mark.parametrize(
    ("key", "algorithm", "message"),
    [
        ("ec", "RS256", "RS256 needs an RSA public key"),
        ("rsa", "ES256", "ES256 needs an EC public key"),
        ("p384", "ES256", "not secp384r1"),
        ("p384", "", "not secp384r1"),
    ],
)
def test_an_algorithm_that_does_not_fit_the_key_is_a_usage_error(
    key: str,
    algorithm: str,
    message: str,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    key_file: Callable[[bytes], str],
) -> None:
    keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] = {
        "rsa": rsa_key,
        "ec": ec_key,
        "p384": ec.generate_private_key(ec.SECP384R1()),
    }
    private = keys[key]
    config = Config(token_public_key=key_file(pem(private)), token_algorithm=algorithm)

    with pytest.raises(UsageError, match=message):
        verifier_from_config(config)
