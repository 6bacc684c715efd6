"""The demo chat's server side: demo-grade logins, its channel rule, its static files.

``POST /demo/login`` turns a display name and an avatar into a short-lived token for
a fresh user id under ``demo-``. Demo tokens are signed with the demo's own secret
(generated, and kept in the data directory so logins survive a restart), never with
the application's key, and a ``demo-`` user reaches only the demo's channels, its own
``user:`` channel, DMs with other demo users and channels open to anyone
(``core.permissions``). A real application mints tokens in its own backend instead.
"""

from __future__ import annotations

import logging
import os
import secrets
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Any

from pushwire.core.channels import ChannelRule
from pushwire.core.permissions import DEMO_CHANNEL_PREFIX, DEMO_USER_PREFIX
from pushwire.errors import BadRequestError, NotFoundError
from pushwire.server.http import Request
from pushwire.server.tokens import TokenVerifier, bearer_token

__all__ = [
    "AVATARS",
    "DEMO_RULE",
    "DemoLogins",
    "demo_secret",
    "static_file",
]

logger = logging.getLogger("pushwire.demo")

#: The avatars a person may pick (drawn by the chat page itself).
AVATARS = ("cat", "fox", "owl", "bear", "panda", "frog", "robot", "alien")
MAX_NAME_LENGTH = 40
TOKEN_TTL_SECONDS = 3600.0
# How long after expiry a demo token can still be exchanged for a fresh one.
REFRESH_GRACE_SECONDS = 300.0
#: The demo's channels: presence and join/leave on, members may talk, history kept.
DEMO_RULE = ChannelRule(
    prefix=DEMO_CHANNEL_PREFIX,
    history_size=500,
    history_ttl_seconds=86400.0,
    subscribe="authenticated",
    publish="authenticated",
    presence=True,
    join_leave=True,
)
_SECRET_FILE = "demo-token-secret"
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_STATIC_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
}


def demo_secret(data_dir: str, *, persistent: bool) -> str:
    """The demo's token secret: read from the data directory, or made and kept there.

    Not ``persistent`` (history in memory: no files), a fresh one each start.
    """
    if not persistent:
        return secrets.token_urlsafe(48)
    path = Path(data_dir) / _SECRET_FILE
    try:
        secret = path.read_text().strip()
        if len(secret) >= 32:
            return secret
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Written readable by the owner only, as a key should be.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    return secret


class DemoLogins:
    """``POST /demo/login`` and ``POST /demo/refresh``, over the demo's own verifier."""

    __slots__ = ("verifier",)

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def login(self, request: Request) -> tuple[int, object]:
        """``{"name", "avatar"}`` -> ``{"token", "user", "info", "expires_in"}`` for a new user."""
        body = request.json_object('{"name": ..., "avatar": ...}')
        info = {"name": _name(body.get("name")), "avatar": _avatar(body.get("avatar"))}
        user = DEMO_USER_PREFIX + secrets.token_hex(6)
        return 200, self._grant(user, info)

    async def refresh(self, request: Request) -> tuple[int, object]:
        """A fresh token for the same demo user (``Authorization: Bearer`` the current one).

        A token that expired a moment ago still identifies its user here, within the
        refresh window; a forged or foreign one does not.
        """
        if request.method != "POST":
            raise NotFoundError("use POST")
        token = bearer_token(request.headers.get("authorization"))
        if not token:
            raise BadRequestError("send the current token as Authorization: Bearer")
        identity = self.verifier.verify(token, expired_grace_seconds=REFRESH_GRACE_SECONDS)
        return 200, self._grant(identity.user or "", identity.info or {})

    def _grant(self, user: str, info: dict[str, Any]) -> dict[str, object]:
        token = self.verifier.mint(user, info=info, ttl_seconds=TOKEN_TTL_SECONDS)
        return {"token": token, "user": user, "info": info, "expires_in": TOKEN_TTL_SECONDS}


def _name(value: object) -> str:
    """A display name: any text (HTML and emoji included: it is shown as text), bounded."""
    if not isinstance(value, str):
        raise BadRequestError("name must be a string")
    name = " ".join(value.split())  # no leading, trailing or repeated whitespace
    # Control characters, and the bidirectional overrides that make a name display
    # as someone else's; emoji (joiners included) are welcome.
    if any(unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS for c in name):
        raise BadRequestError("name must not contain control or direction characters")
    if not name:
        raise BadRequestError("choose a name")
    if len(name) > MAX_NAME_LENGTH:
        raise BadRequestError(f"a name has at most {MAX_NAME_LENGTH} characters")
    return name


def _avatar(value: object) -> str:
    if value not in AVATARS:
        raise BadRequestError(f"avatar must be one of {', '.join(AVATARS)}")
    assert isinstance(value, str)
    return value


def static_file(name: str) -> tuple[bytes, bytes] | None:
    """A file of the chat page (``static/chat/NAME``) and its content type, if it exists."""
    suffix = Path(name).suffix
    content_type = _STATIC_TYPES.get(suffix)
    if content_type is None or "/" in name or name.startswith("."):
        return None
    resource = resources.files("pushwire") / "static" / "chat" / name
    try:
        return resource.read_bytes(), content_type
    except OSError:
        return None
