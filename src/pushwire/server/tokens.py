"""Connection tokens: JWTs a backend signs and pushwire turns into an :class:`Identity`.

The algorithm and the key come from the configuration, never from the token.
The only module that imports PyJWT; what a connection does with its identity is
for the transports and the core to decide.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.types import Options

from pushwire.core.channels import validate_channel
from pushwire.core.identity import Identity
from pushwire.errors import (
    InvalidChannelError,
    InvalidTokenError,
    TokenExpiredError,
    UsageError,
)
from pushwire.server.config import TOKEN_ALGORITHMS, Config

__all__ = [
    "LEEWAY_SECONDS",
    "MAX_USER_LENGTH",
    "MIN_SECRET_BYTES",
    "TokenVerifier",
    "bearer_token",
    "verifier_from_config",
]

logger = logging.getLogger("pushwire")

#: Clock skew forgiven between the backend that mints tokens and this server.
LEEWAY_SECONDS = 5.0
#: Longest user id: two of them still fit a 255-character ``dm:A,B`` channel name.
MAX_USER_LENGTH = 125
#: Below this an HS256 secret is accepted, with a warning (RFC 7518 §3.2).
MIN_SECRET_BYTES = 32
_MIN_RSA_BITS = 2048

# The channel-name characters without ":" and ",", which separate ids in names
# like "user:ID" and "dm:A,B".
_USER = re.compile(r"[A-Za-z0-9_.@=+\-]+")
_USER_CHARACTERS = "A-Z a-z 0-9 _ . @ = + -"
_NOT_A_STRING = "must be a non-empty string"
# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_BEARER = re.compile(r"bearer +([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class TokenVerifier:
    """Checks connection tokens signed with one configured algorithm and key.

    With an HS256 secret it can also :meth:`mint` tokens (for ``pushwire token``
    and tests); with a public key only the backend holding the private key can.
    """

    __slots__ = ("_algorithm", "_clock", "_key", "_max_token_bytes", "_weak_key")

    def __init__(
        self,
        algorithm: str,
        key: str | PublicKey,
        *,
        max_token_bytes: int = 8192,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Verify with ``key``: the HS256 secret, or an RSA (RS256) or P-256 (ES256) public key.

        A weak key (a secret under :data:`MIN_SECRET_BYTES`, an RSA key under 2048
        bits) is accepted and logged as a warning, once, here.

        Raises:
            UsageError: if the algorithm is not one pushwire accepts or does not fit the key.
        """
        problem = _key_problem(algorithm, key)
        if problem:
            raise UsageError(problem)
        self._algorithm = algorithm
        self._key = key
        self._max_token_bytes = max_token_bytes
        self._clock = clock
        self._weak_key = _weakness(key)
        if self._weak_key:
            logger.warning("weak token key: %s", self._weak_key)

    @property
    def algorithm(self) -> str:
        """The one algorithm tokens must be signed with."""
        return self._algorithm

    def verify(self, token: str, *, expired_grace_seconds: float = 0.0) -> Identity:
        """The identity ``token`` vouches for, once its signature, times and claims check out.

        ``expired_grace_seconds`` accepts a token that expired that long ago (for a
        refresh endpoint that re-issues a token to the same user).

        Raises:
            TokenExpiredError: if ``exp`` has passed (beyond :data:`LEEWAY_SECONDS`).
            InvalidTokenError: for any other reason, named in the message (the
                token itself is never repeated).
        """
        if not token:
            raise InvalidTokenError("token is empty")
        if not token.isascii():
            raise InvalidTokenError("token is malformed: not ASCII")
        if len(token) > self._max_token_bytes:
            raise InvalidTokenError(f"token is longer than {self._max_token_bytes} bytes")
        claims = self._decode(token)
        expires_at = self._check_times(claims, expired_grace_seconds)
        return Identity(_user(claims), _info(claims), _channels(claims), expires_at)

    def mint(
        self,
        user: str,
        *,
        info: dict[str, object] | None = None,
        channels: Iterable[str] = (),
        ttl_seconds: float,
    ) -> str:
        """A token for ``user``, valid for ``ttl_seconds`` from now, signed with the secret.

        Meant for development and tests; a backend can mint the same with any JWT
        library (see docs/security.md).

        Raises:
            UsageError: if only a public key is configured, or an argument would make
                a token :meth:`verify` refuses.
        """
        if not isinstance(self._key, str):
            raise UsageError(
                f"cannot mint {self._algorithm} tokens: only a public key is configured; "
                "tokens are signed by the backend holding the private key"
            )
        problem = _user_problem(user) if isinstance(user, str) else _NOT_A_STRING
        if problem:
            raise UsageError(f"user id {problem}")
        if not (math.isfinite(ttl_seconds) and ttl_seconds > 0):
            raise UsageError("ttl_seconds must be a positive number")
        if info is not None and not isinstance(info, dict):
            raise UsageError("info must be a JSON object (a dict)")
        if isinstance(channels, str):
            raise UsageError("channels must be a list of channel names, not one string")
        issued_at = int(self._clock())
        claims: dict[str, object] = {
            "sub": user,
            "iat": issued_at,
            "exp": issued_at + math.ceil(ttl_seconds),
        }
        if info is not None:
            claims["info"] = info
        names = sorted(set(channels))
        if names:
            try:
                claims["channels"] = [validate_channel(name) for name in names]
            except InvalidChannelError as exc:
                raise UsageError(str(exc)) from None
        try:
            with self._quiet_about_weak_key():
                return jwt.encode(claims, self._key, algorithm=self._algorithm)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"info is not JSON-serializable: {exc}") from None

    def _decode(self, token: str) -> dict[str, object]:
        """The claims of a token whose form, algorithm and signature are right."""
        # Times are checked by _check_times, against the injected clock; sub by _user.
        options: Options = {
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_sub": False,
        }
        try:
            with self._quiet_about_weak_key():
                return jwt.decode(token, self._key, algorithms=[self._algorithm], options=options)
        # Our own messages: PyJWT's may quote parts of the token.
        except jwt.InvalidAlgorithmError:
            raise InvalidTokenError(
                f"token is signed with another algorithm, not {self._algorithm}"
            ) from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError("token signature does not verify") from None
        except jwt.InvalidAudienceError:
            raise InvalidTokenError("token has an aud claim; pushwire accepts none") from None
        except jwt.DecodeError:
            raise InvalidTokenError("token is malformed: not a signed JWT") from None
        except jwt.PyJWTError:
            raise InvalidTokenError("token is invalid") from None

    def _check_times(self, claims: dict[str, object], grace_seconds: float) -> float | None:
        """``exp``, once ``exp``, ``nbf`` and ``iat`` all admit the present moment."""
        now = self._clock()
        expires_at = _time_claim(claims, "exp")
        if expires_at is not None and now >= expires_at + LEEWAY_SECONDS + grace_seconds:
            raise TokenExpiredError("token has expired")
        not_before = _time_claim(claims, "nbf")
        if not_before is not None and now + LEEWAY_SECONDS < not_before:
            raise InvalidTokenError("token is not valid yet (nbf)")
        issued_at = _time_claim(claims, "iat")
        if issued_at is not None and now + LEEWAY_SECONDS < issued_at:
            raise InvalidTokenError("token is issued in the future (iat)")
        return expires_at

    @contextlib.contextmanager
    def _quiet_about_weak_key(self) -> Iterator[None]:
        # PyJWT warns about a weak key at every use; it was logged once, at start.
        if not self._weak_key:
            yield
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            yield


def verifier_from_config(config: Config) -> TokenVerifier | None:
    """The verifier ``config`` describes, or None when it sets neither secret nor key.

    Reads ``token_public_key`` now, so call it at start.

    Raises:
        UsageError: if the key file cannot be read, is not a PEM public key, or
            does not fit ``token_algorithm``.
    """
    if config.token_secret:
        algorithm = config.token_algorithm or "HS256"
        return TokenVerifier(algorithm, config.token_secret, max_token_bytes=config.max_token_bytes)
    if not config.token_public_key:
        return None
    key = _load_public_key(config.token_public_key)
    algorithm = config.token_algorithm or (
        "RS256" if isinstance(key, rsa.RSAPublicKey) else "ES256"
    )
    try:
        return TokenVerifier(algorithm, key, max_token_bytes=config.max_token_bytes)
    except UsageError as exc:
        raise UsageError(f"token_public_key {config.token_public_key}: {exc}") from None


def bearer_token(authorization_header: str | None) -> str | None:
    """The token in an ``Authorization: Bearer TOKEN`` header; None without a header.

    Raises:
        InvalidTokenError: if the header is there but is not a Bearer token.
    """
    if authorization_header is None:
        return None
    match = _BEARER.fullmatch(authorization_header.strip())
    if match is None:
        raise InvalidTokenError("Authorization header must be 'Bearer ' and one token")
    return match[1]


def _load_public_key(path: str) -> PublicKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read token_public_key {path}: {exc.strerror or exc}") from None
    if b"PRIVATE KEY-----" in data:
        raise UsageError(
            f"token_public_key {path} holds a private key; give pushwire only the public "
            "key (openssl pkey -in KEY -pubout)"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise UsageError(
            f"token_public_key {path} is not a PEM public key (-----BEGIN PUBLIC KEY-----)"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise UsageError(f"token_public_key {path} is neither an RSA nor an EC key")
    return key


def _key_problem(algorithm: str, key: str | PublicKey) -> str | None:
    """Why ``key`` cannot verify ``algorithm`` tokens, or None if it can."""
    if algorithm not in TOKEN_ALGORITHMS:
        return f"token algorithm must be one of {', '.join(TOKEN_ALGORITHMS)}, not {algorithm!r}"
    if algorithm == "HS256":
        return None if isinstance(key, str) and key else "HS256 needs a non-empty secret"
    if algorithm == "RS256":
        return None if isinstance(key, rsa.RSAPublicKey) else "RS256 needs an RSA public key"
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return "ES256 needs an EC public key on curve P-256"
    if not isinstance(key.curve, ec.SECP256R1):
        return f"ES256 needs an EC public key on curve P-256, not {key.curve.name}"
    return None


def _weakness(key: str | PublicKey) -> str:
    if isinstance(key, str) and len(key.encode()) < MIN_SECRET_BYTES:
        return f"token_secret is shorter than {MIN_SECRET_BYTES} bytes; use a longer random one"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        return f"the RSA key has {key.key_size} bits; use at least {_MIN_RSA_BITS}"
    return ""


def _user(claims: dict[str, object]) -> str:
    if "sub" not in claims:
        raise InvalidTokenError("token has no sub claim (the user id)")
    user = claims["sub"]
    if not isinstance(user, str):
        raise InvalidTokenError(f"token claim sub {_NOT_A_STRING}")
    problem = _user_problem(user)
    if problem:
        raise InvalidTokenError(f"token claim sub {problem}")
    return user


def _user_problem(user: str) -> str | None:
    """What is wrong with ``user`` as a user id, or None if nothing."""
    if not user:
        return _NOT_A_STRING
    if len(user) > MAX_USER_LENGTH:
        return f"is longer than {MAX_USER_LENGTH} characters"
    if _USER.fullmatch(user) is None:
        return f"has characters outside {_USER_CHARACTERS}"
    return None


def _time_claim(claims: dict[str, object], name: str) -> float | None:
    if name not in claims:
        return None
    value = claims[name]
    seconds = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an int beyond any float
            seconds = float(value)
    if not math.isfinite(seconds):
        raise InvalidTokenError(f"token claim {name} must be a number (unix seconds)")
    return seconds


def _info(claims: dict[str, object]) -> dict[str, object] | None:
    if "info" not in claims:
        return None
    info = claims["info"]
    if not isinstance(info, dict):
        raise InvalidTokenError("token claim info must be a JSON object")
    return info


def _channels(claims: dict[str, object]) -> frozenset[str]:
    names = claims.get("channels", [])
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InvalidTokenError("token claim channels must be a list of strings")
    for index, name in enumerate(names):
        try:
            validate_channel(name)
        except InvalidChannelError:
            raise InvalidTokenError(
                f"token claim channels[{index}] is not a valid channel name"
            ) from None
    return frozenset(names)
