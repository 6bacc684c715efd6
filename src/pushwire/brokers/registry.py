"""Brokers by URL scheme: ``memory``, ``redis://``, ``nats://``, imported only when used.

``pip install pushwire`` needs neither Redis's nor NATS's client library; each
networked broker is an extra (``pushwire[redis]``, ``pushwire[nats]``) and its
module is imported when a URL names it. A new broker is a new module in this
package and one line in ``_SCHEMES``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from pushwire.core.broker import Broker
from pushwire.errors import UsageError

__all__ = ["BrokerSettings", "broker_scheme", "open_broker", "redacted_url"]


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """What every networked broker is told besides its URL."""

    #: Names of keys, subjects and streams begin with this: two clusters (or test
    #: runs) on one Redis or NATS server keep apart by using different prefixes.
    prefix: str = "pushwire"
    #: A stream with no publication for this long is forgotten (and its epoch with it).
    history_meta_ttl_seconds: float = 3 * 86400.0
    #: A node refreshes its members every third of this; a crashed node's members
    #: are gone from every node's presence within it.
    presence_ttl_seconds: float = 30.0
    #: The largest history size of any channel rule (NATS keeps this many per subject).
    max_history_size: int = 1000
    #: A publish or history read that gets no answer in this time fails (503).
    timeout_seconds: float = 5.0


class _Opener(Protocol):
    def __call__(self, url: str, settings: BrokerSettings) -> Broker: ...


# scheme -> (module, function, extra that installs its client library)
_SCHEMES: dict[str, tuple[str, str, str]] = {
    "redis": ("pushwire.brokers.redis", "open_redis_broker", "redis"),
    "rediss": ("pushwire.brokers.redis", "open_redis_broker", "redis"),
    "nats": ("pushwire.brokers.nats", "open_nats_broker", "nats"),
    "tls": ("pushwire.brokers.nats", "open_nats_broker", "nats"),
}


def broker_scheme(url: str) -> str:
    """``memory`` or a known URL scheme; raises UsageError for anything else."""
    if url == "memory":
        return url
    scheme = urlsplit(url).scheme
    if scheme not in _SCHEMES:
        known = ", ".join(f"{name}://" for name in _SCHEMES)
        raise UsageError(f"broker must be 'memory' or a URL starting {known}; not {url!r}")
    return scheme


def open_broker(url: str, settings: BrokerSettings) -> Broker:
    """The broker ``url`` names, not yet started (``memory`` is built by the server)."""
    module_name, function, extra = _SCHEMES[broker_scheme(url)]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"the {extra} broker needs its client library: pip install 'pushwire[{extra}]' ({exc})"
        ) from None
    opener: _Opener = getattr(module, function)
    return opener(url, settings)


def redacted_url(url: str) -> str:
    """``url`` fit for a log or an error message: a password in it becomes ``***``."""
    try:
        password = urlsplit(url).password
    except ValueError:  # a malformed URL names no password that could be told apart
        return url
    if password is None:
        return url
    return url.replace(f":{password}@", ":***@", 1)
