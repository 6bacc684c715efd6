"""Server resource readings from /proc: CPU seconds and resident memory.

Read from outside the server so every target is measured the same way, whatever its runtime.
A server that forks helpers is measured together with its descendants.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces; everything after its ')' is fixed-form.
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants."""
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            total += process_cpu_seconds(p)
    return total


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` alone (raises OSError once gone)."""
    fields = _stat_fields(pid)
    # After the command name: state(0) ppid(1) ... utime(11) stime(12)
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def runqueue_wait_seconds(pid: int) -> float:
    """Seconds the threads of ``pid`` and its descendants spent runnable but not running.

    From /proc/PID/task/TID/schedstat (second field). CPU seconds alone cannot tell a server
    that idles for lack of work from one that is starved of CPU by other processes; this can.
    """
    total = 0
    for p in process_tree(pid):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                total += int(Path(f"/proc/{p}/task/{tid}/schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of ``pid`` and its live descendants, in bytes."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            total += process_rss_bytes(p)
    return total


def process_rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of ``pid`` alone, in bytes (raises OSError once gone)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    """Number of open file descriptors of ``pid`` (0 if unreadable)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def system_cpu() -> tuple[float, float, float]:
    """Machine-wide (busy, softirq, total) CPU seconds from /proc/stat's first line.

    Shows whether the whole machine was saturated during a run; on loopback much of the TCP
    work is softirq time that no process is charged for.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    idle = fields[3] + fields[4]
    return (total - idle) / _CLK_TCK, fields[6] / _CLK_TCK, total / _CLK_TCK


#: Kernel TCP counters that reveal a too-small listen backlog (machine-wide, /proc/net/netstat).
TCP_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPSynRetrans", "TCPTimeouts")


def tcp_counters() -> dict[str, int]:
    """Current values of ``TCP_COUNTERS``; diff two readings to see what a phase caused."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    out: dict[str, int] = {}
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            out.update(
                (k, int(v))
                for k, v in zip(head.split()[1:], values.split()[1:], strict=True)
                if k in TCP_COUNTERS
            )
    return out
