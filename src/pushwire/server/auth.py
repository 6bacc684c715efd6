"""Who is asking: the backend API key (``/api/*``), and connection tokens (everything else)."""

from __future__ import annotations

import hmac
import secrets

from pushwire.core.identity import ANONYMOUS, Identity
from pushwire.errors import InvalidTokenError, UnauthorizedError
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

    __slots__ = ("allow_anonymous", "verifier")

    def __init__(self, verifier: TokenVerifier | None, *, allow_anonymous: bool) -> None:
        self.verifier = verifier
        self.allow_anonymous = allow_anonymous

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
        if self.verifier is None:
            raise InvalidTokenError("this server has no token key configured: connect without one")
        return self.verifier.verify(token)
