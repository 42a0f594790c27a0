"""What a process holds, for leak checks: children, zombies, descriptors, sockets, threads.

One census, used by the hygiene test and the process benchmark: ``census()`` here, or
``helper.in_helper(census)`` for the process where the attempts run.
"""

from __future__ import annotations

import contextlib
import os
import threading

from impl.supervisor_process import supervise


def census() -> dict:
    """What this process holds: for leak checks (children, zombies, descriptors, sockets)."""
    import psutil

    me = psutil.Process()
    children = me.children(recursive=True)
    links = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            links[fd] = os.readlink(f"/proc/self/fd/{fd}")
    sockets = sum(1 for link in links.values() if link.startswith("socket:"))
    return {
        "children": sorted(p.pid for p in children),
        "zombies": sorted(p.pid for p in children if p.status() == psutil.STATUS_ZOMBIE),
        "fds": len(links),
        "sockets": sockets,
        "threads": threading.active_count(),
        "closed_for_supervisor": supervise.closed_for_supervisor(),
        "killed_for_supervisor": supervise.killed_for_supervisor(),
    }


def children_running(*words: bytes) -> set[int]:
    """The pids of this process's direct children whose command line holds every one of ``words``."""
    import psutil

    found = set()
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(child.cmdline()).encode()
            if all(w in cmdline for w in words):
                found.add(child.pid)
    return found
