"""The virtual PC that `vpcs -F` forks: found while its parent lives, watched, and ended by us.

The started vpcs is the console server; it forks one child (the VPC, holding the UDP sockets) that takes its pty as
controlling terminal in a session of its own. So signalling the started process's group never reaches the VPC, and a
vpcs killed with SIGKILL leaves its VPC running, busy-looping on a dead pty and holding the tunnel ports. A pidfd
held on the VPC lets us end it without any pid-reuse risk and tells the event loop when it exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)

REAP_TIMEOUT = 0.5


def children_of(pid: int) -> list[int]:
    """Direct children of a process (Linux `/proc/<pid>/task/<pid>/children`, psutil where that file is missing)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as handle:
            return [int(x) for x in handle.read().split()]
    except FileNotFoundError:
        if not os.path.exists(f"/proc/{pid}"):
            return []
    except (OSError, ValueError):
        return []
    import psutil  # kernels without CONFIG_PROC_CHILDREN

    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def _alive(pid: int) -> bool:
    """True until the process is reaped (a zombie still counts)."""
    return os.path.exists(f"/proc/{pid}")


class VPCChild:
    """A pidfd on vpcs's forked VPC."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self.pidfd: int | None = pidfd
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def find(cls, parent_pid: int) -> VPCChild | None:
        """The VPC of a running vpcs, or None while it has not forked yet."""
        for pid in children_of(parent_pid):
            try:
                return cls(pid, os.pidfd_open(pid))
            except ProcessLookupError:
                continue
        return None

    def watch(self, callback: Callable[[], None]) -> None:
        """Call `callback` once if the VPC exits before `unwatch()`."""
        if self.pidfd is None:
            return
        loop = asyncio.get_running_loop()

        def exited() -> None:
            self.unwatch()
            callback()

        loop.add_reader(self.pidfd, exited)
        self._loop = loop

    def unwatch(self) -> None:
        if self._loop is not None and self.pidfd is not None:
            self._loop.remove_reader(self.pidfd)
        self._loop = None

    def kill(self) -> None:
        if self.pidfd is None:
            return
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone

    async def wait_reaped(self, timeout: float = REAP_TIMEOUT) -> bool:
        """Wait until its parent has reaped it, so no zombie is handed over to init (PID 1 may never reap it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.0002
        while _alive(self.pid):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.005)
        return True

    def close(self) -> None:
        self.unwatch()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
