"""Emulator processes: started without a shell, logged to a file, watched for unexpected exits, stopped for good."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from gns3core.errors import EmulatorError

log = logging.getLogger(__name__)

ExitCallback = Callable[[int, str], None]

# Every process this server started and has not reaped yet, so a stopping server can end them all.
_LIVE: set[ManagedProcess] = set()


def live_processes() -> set[ManagedProcess]:
    return set(_LIVE)


PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()  # resolved before any fork: the child only calls it


def _die_with_parent(parent_pid: int) -> None:
    """In the forked child, before exec: the kernel sends SIGTERM when the server dies, even by SIGKILL.

    SIGTERM rather than SIGKILL, so an emulator that forked helpers of its own (vpcs -F runs each PC in a child on its
    own pty) ends them as on a normal stop; the start-up reclaim (gns3core.recovery) ends whatever ignored it.

    The signal follows the *thread* that forked, so emulators are started from the event loop's thread, which lives
    as long as the server. A server that died between fork and here is caught by the parent-pid check.
    """
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def die_with_parent_hook() -> Callable[[], None] | None:
    """The `preexec_fn` that ties a child's life to this process; None where the kernel cannot (not Linux), or
    when called off the main thread (the child would die with that thread instead)."""
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    return functools.partial(_die_with_parent, os.getpid())


def lower_priority(pid: int, niceness: int) -> None:
    """Run a started child (and what it forks later) `niceness` below normal priority. Called from the parent
    after exec, so the fork and exec, which the event loop waits for, still run at the server's priority.

    The child leads a session of its own, and with scheduler autogroups (most distributions) each session is scheduled
    as one group whatever its processes' nice values: the group's own niceness is what counts there."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
    except OSError:
        pass  # it ended already
    try:
        with open(f"/proc/{pid}/autogroup", "w") as group:
            group.write(str(niceness))
    except OSError:
        pass  # no autogroups on this kernel: the nice value alone applies


class ManagedProcess:
    """One emulator process in its own session (so its children go with it), signalled by the kernel if the server
    dies (PR_SET_PDEATHSIG): no emulator outlives a server killed with SIGKILL.

    Output goes to `log_path`, not to a pipe, so a chatty emulator never blocks on a full pipe and its last words
    are still there after a crash. `on_exit(returncode, last_output)` is called only when the process ends on its
    own, not when we stopped it.
    """

    def __init__(
        self,
        program: str,
        argv: Sequence[str],
        *,
        cwd: Path | str,
        log_path: Path | str,
        env: dict[str, str] | None = None,
        on_exit: ExitCallback | None = None,
        niceness: int = 0,
    ) -> None:
        """`niceness` > 0 runs the program below normal priority (see lower_priority): for an emulator that burns CPU
        while idle, so that many of them cannot starve the API and the data plane."""
        self.program = program
        self.argv = [str(a) for a in argv]
        self.cwd = Path(cwd)
        self.log_path = Path(log_path)
        self.env = env
        self.on_exit = on_exit
        self.niceness = niceness
        self.process: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process else None

    async def start(self) -> None:
        """Launch the program; 409 with the reason when the host refuses."""
        if self.running:
            return
        self._stopping = False
        try:
            with open(self.log_path, "wb") as out:
                self.process = await asyncio.create_subprocess_exec(
                    *self.argv,
                    cwd=self.cwd,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                    preexec_fn=die_with_parent_hook(),
                )
        except OSError as exc:
            raise EmulatorError(f"Could not start {self.program} ({self.argv[0]}): {exc.strerror or exc}") from exc
        _LIVE.add(self)
        if self.niceness:
            lower_priority(self.process.pid, self.niceness)
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        log.debug("%s started, pid %s: %s", self.program, self.pid, " ".join(self.argv))

    async def _watch(self) -> None:
        assert self.process is not None
        returncode = await self.process.wait()
        _LIVE.discard(self)
        if self._stopping:
            return
        output = self.last_output()
        log.warning("%s (pid %s) exited on its own with return code %s", self.program, self.pid, returncode)
        if self.on_exit is not None:
            try:
                self.on_exit(returncode, output)
            except Exception:
                log.exception("Exit callback of %s failed", self.program)

    def last_output(self, limit: int = 4000) -> str:
        """The end of what the program printed, for error reports."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - limit))
                return handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def expect_exit(self) -> None:
        """The program was asked to quit through its own channel (a monitor, a hypervisor command): its exit is
        not a crash and must not be reported as one."""
        self._stopping = True

    async def wait(self) -> int | None:
        """Wait for the process to end (a graceful shutdown asked through the program's own channel)."""
        if self.process is None:
            return None
        return await self.process.wait()

    def _kill_group(self, sig: int) -> None:
        # Only while the leader is unreaped: afterwards its group id may belong to someone else.
        if self.process is None or self.process.returncode is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    async def stop(self, timeout: float = 3.0, sig: int = signal.SIGTERM) -> None:
        """Send `sig` to the whole process group, then SIGKILL after `timeout`; returns once the process is reaped.

        Programs whose children leave the group (setsid) must end those themselves before calling this.
        """
        if self.process is None:
            return
        self._stopping = True
        if self.process.returncode is None:
            self._kill_group(sig)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                log.warning("%s (pid %s) ignored signal %s, killing it", self.program, self.pid, sig)
                self._kill_group(signal.SIGKILL)
                await self.process.wait()
        if self._watcher is not None:
            await asyncio.gather(self._watcher, return_exceptions=True)
        _LIVE.discard(self)


def kill_all_live() -> None:
    """Last resort at interpreter exit: no emulator outlives the server."""
    for proc in list(_LIVE):
        proc._kill_group(signal.SIGKILL)
