"""CPU placement: the server under test gets one core, the load generator the others.

On a 2-core machine the server, the load-generator workers and the kernel's loopback TCP work
all compete for CPU. Pinning gives every server the same single dedicated core (all the
targets are single-threaded event loops, so that is also the fair unit of comparison) and keeps
the load generator from stealing it. Disable with ``--no-pin``.
"""

from __future__ import annotations

import os

_enabled = True
#: CPUs this process was allowed at import, before any pinning of our own narrowed them.
_ALL = sorted(os.sched_getaffinity(0))


def set_enabled(enabled: bool) -> None:
    """Turn pinning on or off for the rest of this process (and the processes it starts)."""
    global _enabled
    _enabled = enabled


def server_cpus() -> set[int] | None:
    """CPUs for the server process, or None when not pinning."""
    if not _enabled or len(_ALL) < 2:
        return None
    return {_ALL[0]}


def loadgen_cpus() -> set[int] | None:
    """CPUs for the load generator (coordinator and workers), or None when not pinning."""
    if not _enabled or len(_ALL) < 2:
        return None
    return set(_ALL[1:])


def pin_self(cpus: set[int] | None) -> None:
    """Restrict the calling process (and the children it starts later) to ``cpus``."""
    if cpus:
        os.sched_setaffinity(0, cpus)
