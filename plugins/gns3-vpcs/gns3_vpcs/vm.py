"""One VPCS virtual PC: its files, its command line, and the vpcs process pair that runs it.

Start returns once vpcs has forked its virtual PC and its console port is listening (about 2 ms here), so a client
may connect to the console as soon as the start request answers, and a vpcs that fails at once is a 409 carrying
its output rather than a later `log.error`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3_vpcs import program, relay, startup_script
from gns3_vpcs.vpc_child import VPCChild
from gns3core.emulator import Adapter, BaseVM, ManagedProcess
from gns3core.emulator.links import LinkWiring
from gns3core.emulator.nio import NIO, NIOUDP
from gns3core.emulator.process import lower_priority
from gns3core.errors import Conflict, EmulatorError
from gns3core.files import atomic_write

if TYPE_CHECKING:
    from gns3_vpcs.manager import VPCSManager
    from gns3core.projects import Project

log = logging.getLogger(__name__)

READY_TIMEOUT = 10.0
_background: set[asyncio.Task] = set()  # relays being closed after a crash
LOG_NAME = "vpcs.log"
# vpcs 0.5b2 busy-loops (1-2% of a core per idle PC). At nice 19 it takes the CPU others leave: with 100 of them on 2
# cores, the server and its relays still forward every ping (at nice 0, half of the pairs' pings timed out).
NICENESS = 19


class VPCSVM(BaseVM):
    process_name = "VPCS"

    def __init__(self, manager: VPCSManager, project: Project, vm_id: str, name: str, console: int | None,
                 mac_id: int) -> None:
        super().__init__(manager, project, vm_id, name, console)
        self.manager: VPCSManager = manager
        self.mac_id = mac_id
        self._process: ManagedProcess | None = None
        self._vpc: VPCChild | None = None
        self._starting = False
        self._early_exit: tuple[int, str] | None = None
        self._vpc_died: int | None = None
        self._made_dir: Path | None = None
        self._made_for: Path | None = None
        self._script_seen: tuple[tuple[int, int, int], str] | None = None
        self._relay: relay.VPCSRelay | None = None
        self.command_line = ""  # the vpcs command of the last start, shown by the 1.5.4 client; not persisted

    # -- files -----------------------------------------------------------------------------------------------------

    @property
    def vm_directory(self) -> Path:
        files_dir = self.project.files_dir
        if self._made_dir is None or self._made_for != files_dir:  # created once, not on every GET
            path = files_dir / self.module_name / self.id
            path.mkdir(parents=True, exist_ok=True)
            self._made_dir, self._made_for = path, files_dir
        return self._made_dir

    @property
    def script_path(self) -> Path:
        return self.vm_directory / program.SCRIPT_NAME

    def read_script(self) -> str | None:
        """The startup script as it is on disk now (vpcs's own `save` rewrites it). Read again only when the file
        changed: every VM object carries it, and starts, stops and GETs would otherwise read it each time."""
        path = self.script_path
        try:
            st = os.stat(path)
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            if self._script_seen is not None and self._script_seen[0] == key:
                return self._script_seen[1]
            content = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            self._script_seen = None
            return None
        except OSError as exc:
            raise EmulatorError(f"Could not read the startup script of VPCS {self.name}: {exc.strerror}") from exc
        self._script_seen = (key, content)
        return content

    def write_script(self, content: str) -> None:
        atomic_write(self.script_path, startup_script.render(content, self.name))

    def as_json(self) -> dict[str, Any]:
        script = self.read_script()
        return {
            "name": self.name,
            "vm_id": self.id,
            "vm_directory": str(self.vm_directory),
            "status": self.status,
            "console": self.console,
            "project_id": self.project.id,
            "startup_script": script,
            "startup_script_path": program.SCRIPT_NAME if script is not None else None,
            "command_line": self.command_line,
        }

    # -- updates -----------------------------------------------------------------------------------------------------

    async def update(self, changes: dict[str, Any]) -> None:
        """PUT: `name`, then `console`, then `startup_script`, whatever their order in the request."""
        name = changes.get("name")
        if name is not None and name != self.name:
            self.rename(name)
        console = changes.get("console")
        if console is not None and console != self.console:
            if self.running:
                raise Conflict(f"The console port of VPCS {self.name} cannot change while it is running "
                               f"(vpcs holds port {self.console}); stop it first")
            self.change_console(console)
        if "startup_script" in changes:
            await asyncio.to_thread(self.write_script, changes["startup_script"] or "")

    def rename(self, new: str) -> None:
        old = self.name
        self.name = new
        content = self.read_script()
        if content is not None:
            updated = startup_script.rename(content, old, new)
            if updated != content:
                atomic_write(self.script_path, updated)

    # -- ports -------------------------------------------------------------------------------------------------------

    def check_port(self, adapter_number: int, port_number: int) -> Adapter:
        """One adapter, one port: `port_number` must be 0; `adapter_number` is ignored, as the reference did."""
        if port_number != 0:
            raise Conflict(f"Port {port_number} doesn't exist in adapter 0 (a VPCS has one port: 0)")
        return self.adapters[0]

    @property
    def nio(self) -> NIO | None:
        return self.adapters[0].ports.get(0)

    # -- lifecycle ---------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.running:
            return
        nio = self.nio
        if nio is None:
            raise EmulatorError("This VPCS instance must be connected in order to start")
        path = program.resolve_path(self.manager.configured_path())
        version = await program.detect_version(path, str(self.vm_directory))
        if relay.needed(self, nio):
            await self._open_relay()
            nio = self._relay.vpcs_nio  # type: ignore[union-attr]
        try:
            launch = program.Launch(path=path, version=version, console=self.console or 0, mac_id=self.mac_id,
                                    nio=nio, rhost=await _tunnel_host(nio), script=self.script_path.is_file())
        except BaseException:
            await self._close_relay()
            raise
        argv = program.command_line(launch)
        process = ManagedProcess("VPCS", argv, cwd=self.vm_directory,
                                 log_path=self.vm_directory / LOG_NAME, on_exit=self.process_exited,
                                 niceness=NICENESS)
        self.command_line = program.describe(argv)
        self._process, self._early_exit, self._vpc_died, self._starting = process, None, None, True
        vpc = None
        try:
            await process.start()
            vpc = await self._until_ready(process)
        except BaseException:
            if self._process is process:
                self._process = None
            await _end(process, vpc)
            await self._close_relay()
            raise
        finally:
            self._starting = False
        self._vpc = vpc
        if vpc is not None:
            vpc.watch(self._vpc_exited)
        self.set_started()

    async def _until_ready(self, process: ManagedProcess) -> VPCChild | None:
        """Until the VPC is forked and the console listens; 409 with vpcs's output if it ends first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        probe = self.manager.console_probe
        delay = 0.0005
        vpc: VPCChild | None = None
        while True:
            if self._process is not process or self.closed:
                raise EmulatorError(f"VPCS {self.name} was closed while it was starting")
            if self._early_exit is not None or not process.running:
                returncode, output = self._early_exit or (process.returncode, process.last_output())
                hint = ""
                if "bind port" in output:
                    hint = f"\nAnother program holds TCP port {self.console}: give this VM another console port"
                raise EmulatorError(f"VPCS {self.name} could not start, return code: {returncode}\n{output}"
                                    f"command: {program.describe(process.argv)}{hint}")
            if vpc is None:
                vpc = VPCChild.find(process.pid or 0)
                if vpc is not None:
                    lower_priority(vpc.pid, NICENESS)  # in case it forked before vpcs itself was lowered
            if vpc is not None and probe.listens(self.console or 0, process.pid or 0) is not False:
                return vpc
            if loop.time() > deadline:
                raise EmulatorError(f"VPCS {self.name} did not open its console on TCP port {self.console} within "
                                    f"{READY_TIMEOUT:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.01)

    async def stop(self) -> None:
        """Ends vpcs and its VPC (a few ms); emits `vm.stopped` even when it was not running, as the reference."""
        process, vpc = self._process, self._vpc
        self._process = self._vpc = None
        await _end(process, vpc)
        await self._close_relay()
        self.set_stopped()

    async def close(self) -> None:
        if self.closed:
            return
        try:
            if self._process is not None and not self.running:  # a start in progress
                process, self._process = self._process, None
                await _end(process, None)
        finally:
            try:
                await super().close()
            finally:
                await self._close_relay()
                self.manager.release_mac(self.project, self.mac_id)

    def process_exited(self, returncode: int, output: str) -> None:
        """vpcs ended on its own: end its orphaned VPC too, then report (`log.error`, `vm.stopped`)."""
        if self._starting:
            self._early_exit = (returncode, output)
            return
        if self._process is None:  # a stop already took it
            return
        vpc, self._vpc, self._process = self._vpc, None, None
        if vpc is not None:
            vpc.kill()
            vpc.close()
        if self._vpc_died is not None:
            output = f"(its virtual PC, pid {self._vpc_died}, ended first)\n{output}"
        if self._relay is not None:
            task = asyncio.get_running_loop().create_task(self._close_relay())
            _background.add(task)
            task.add_done_callback(_background.discard)
        super().process_exited(returncode, output)

    # -- the relay (gns3_vpcs.relay) ---------------------------------------------------------------------------------

    async def _open_relay(self) -> None:
        """vpcs talks to a relay on the loopback; the core's link wiring joins it to the NIO (409 on failure).

        Relays forward in the data plane's shared worker, one poller thread for all: as thread bridges of the server,
        their frames waited for the GIL, and with 60 busy-looping vpcs on 2 cores 28 of 30 pairs' pings timed out."""
        self._relay = relay.VPCSRelay(self)
        self.links = LinkWiring(self, self._relay.endpoint, process_bridges="shared")
        try:
            await self.links.start()
        except BaseException:
            await self._close_relay()
            raise

    async def _close_relay(self) -> None:
        links, current = self.links, self._relay
        self.links, self._relay = None, None
        try:
            if links is not None:
                await links.stop()
        finally:
            if current is not None:
                current.release()

    def _vpc_exited(self) -> None:
        """The VPC ended on its own: end the console server too; its exit is then reported as a crash."""
        vpc, process = self._vpc, self._process
        if vpc is None or process is None:
            return
        self._vpc_died = vpc.pid
        log.warning("VPCS %s: the virtual PC (pid %s) ended on its own", self.name, vpc.pid)
        if process.running and process.pid is not None:
            _kill_group(process.pid)


async def _end(process: ManagedProcess | None, vpc: VPCChild | None) -> None:
    """SIGKILL is right for vpcs (nothing to save; it takes 100 ms to obey SIGTERM). The VPC goes first, so its
    parent reaps it and no zombie is left to init; then the parent, through ManagedProcess so it is not reported."""
    if process is not None and process.running and vpc is None:
        vpc = VPCChild.find(process.pid or 0)
    if vpc is not None:
        vpc.unwatch()
        if process is not None and process.running:
            vpc.kill()
            await vpc.wait_reaped()
        vpc.kill()
    if process is not None:
        if process.running and process.pid is not None:
            _kill_group(process.pid)
        await process.stop()  # no await between the kill and this: the exit is never taken for a crash
    if vpc is not None:
        vpc.close()


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _tunnel_host(nio: NIO) -> str | None:
    """vpcs takes the remote end of its tunnel as an IPv4 address."""
    if not isinstance(nio, NIOUDP):
        return None
    try:
        address = ipaddress.ip_address(nio.rhost)
    except ValueError:
        pass
    else:
        if address.version != 4:
            raise EmulatorError(f"vpcs tunnels are IPv4 only: rhost {nio.rhost} cannot be used")
        return nio.rhost
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(nio.rhost, nio.rport, family=socket.AF_INET,
                                                             type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise EmulatorError(f"Could not resolve the tunnel's rhost {nio.rhost} to an IPv4 address: {exc}") from exc
    return str(infos[0][4][0])

