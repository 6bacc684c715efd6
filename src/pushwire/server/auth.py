"""Who is asking: the backend API key (``/api/*``), and connection tokens (everything else)."""

from __future__ import annotations

import hmac
import secrets

from pushwire.core.identity import ANONYMOUS, Identity
from pushwire.core.permissions import DEMO_USER_PREFIX
from pushwire.errors import InvalidTokenError, TokenExpiredError, UnauthorizedError
from pushwire.server.tokens import TokenVerifier, bearer_token

__all__ = ["ApiKey", "Authenticator"]


class ApiKey:
    """Checks the ``X-API-Key`` header in constant time."""

    __slots__ = ("generated", "value")

    def __init__(self, configured: str) -> None:
        #: True when no key was configured and one was made up at start (it is printed).
        self.generated = not configured
        self.value = configured or secrets.token_urlsafe(24)

    def check(self, presented: str | None) -> None:
        """Raises:
        UnauthorizedError: if the key is missing or wrong.
        """
        if presented is None:
            raise UnauthorizedError("missing X-API-Key header")
        if not hmac.compare_digest(presented.encode(), self.value.encode()):
            raise UnauthorizedError("wrong API key")


class Authenticator:
    """Who a request is: the token in ``?token=`` or ``Authorization: Bearer``, verified.

    The query string serves the browser APIs that cannot set headers (``WebSocket``,
    ``EventSource``); the header serves fetch-based clients and backends.
    """

    __slots__ = ("allow_anonymous", "demo_verifier", "verifier")

    def __init__(
        self,
        verifier: TokenVerifier | None,
        *,
        allow_anonymous: bool,
        demo_verifier: TokenVerifier | None = None,
    ) -> None:
        """
        Args:
            verifier: the application's key; None if it has none.
            demo_verifier: the demo chat's own key (server.demo), whose tokens name
                ``demo-`` users only; tried when the application's refuses a signature.
        """
        self.verifier = verifier
        self.allow_anonymous = allow_anonymous
        self.demo_verifier = demo_verifier

    def identify(self, token: str | None, authorization: str | None) -> Identity:
        """Raises:
        InvalidTokenError, TokenExpiredError: a token was given and is refused.
        UnauthorizedError: no token, and anonymous connections are not allowed.
        """
        if not token:
            token = bearer_token(authorization)
        if not token:
            if not self.allow_anonymous:
                raise UnauthorizedError("this server needs a connection token")
            return ANONYMOUS
        return self.verify(token)

    def verify(self, token: str) -> Identity:
        """The identity of ``token``, signed with the application's key or the demo's.

        Raises:
            TokenExpiredError: the signature verifies but the token has expired.
            InvalidTokenError: no key verifies it (the application key's reason).
        """
        verifiers = [v for v in (self.verifier, self.demo_verifier) if v is not None]
        if not verifiers:
            raise InvalidTokenError("this server has no token key configured: connect without one")
        refusal: InvalidTokenError | None = None
        for verifier in verifiers:
            try:
                identity = verifier.verify(token)
            except TokenExpiredError:
                raise  # the signature was right: this key made it
            except InvalidTokenError as exc:
                refusal = refusal or exc
                continue
            if verifier is self.demo_verifier and not (identity.user or "").startswith(
                DEMO_USER_PREFIX
            ):
                raise InvalidTokenError("a demo token must name a demo user")
            return identity
        assert refusal is not None
        raise refusal
