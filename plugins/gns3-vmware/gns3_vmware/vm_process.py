"""Noticing that a VMware VM stopped without the server asking (guest shut down, VMware closed it, it crashed).

On Linux each powered-on VM is a `vmware-vmx` process whose last argument is the VM's `.vmx` path. The server finds
that process once the VM is up and waits on a pidfd, so it learns of the end at once and spends nothing meanwhile.
Where no such process can be found (another VMware layout), it asks `vmrun list` every few seconds instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

import psutil

from gns3_vmware.vmrun import same_file

log = logging.getLogger(__name__)

VMX_PROCESS = "vmware-vmx"
POLL_INTERVAL = 5.0


def find_vm_process(vmx_path: str) -> int | None:
    """The pid of the `vmware-vmx` process running this VMX file, or None (blocking: psutil reads /proc)."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if len(cmdline) < 2:
            continue
        if any(os.path.basename(arg) == VMX_PROCESS for arg in cmdline[:-1]) and same_file(cmdline[-1], vmx_path):
            return proc.pid
    return None


class VMWatch:
    """Calls `on_gone()` once when the VM's process ends (pidfd), or when `still_running()` says no (polling)."""

    def __init__(self, on_gone: Callable[[], None], still_running: Callable[[], Awaitable[bool]]) -> None:
        self.on_gone = on_gone
        self.still_running = still_running
        self.pid: int | None = None
        self._pidfd: int | None = None
        self._poller: asyncio.Task | None = None
        self._fired = False

    @property
    def mode(self) -> str:
        return "pidfd" if self._pidfd is not None else ("polling" if self._poller is not None else "off")

    def watch_process(self, pid: int) -> bool:
        """Wait for `pid` to end; False when it cannot be watched (already gone, or no pidfd here)."""
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError) as exc:
            log.debug("cannot watch pid %s: %s", pid, exc)
            return False
        self.pid, self._pidfd = pid, fd
        asyncio.get_running_loop().add_reader(fd, self._process_ended)
        return True

    def poll(self) -> None:
        """Ask `still_running()` every few seconds instead."""
        self._poller = asyncio.create_task(self._poll())

    def _process_ended(self) -> None:
        self._close_pidfd()
        self._fire()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                running = await self.still_running()
            except Exception as exc:  # vmrun failing is not the VM stopping
                log.debug("VM state check failed: %s", exc)
                continue
            if not running:
                self._poller = None
                self._fire()
                return

    def _fire(self) -> None:
        if not self._fired:
            self._fired = True
            self.on_gone()

    def _close_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def cancel(self) -> None:
        """The server stops the VM itself: nothing to report."""
        self._fired = True
        self._close_pidfd()
        poller, self._poller = self._poller, None
        if poller is not None and poller is not asyncio.current_task():
            poller.cancel()
