"""One IOU instance: its image and settings, the checks before it starts, its files, process, console and links.

The server does iouyap's job itself: a netio node (application id + 512) faces every port of the instance and the
core's link wiring bridges each port that has a NIO to it, so links and captures change while IOU runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3_iou import checks, files, images, licence
from gns3_iou.console import IOUConsole
from gns3_iou.nvram import NvramError
from gns3core.dataplane import DataPlaneError, NetioNode, netio_directory
from gns3core.dataplane.netio import socket_in_use
from gns3core.emulator.links import LinkWiring
from gns3core.emulator.nio import NIO
from gns3core.emulator.process import ManagedProcess
from gns3core.emulator.vm import Adapter, BaseVM
from gns3core.errors import Conflict, EmulatorError
from gns3core.files import atomic_write, cached_md5

if TYPE_CHECKING:
    from gns3_iou.manager import IOUManager

log = logging.getLogger(__name__)

PORTS_PER_ADAPTER = 4
DEFAULT_ADAPTERS = 2
SERIAL_LINK_TYPES = {"DLT_PPP_SERIAL": "DLT_PPP_SERIAL", "DLT_C_HDLC": "DLT_C_HDLC", "DLT_FRELAY": "DLT_FRELAY"}
SOCKET_WAIT = 10.0  # seconds IOU gets to bind its netio socket after it was started


def _md5_of_image(path: Path) -> str | None:
    try:
        return cached_md5(path) if path.is_file() else None
    except OSError:
        return None


class IOUVM(BaseVM):
    """An IOU router or switch. `application_id` (1-511) names its sockets and NVRAM; bay n is adapter n."""

    process_name = "IOU"
    manager: IOUManager

    def __init__(self, manager: IOUManager, project: Any, vm_id: str, name: str, console: int | None = None):
        super().__init__(manager, project, vm_id, name, console)
        try:
            self.application_id = manager.allocate_application_id()
        except BaseException:
            self.server.ports.release_tcp_port(self.console, self.project.id)
            raise
        self.image: Path | None = None
        self.md5sum: str | None = None
        self.ethernet_adapters = DEFAULT_ADAPTERS
        self.serial_adapters = DEFAULT_ADAPTERS
        self.ram = 256
        self.nvram = 128
        self.l1_keepalives = False
        self.use_default_iou_values: bool | None = True
        self.command_line = ""
        self.creating = False
        self._iourc_dir: Path | None = None
        self._process: ManagedProcess | None = None
        self._iouyap: ManagedProcess | None = None
        self._node: NetioNode | None = None
        self._console: IOUConsole | None = None
        self._lock = asyncio.Lock()
        self._exits: set[asyncio.Task] = set()
        self.links = LinkWiring(self, self._endpoint_for)
        self._build_adapters()

    # -- the API object -------------------------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        directory = self.project.module_dir(self.module_name) / self.id
        iourc = self._iourc()
        return {
            "name": self.name,
            "vm_id": self.id,
            "project_id": self.project.id,
            "vm_directory": str(directory),
            "console": self.console,
            "status": self.status,
            "path": images.output_path(self.server, self.image),
            "md5sum": self.md5sum,
            "serial_adapters": self.serial_adapters,
            "ethernet_adapters": self.ethernet_adapters,
            "ram": self.ram,
            "nvram": self.nvram,
            "l1_keepalives": self.l1_keepalives,
            "startup_config": files.STARTUP_CONFIG if (directory / files.STARTUP_CONFIG).exists() else None,
            "private_config": files.PRIVATE_CONFIG if (directory / files.PRIVATE_CONFIG).exists() else None,
            "use_default_iou_values": self.use_default_iou_values,
            "iourc_path": str(iourc.path) if iourc is not None else None,
            "command_line": self.command_line,
        }

    # -- settings ---------------------------------------------------------------------------------------------------

    async def update_field(self, key: str, value: Any) -> None:
        if key == "path":
            await self._set_image(value)
        elif key in ("ethernet_adapters", "serial_adapters"):
            if value is not None and value != getattr(self, key):
                self._set_adapter_count(key, value)
        elif key in ("ram", "nvram", "l1_keepalives"):
            if value is not None:
                setattr(self, key, value)
        elif key == "use_default_iou_values":
            self.use_default_iou_values = value
        elif key == "startup_config_content":
            await asyncio.to_thread(self._write_config, files.STARTUP_CONFIG, value)
        elif key == "private_config_content":
            await asyncio.to_thread(self._write_config, files.PRIVATE_CONFIG, value)
        elif key == "iourc_content":
            await asyncio.to_thread(self._write_iourc_content, value)
        # md5sum, startup_config and private_config name files of the client: nothing to do here

    async def _set_image(self, value: str | None) -> None:
        path = images.resolve_image(self.server, value)
        self.image = path
        self.md5sum = await asyncio.to_thread(_md5_of_image, path) if path is not None else None

    def _set_adapter_count(self, key: str, value: int) -> None:
        if self.running:
            raise Conflict(f"Cannot change the number of adapters of IOU \"{self.name}\" while it is running")
        counts = {"ethernet_adapters": self.ethernet_adapters, "serial_adapters": self.serial_adapters, key: value}
        if sum(counts.values()) > files.BAYS:
            raise Conflict(f"IOU \"{self.name}\" cannot have more than {files.BAYS} adapters in all (bays 0-15): "
                           f"{counts['ethernet_adapters']} Ethernet + {counts['serial_adapters']} serial asked")
        for adapter in self.adapters:  # new adapters: the links of the old ones are dropped
            for nio in adapter.ports.values():
                self.release_nio(nio)
        setattr(self, key, value)
        self._build_adapters()

    def _build_adapters(self) -> None:
        self.adapters = [Adapter(PORTS_PER_ADAPTER) for _ in range(self.ethernet_adapters + self.serial_adapters)]

    def _write_config(self, filename: str, value: str | None) -> None:
        """Write a config file from the API; empty never erases, and a create does not replace an existing one
        (a project being reopened keeps what IOU saved)."""
        if not value:
            return
        path = self.vm_directory / filename
        if self.creating and path.exists() and path.stat().st_size > 0:
            return
        if filename == files.STARTUP_CONFIG:
            value = value.replace("%h", self.name)
            files.vlan_path(self.vm_directory, self.application_id).unlink(missing_ok=True)
        atomic_write(path, value)

    def _write_iourc_content(self, value: str | None) -> None:
        """`iourc_content` lives in a private temporary folder: it is a licence, not part of the project."""
        if not value:
            if self._iourc_dir is not None:
                (self._iourc_dir / "iourc").unlink(missing_ok=True)
            return
        if self._iourc_dir is None:
            self._iourc_dir = Path(tempfile.mkdtemp(prefix="gns3-iou-"))
        atomic_write(self._iourc_dir / "iourc", value, mode=0o600)

    def _iourc(self) -> licence.Iourc | None:
        configured = self.manager.config.get("iourc_path")
        content = self._iourc_dir / "iourc" if self._iourc_dir is not None else None
        directory = self.project.module_dir(self.module_name) / self.id
        return licence.find_iourc(configured, directory, content)

    # -- adapters and links -----------------------------------------------------------------------------------------

    def adapter(self, adapter_number: int) -> Adapter:
        if not 0 <= adapter_number < len(self.adapters):
            raise Conflict(f"Adapter {adapter_number} does not exist for IOU \"{self.name}\"")
        return self.adapters[adapter_number]

    def check_port(self, adapter_number: int, port_number: int) -> Adapter:
        adapter = self.adapter(adapter_number)
        if not 0 <= port_number < adapter.port_count:
            raise Conflict(f"Port {port_number} does not exist in adapter {adapter_number}")
        return adapter

    def is_serial(self, adapter_number: int) -> bool:
        return adapter_number >= self.ethernet_adapters

    def capture_link_type(self, adapter_number: int, requested: str | None) -> str:
        """The pcap link type follows the port: Ethernet bays are always Ethernet; a serial port records the
        encapsulation the client names (PPP, HDLC, Frame Relay), Cisco HDLC (IOS's default) for anything else."""
        if not self.is_serial(adapter_number):
            return "DLT_EN10MB"
        return SERIAL_LINK_TYPES.get((requested or "").upper(), "DLT_C_HDLC")

    def _endpoint_for(self, adapter_number: int, port_number: int):
        if self._node is None:
            raise DataPlaneError(f"IOU {self.name} has no netio node: it is not running")
        return self._node.endpoint(adapter_number, port_number)

    async def add_nio(self, adapter_number: int, port_number: int, nio: NIO) -> None:
        self.check_port(adapter_number, port_number)
        await super().add_nio(adapter_number, port_number, nio)
        await self._reload_iouyap()

    async def remove_nio(self, adapter_number: int, port_number: int) -> NIO | None:
        nio = await super().remove_nio(adapter_number, port_number)
        await self._reload_iouyap()
        return nio

    async def start_capture(self, adapter_number: int, port_number: int, path: Path, data_link_type: str) -> None:
        adapter = self.check_port(adapter_number, port_number)
        if not self.running:
            raise Conflict("Cannot capture traffic on a non started VM")
        nio = adapter.ports.get(port_number)
        if nio is None:
            raise Conflict(f"Port {port_number} of adapter {adapter_number} of IOU \"{self.name}\" has no link "
                           "to capture: add a NIO first")
        if nio.capturing:
            raise Conflict(f"Packet capture is already activated on {adapter_number}/{port_number}")
        await super().start_capture(adapter_number, port_number, path,
                                    self.capture_link_type(adapter_number, data_link_type))
        await self._reload_iouyap()

    async def stop_capture(self, adapter_number: int, port_number: int) -> None:
        self.check_port(adapter_number, port_number)
        if not self.running:
            raise Conflict("Cannot capture traffic on a non started VM")
        await super().stop_capture(adapter_number, port_number)
        await self._reload_iouyap()

    # -- lifecycle --------------------------------------------------------------------------------------------------

    async def start(self, iourc_content: str | None = None) -> None:
        async with self._lock:
            if iourc_content:
                await asyncio.to_thread(self._write_iourc_content, iourc_content)
            if self.running:
                return
            await self._start_locked()

    async def _start_locked(self) -> None:
        image = self.image
        await asyncio.to_thread(checks.check_image, image)
        assert image is not None
        iouyap = await asyncio.to_thread(self._iouyap_program)
        await asyncio.to_thread(checks.check_libraries, image)
        directory = self.vm_directory
        await asyncio.to_thread(self._claim_application_id)
        appid = self.application_id
        await asyncio.to_thread(files.adopt_files, directory, appid)
        iourc = await asyncio.to_thread(self._check_iourc)
        env = dict(os.environ)
        env.setdefault("IOURC", str(iourc.path))
        argv = await self._command(image, env, directory)
        try:
            await asyncio.to_thread(files.write_netmap, directory, appid)
            await asyncio.to_thread(files.push_configs, directory, appid, self.nvram)
        except (NvramError, OSError) as exc:
            raise EmulatorError(f"Cannot write the configs of IOU \"{self.name}\" into its NVRAM: {exc}") from None
        self.command_line = " ".join(shlex.quote(arg) for arg in argv)
        log.info("Starting IOU %s: %s", self.name, self.command_line)
        process = ManagedProcess("IOU", argv, cwd=directory, log_path=directory / "iou.log", env=env)
        process.on_exit = lambda returncode, output: self._iou_exited(process, returncode, output)
        try:
            if iouyap is None:
                self._node = NetioNode(files.peer_id(appid), appid, netio_directory())
                try:
                    await asyncio.to_thread(self._node.open)
                except DataPlaneError as exc:
                    raise EmulatorError(f"Cannot open the links of IOU \"{self.name}\": {exc}") from None
            self._console = IOUConsole(self.name, self.server.console_host, self.console, netio_directory(), appid)
            await self._console.start()
            self._process = process
            try:
                await process.start()
            except EmulatorError as exc:
                cause = exc.__cause__
                if isinstance(cause, OSError):
                    raise EmulatorError(checks.exec_failure(image, cause)) from None
                raise
            await self._wait_until_listening(process, appid, "IOU")
            if iouyap is None:
                await self.links.start()
            else:
                await self._start_iouyap(iouyap, directory, env)
        except BaseException:
            await self._teardown()
            raise
        self.set_started()

    async def _command(self, image: Path, env: dict[str, str], directory: Path) -> list[str]:
        """`<image> [-e N] [-s N] [-n NVRAM -m RAM] -L [-l] <appid>` (-e/-s only when not 2)."""
        argv = [str(image)]
        if self.ethernet_adapters != DEFAULT_ADAPTERS:
            argv += ["-e", str(self.ethernet_adapters)]
        if self.serial_adapters != DEFAULT_ADAPTERS:
            argv += ["-s", str(self.serial_adapters)]
        if self.use_default_iou_values is False:
            argv += ["-n", str(self.nvram), "-m", str(self.ram)]
        argv.append("-L")
        if self.l1_keepalives:
            if not await asyncio.to_thread(checks.supports_l1_keepalives, image, env, directory):
                raise EmulatorError(f"layer 1 keepalive messages are not supported by {image}")
            argv.append("-l")
        argv.append(str(self.application_id))
        return argv

    def _check_iourc(self) -> licence.Iourc:
        iourc = self._iourc()
        if iourc is None:
            raise EmulatorError("Could not find an iourc file (IOU license): set [IOU] iourc_path, put it in "
                                "~/.iourc, or send its content as iourc_content")
        if not iourc.path.is_file():
            raise EmulatorError(f"The iourc file {iourc.path} ({iourc.origin}) is not a regular file or is missing")
        if self.manager.config.getbool("license_check", True):
            licence.check_licence(iourc.path, licence.host_name(), licence.host_id())
        return iourc

    def _claim_application_id(self) -> None:
        """Another program on this host (another server, a stray IOU) may hold this id's sockets: take a free id."""
        directory = netio_directory()
        appid = self.application_id
        if socket_in_use(directory / str(appid)) or socket_in_use(directory / str(files.peer_id(appid))):
            self.application_id = self.manager.replace_application_id(appid)
            log.warning("IOU %s: application id %s is in use on this host, using %s", self.name, appid,
                        self.application_id)

    async def _wait_until_listening(self, process: ManagedProcess, node: int, what: str) -> None:
        """IOU (or iouyap) binds its netio socket once it is up; stop waiting (and report its output) if it dies
        first."""
        target = netio_directory() / str(node)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SOCKET_WAIT
        while loop.time() < deadline:
            if not process.running:
                await asyncio.sleep(0.05)  # let the last words reach the log
                raise EmulatorError(f"{what} process has stopped, return code: {process.returncode}\n"
                                    f"{process.last_output()}")
            if await asyncio.to_thread(socket_in_use, target):
                return
            await asyncio.sleep(0.05)
        log.warning("%s of %s did not open %s within %s s; links may stay silent until it does", what, self.name,
                    target, SOCKET_WAIT)

    # -- a real iouyap, when the configuration names one -------------------------------------------------------------

    def _iouyap_program(self) -> str | None:
        """The iouyap `[IOU] iouyap_path` names (None: the data plane does its job)."""
        configured = self.manager.config.get("iouyap_path")
        if not configured:
            return None
        path = shutil.which(configured) if os.sep not in configured else os.path.expanduser(configured)
        if path is None or not os.path.isfile(path):
            raise EmulatorError(f"iouyap is necessary to start IOU: '{configured}' ([IOU] iouyap_path) was not "
                                "found; remove the setting to let the server link IOU itself")
        if not os.access(path, os.X_OK):
            raise EmulatorError(f"iouyap '{path}' ([IOU] iouyap_path) is not executable")
        return path

    def _iouyap_ports(self) -> list[tuple[int, int, NIO]]:
        return [(bay, unit, nio) for bay, adapter in enumerate(self.adapters) for unit, nio in adapter.ports.items()]

    async def _start_iouyap(self, program: str, directory: Path, env: dict[str, str]) -> None:
        appid = self.application_id
        await asyncio.to_thread(atomic_write, directory / "iouyap.ini", files.iouyap_ini(appid, self._iouyap_ports()))
        process = ManagedProcess("iouyap", [program, "-q", str(files.peer_id(appid))], cwd=directory,
                                 log_path=directory / "iouyap.log", env=env)
        process.on_exit = lambda returncode, output: self._iou_exited(process, returncode, output)
        self._iouyap = process
        await process.start()
        await self._wait_until_listening(process, files.peer_id(appid), "iouyap")

    async def _reload_iouyap(self) -> None:
        """Links and captures changed: iouyap rereads its configuration on SIGHUP."""
        process = self._iouyap
        if process is None or not process.running:
            return
        await asyncio.to_thread(atomic_write, self.vm_directory / "iouyap.ini",
                                files.iouyap_ini(self.application_id, self._iouyap_ports()))
        os.kill(process.pid, signal.SIGHUP)

    async def _teardown(self) -> None:
        """Everything of a running instance goes: links, console, process, netio node."""
        await self.links.stop()
        iouyap, self._iouyap = self._iouyap, None
        if iouyap is not None:
            await iouyap.stop()
        console, self._console = self._console, None
        if console is not None:
            await console.stop()
        process, self._process = self._process, None
        if process is not None:
            await process.stop()
        node, self._node = self._node, None
        if node is not None:
            await asyncio.to_thread(node.close)

    async def stop(self) -> None:
        async with self._lock:
            was_running = self.running
            await self._teardown()
            await self._save_configs_quietly()
            if was_running:
                self.set_stopped()

    def _iou_exited(self, process: ManagedProcess, returncode: int, output: str) -> None:
        """IOU ended by itself (crash, kill from outside): everything of the VM stops, then it is reported."""
        task = asyncio.get_running_loop().create_task(self._after_exit(process, returncode, output))
        self._exits.add(task)
        task.add_done_callback(self._exits.discard)

    async def _after_exit(self, process: ManagedProcess, returncode: int, output: str) -> None:
        async with self._lock:
            if process is not self._process and process is not self._iouyap:
                return  # already stopped through the API
            await self._teardown()
            if not self.running:
                return
            if process.program == "IOU":
                self.process_exited(returncode, output)
            else:  # iouyap: IOU went down with it
                message = f"iouyap process has stopped, return code: {returncode}\n{output}"
                log.error("IOU %s: %s", self.name, message)
                self.project.emit("log.error", {"message": message})
                self.set_stopped()

    async def _save_configs_quietly(self) -> None:
        try:
            await asyncio.to_thread(files.save_configs, self.vm_directory, self.application_id)
        except (Conflict, OSError) as exc:
            log.warning("Could not save the configs of IOU %s: %s", self.name, exc)
            self.project.warn(f"Could not save the configs of IOU {self.name}: {exc}")

    async def save_configs(self) -> None:
        """Export the NVRAM's configs into the VM's config files (configs/save, commit, stop and close)."""
        await asyncio.to_thread(files.save_configs, self.vm_directory, self.application_id)

    def configs(self) -> dict[str, str]:
        """The configs as IOU last saved them (NVRAM), else as given to the server (the config files)."""
        directory = self.project.module_dir(self.module_name) / self.id
        found = files.nvram_configs(directory, self.application_id)
        if found is None:
            found = (files.read_text(directory / files.STARTUP_CONFIG),
                     files.read_text(directory / files.PRIVATE_CONFIG))
        result = {}
        for key, value in zip(("startup_config_content", "private_config_content"), found, strict=True):
            if value:
                result[key] = value
        return result

    async def close(self) -> None:
        if self.closed:
            return
        try:
            await super().close()
            if self.project.module_dir(self.module_name).joinpath(self.id).is_dir():
                await self._save_configs_quietly()
        finally:
            self.manager.release_application_id(self.application_id)
            iourc_dir, self._iourc_dir = self._iourc_dir, None
            if iourc_dir is not None:
                await asyncio.to_thread(shutil.rmtree, iourc_dir, True)
