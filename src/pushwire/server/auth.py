"""The backend API key: who may publish through ``/api/*`` without channel rules."""

from __future__ import annotations

import hmac
import secrets

from pushwire.errors import UnauthorizedError

__all__ = ["ApiKey"]


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
