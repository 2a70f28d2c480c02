"""Server side of the built-in engine: the worker processes, their control sockets, and which PC runs where.

A worker is `python -m gns3_vpcs.engine.worker`, supervised like any emulator process (gns3core's ManagedProcess:
its own session, its output in a log file, its exit reported). It connects back to a SOCK_SEQPACKET socket the
supervisor listens on, then takes one JSON request per datagram. The server does no per-PC work beyond one
request per start or stop: consoles, links and the network stack all live in the worker.

`[VPCS] builtin_workers` (default 1) sets how many workers share the PCs; each new PC goes to the least loaded
one. A worker that dies is reported as a crash of each of its PCs (`log.error`, then `vm.stopped`), exactly as a
vpcs that dies; the next start spawns a fresh worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3_vpcs.engine import protocol
from gns3core.emulator import ManagedProcess
from gns3core.errors import EmulatorError

if TYPE_CHECKING:
    from gns3_vpcs.engine.vm import EngineVPCSVM
    from gns3_vpcs.manager import VPCSManager

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30.0  # a worker's first connection (Python starting up on a loaded machine)
REQUEST_TIMEOUT = 30.0
STOP_TIMEOUT = 3.0
MAX_WORKERS = 16


class EngineWorker:
    """One worker process: its control socket, the requests in flight and the PCs it hosts."""

    def __init__(self, supervisor: EngineSupervisor, index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.process: ManagedProcess | None = None
        self.control: socket.socket | None = None
        self.pid: int | None = None
        self.pcs: dict[str, EngineVPCSVM] = {}
        self.alive = False
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._outbox: list[bytes] = []
        self._ready: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------------------

    async def spawn(self) -> None:
        """Start the process and wait for its first message; 409 naming the reason when it cannot start."""
        loop = self._loop = asyncio.get_running_loop()
        directory = self.supervisor.directory()
        path = directory / f"control-{self.index}.sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.setblocking(False)
        listener.bind(str(path))
        listener.listen(1)
        argv = [sys.executable, "-m", "gns3_vpcs.engine.worker", "--control", str(path), "--parent", str(os.getpid())]
        process = ManagedProcess("VPCS engine", argv, cwd=directory, log_path=directory / f"worker-{self.index}.log",
                                 on_exit=self._exited)
        self.process = process
        try:
            await process.start()
            accept = loop.create_task(loop.sock_accept(listener))
            ended = loop.create_task(process.wait())
            done, _ = await asyncio.wait({accept, ended}, timeout=CONNECT_TIMEOUT,
                                         return_when=asyncio.FIRST_COMPLETED)
            if accept not in done:
                accept.cancel()
                ended.cancel()
                raise EmulatorError(self._failed_to_start(process))
            ended.cancel()
            conn, _ = accept.result()
        except BaseException:
            await process.stop(timeout=1.0)
            raise
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                path.unlink()
        conn.setblocking(False)
        self.control = conn
        self.alive = True
        self._ready = loop.create_future()
        loop.add_reader(conn.fileno(), self._readable)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), CONNECT_TIMEOUT)
        except TimeoutError:
            await self.stop()
            raise EmulatorError(self._failed_to_start(process)) from None
        log.info("built-in VPCS engine worker %s started (pid %s)", self.index, self.pid)

    @staticmethod
    def _failed_to_start(process: ManagedProcess) -> str:
        code = process.returncode
        how = f"ended with return code {code}" if code is not None else f"did not connect within {CONNECT_TIMEOUT} s"
        return f"The built-in VPCS engine could not start: it {how}\n{process.last_output()}".rstrip()

    async def stop(self) -> None:
        """Requested stop (server shutting down): not a crash, nothing is reported."""
        if self.alive and self.control is not None:
            with contextlib.suppress(OSError):
                self.control.send(protocol.encode({"op": "shutdown"}))
        self._disconnect("the built-in VPCS engine was stopped")
        if self.process is not None:
            await self.process.stop(timeout=STOP_TIMEOUT)

    def _exited(self, returncode: int, output: str) -> None:
        """The process ended on its own (killed, crashed): every PC it hosted crashed with it."""
        self._disconnect(f"the built-in VPCS engine (pid {self.pid}) ended with return code {returncode}")
        self.supervisor.worker_died(self, returncode, output)

    def _disconnect(self, reason: str) -> None:
        self.alive = False
        conn, self.control = self.control, None
        if conn is not None and self._loop is not None:
            self._loop.remove_reader(conn.fileno())
            if self._outbox:
                self._loop.remove_writer(conn.fileno())
            conn.close()
        self._outbox.clear()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(EmulatorError(reason))
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(EmulatorError(reason))

    # -- requests ------------------------------------------------------------------------------------------------------

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its reply; 409 with the worker's message when it refuses."""
        if not self.alive or self._loop is None:
            raise EmulatorError("the built-in VPCS engine is not running")
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._pending[number] = future
        self._send(protocol.encode({"id": number, "op": op, **fields}))
        try:
            reply = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        except TimeoutError:
            message = f"the built-in VPCS engine did not answer {op} within {REQUEST_TIMEOUT:.0f} s"
            raise EmulatorError(message) from None
        finally:
            self._pending.pop(number, None)
        if "error" in reply:
            raise EmulatorError(str(reply["error"]))
        return reply

    def _send(self, data: bytes) -> None:
        if self._outbox:
            self._outbox.append(data)
            return
        try:
            self.control.send(data)  # type: ignore[union-attr]
        except BlockingIOError:
            self._outbox.append(data)
            self._loop.add_writer(self.control.fileno(), self._writable)  # type: ignore[union-attr]

    def _writable(self) -> None:
        conn = self.control
        if conn is None:
            return
        while self._outbox:
            try:
                conn.send(self._outbox[0])
            except BlockingIOError:
                return
            except OSError:
                break
            self._outbox.pop(0)
        self._loop.remove_writer(conn.fileno())  # type: ignore[union-attr]

    def _readable(self) -> None:
        conn = self.control
        while conn is not None:
            try:
                data = conn.recv(protocol.MESSAGE_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._disconnect(f"the built-in VPCS engine (pid {self.pid}) closed its control socket")
                return
            try:
                message = protocol.decode(data)
            except ValueError:
                log.error("built-in VPCS engine: unreadable message %r", data[:200])
                continue
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        number = message.get("id")
        if number is not None:
            future = self._pending.get(number)
            if future is not None and not future.done():
                future.set_result(message)
            return
        event = message.get("event")
        if event == "ready":
            self.pid = message.get("pid")
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif event == "exited":
            vm = self.pcs.pop(str(message.get("pc")), None)
            if vm is not None:
                vm.engine_exited(int(message.get("code", 0)), str(message.get("output", "")))


OWNER_FILE = "server"


def _process_identity(pid: int) -> str | None:
    """`<pid> <start time in clock ticks>`: unique for the life of the machine (a reused pid starts later)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return f"{pid} {int(fields[19])}"


def remove_stale_directories() -> None:
    """Engine directories whose server is gone (it was killed along with its workers): nobody else removes them."""
    for directory in Path(tempfile.gettempdir()).glob(protocol.DIRECTORY_PREFIX + "*"):
        try:
            owner = (directory / OWNER_FILE).read_text().split()
        except OSError:
            continue  # not written yet by its server, or not ours to judge
        if len(owner) == 2 and owner[0].isdigit() and _process_identity(int(owner[0])) != " ".join(owner):
            shutil.rmtree(directory, ignore_errors=True)


class EngineSupervisor:
    """The workers of one server and the PCs they run."""

    def __init__(self, manager: VPCSManager) -> None:
        self.manager = manager
        self.workers: list[EngineWorker] = []
        self._indexes = itertools.count()
        self._directory: Path | None = None
        self._spawning: asyncio.Lock | None = None
        self._warming: asyncio.Task[None] | None = None

    def directory(self) -> Path:
        """Control sockets and worker logs: a private temporary directory, removed with the supervisor. It names its
        server (pid and start time), so the directories of servers that died without removing theirs go too."""
        if self._directory is None:
            remove_stale_directories()
            directory = Path(tempfile.mkdtemp(prefix=protocol.DIRECTORY_PREFIX))
            (directory / OWNER_FILE).write_text(_process_identity(os.getpid()) or "")
            self._directory = directory
        return self._directory

    def wanted_workers(self) -> int:
        section = self.manager.server.config.section("VPCS")
        try:
            wanted = int(section.get("builtin_workers") or 1)
        except ValueError:
            wanted = 1
        return max(1, min(wanted, MAX_WORKERS))

    async def _worker(self) -> EngineWorker:
        """The least loaded live worker, spawning one when fewer than wanted are running."""
        if self._spawning is None:
            self._spawning = asyncio.Lock()
        live = [w for w in self.workers if w.alive]
        if len(live) >= self.wanted_workers():
            return min(live, key=lambda w: len(w.pcs))
        async with self._spawning:
            live = [w for w in self.workers if w.alive]
            if len(live) >= self.wanted_workers():
                return min(live, key=lambda w: len(w.pcs))
            worker = EngineWorker(self, next(self._indexes))
            await worker.spawn()
            self.workers.append(worker)
            return worker

    def warm_up(self) -> None:
        """A built-in VM was wired: start a worker in the background if none runs, so its first start is quick.
        A failure here is not reported: the start that needs the worker tries again and says why."""
        if self._warming is not None or any(w.alive for w in self.workers):
            return

        async def spawn() -> None:
            try:
                await self._worker()
            except Exception as exc:  # noqa: BLE001 - reported by the start that needs it
                log.debug("built-in VPCS engine warm-up failed: %s", exc)
            finally:
                self._warming = None

        self._warming = asyncio.get_running_loop().create_task(spawn())

    async def start_pc(self, vm: EngineVPCSVM, spec: dict[str, Any]) -> EngineWorker:
        """Run `vm` in a worker; returns once its console listens. 409 with the worker's reason otherwise."""
        worker = await self._worker()
        await worker.request("start", pc=vm.id, **spec)
        worker.pcs[vm.id] = vm
        return worker

    async def stop_pc(self, vm: EngineVPCSVM, worker: EngineWorker) -> None:
        """End `vm` (its ports are free once this returns). A worker that is gone already took it with it."""
        worker.pcs.pop(vm.id, None)
        if worker.alive:
            with contextlib.suppress(EmulatorError):
                await worker.request("stop", pc=vm.id)

    async def relink(self, vm: EngineVPCSVM, worker: EngineWorker, link: dict[str, Any] | None) -> None:
        await worker.request("link", pc=vm.id, link=link)

    def worker_died(self, worker: EngineWorker, returncode: int, output: str) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
        hosted, worker.pcs = list(worker.pcs.values()), {}
        log.error("built-in VPCS engine worker %s (pid %s) ended with return code %s; %d virtual PCs stopped",
                  worker.index, worker.pid, returncode, len(hosted))
        message = (f"(the built-in VPCS engine, pid {worker.pid}, ended; it ran {len(hosted)} virtual PCs)\n"
                   f"{output}")
        for vm in hosted:
            vm.engine_exited(returncode, message)

    async def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)
        workers, self.workers = self.workers, []
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
