"""A Qemu VM: its settings, its disks (linked clones), the qemu process, its monitor and its links."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shlex
import shutil
import socket
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from gns3_qemu import binaries, images, kvm
from gns3_qemu.command import (
    Disk,
    LaunchPlan,
    build_command,
    clean_options,
    network_options,
    split_options,
    wants_no_kvm,
)
from gns3_qemu.host_options import check_options
from gns3_qemu.monitor import Monitor, MonitorError, free_tcp_port, status_word
from gns3_qemu.schemas import DISKS
from gns3core.emulator import Adapter, BaseVM, ManagedProcess
from gns3core.emulator.nio import NIO, NIOUDP
from gns3core.errors import BadRequest, Conflict, EmulatorError
from gns3core.files import cached_md5
from gns3core.host_paths import server_roots
from gns3core.ports import PortRange
from gns3core.tunnels import local_address

if TYPE_CHECKING:
    from gns3core.emulator.manager import VMManager
    from gns3core.projects import Project

log = logging.getLogger(__name__)

VNC_RANGE = PortRange(5900, 6000)
NICE = {"realtime": -20, "very high": -15, "high": -5, "normal": 0, "low": 5, "very low": 19}
IMAGE_FIELDS = tuple(f"{d}_disk_image" for d in DISKS) + ("cdrom_image", "initrd", "kernel_image")
DEFAULTS: dict[str, Any] = {
    "usage": "", "boot_priority": "c", "ram": 256, "cpus": 1, "adapter_type": "e1000", "kernel_command_line": "",
    "legacy_networking": False, "acpi_shutdown": False, "cpu_throttling": 0, "process_priority": "low",
    "options": "", **{f"{d}_disk_interface": "ide" for d in DISKS},
}
MD5_SUFFIX = "_md5sum"


def md5_field(image_field: str) -> str:
    return image_field + MD5_SUFFIX


class QemuVM(BaseVM):
    process_name = "QEMU"
    monitor_timeout = 30.0  # how long a start waits for qemu's monitor before giving up
    acpi_timeout = 30.0  # how long an ACPI shutdown may take before qemu is terminated

    def __init__(self, manager: VMManager, project: Project, vm_id: str, name: str, console: int | None = None):
        super().__init__(manager, project, vm_id, name, console)
        self.settings: dict[str, Any] = dict(DEFAULTS)
        self.linked_clone = True
        self.qemu_path = ""
        self.platform = "x86_64"
        self.console_type = "telnet"
        self.mac_address = manager.default_mac(vm_id)  # type: ignore[attr-defined]
        self.images: dict[str, Path | None] = dict.fromkeys(IMAGE_FIELDS)
        self.md5sums: dict[str, str | None] = dict.fromkeys(IMAGE_FIELDS)
        self.hw_virtualization = False
        self.command_line = ""  # the qemu command of the last start, shown by the 1.5.4 client; not persisted
        self._process: ManagedProcess | None = None
        self._cpulimit: ManagedProcess | None = None
        self._monitor: Monitor | None = None
        self._expected_exit = False

    # -- API object ------------------------------------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "vm_id": self.id,
            "project_id": self.project.id,
            "name": self.name,
            "console": self.console,
            "console_type": self.console_type,
            "qemu_path": self.qemu_path,
            "platform": self.platform,
            "vm_directory": str(self.project.module_dir(self.module_name) / self.id),
            "adapters": len(self.adapters),
            "mac_address": self.mac_address,
            "command_line": self.command_line,
            **self.settings,
        }
        for image_field in IMAGE_FIELDS:
            data[image_field] = images.output_path(self.server, self.images[image_field])
            data[md5_field(image_field)] = self.md5sums[image_field]
        return data

    # -- settings --------------------------------------------------------------------------------------------------

    async def select_binary(self, qemu_path: str | None, platform: str | None) -> None:
        """Choose the Qemu binary from a path or name, falling back to `qemu-system-<platform>` (409 if neither)."""
        error: EmulatorError | None = None
        excluded = server_roots(self.server)
        if qemu_path:
            # A path that does not exist here (a topology from another machine) falls back to its program name on
            # this server's PATH, as released GNS3 1.5.x does, when no platform says which binary to take instead.
            # A path that exists but is refused stays refused.
            tries = [qemu_path]
            if (os.path.basename(qemu_path) != qemu_path and not (platform and platform != "null")
                    and not os.path.lexists(qemu_path)):
                tries.append(os.path.basename(qemu_path))
            for candidate in tries:
                try:
                    path = binaries.resolve_qemu_path(candidate, excluded)
                    self.platform = binaries.platform_of(path)
                    self.qemu_path = path
                    return
                except EmulatorError as exc:
                    error = error or exc
        if platform and platform != "null":
            path = binaries.resolve_qemu_path(f"qemu-system-{platform}", excluded)
            self.qemu_path, self.platform = path, platform
            return
        if error is not None:
            raise error
        raise BadRequest("A Qemu VM needs qemu_path (e.g. qemu-system-x86_64, see GET /v1/qemu/binaries) or platform "
                         "(e.g. x86_64): neither was given")

    async def update(self, changes: dict[str, Any]) -> None:
        qemu_path, platform = changes.get("qemu_path"), changes.get("platform")
        if (qemu_path and qemu_path != self.qemu_path) or (platform and platform != self.platform):
            await self.select_binary(qemu_path, platform)
        rest = {k: v for k, v in changes.items() if k not in ("qemu_path", "platform")}
        await super().update(rest)

    async def update_field(self, key: str, value: Any) -> None:
        if key in IMAGE_FIELDS:
            await self._set_image(key, value or "")
        elif key.endswith(MD5_SUFFIX):
            return  # computed by the server, ignored on input
        elif key == "console_type":
            self.change_console_type(value)
        elif key == "adapters":
            self.set_adapters(DEFAULTS.get("adapters", 1) if value is None else value)
        elif key == "mac_address":
            self.mac_address = value.lower() if value else self.manager.default_mac(self.id)  # type: ignore
        elif key == "linked_clone":
            self.linked_clone = bool(value)
        elif key == "options":
            options = (value or "").strip()
            check_options(self.server, options, self.project.path, self.vm_directory)
            self.settings["options"] = options
        elif key == "process_priority":
            self.settings[key] = DEFAULTS[key] if value in (None, "null") else value
        elif key in DEFAULTS:
            self.settings[key] = DEFAULTS[key] if value is None else value
        # anything else is not part of a Qemu VM and the schemas have already refused it

    async def _set_image(self, key: str, value: str) -> None:
        path = images.resolve_image(self.server, self.project, value)
        self.images[key] = path
        self.md5sums[key] = await asyncio.to_thread(cached_md5, path) if path is not None else None
        if key == "initrd" and path is not None and "asa" in path.name.lower():
            self.project.warn(f"The initrd {path.name} of {self.name} looks like a Cisco ASA 8 image: ASA 8 is not "
                              "supported under Qemu, it may not boot or run as one instance only; ASAv is the "
                              "supported way to run an ASA")

    def set_adapters(self, count: int) -> None:
        """Recreate the adapter list; every existing link is dropped."""
        for adapter in self.adapters:
            for nio in adapter.ports.values():
                self.release_nio(nio)
        self.adapters = [Adapter() for _ in range(count)]

    def change_console_type(self, console_type: str) -> None:
        if console_type == self.console_type:
            return
        self.server.ports.release_tcp_port(self.console, self.project.id)
        self.console_type = console_type
        self.console = self._reserve_console(None, self._console_range())

    def _console_range(self) -> PortRange | None:
        return VNC_RANGE if self.console_type == "vnc" else None

    def change_console(self, requested: int | None) -> None:
        if requested == self.console:
            return
        if self.console_type == "vnc" and requested is not None and requested < VNC_RANGE.start:
            raise Conflict(f"VNC console require a port superior or equal to {VNC_RANGE.start}")
        self.server.ports.release_tcp_port(self.console, self.project.id)
        self.console = self._reserve_console(requested, self._console_range())

    # -- adapters and links ----------------------------------------------------------------------------------------

    def adapter(self, adapter_number: int) -> Adapter:
        if adapter_number < 0 or adapter_number >= len(self.adapters):
            raise Conflict(f'Adapter {adapter_number} does not exist on QEMU VM "{self.name}"')
        return self.adapters[adapter_number]

    def check_port(self, adapter_number: int, port_number: int) -> Adapter:
        return self.adapter(adapter_number)  # a Qemu NIC has one port: the port number is ignored

    def get_nio(self, adapter_number: int, port_number: int = 0) -> NIO | None:
        return self.adapter(adapter_number).ports.get(0)

    async def add_nio(self, adapter_number: int, port_number: int, nio: NIO) -> None:
        if self.running:
            raise Conflict("Sorry, adding a link to a started Qemu VM is not supported.")
        await super().add_nio(adapter_number, 0, nio)

    async def remove_nio(self, adapter_number: int, port_number: int) -> NIO | None:
        had = self.get_nio(adapter_number) is not None
        if had and self.running and self._monitor is not None:
            try:  # the NIC stays in the guest, cut off; its tunnel port is given back at once
                await self._monitor.command(f"netdev_del gns3-{adapter_number}")
            except MonitorError as exc:
                log.warning("Could not detach link %d of %s: %s", adapter_number, self.name, exc)
        return await super().remove_nio(adapter_number, 0)

    # -- lifecycle -------------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    async def start(self) -> None:
        if self.running:
            await self.resume()
            return
        self._check_hw_virtualization_clash()
        qemu_path = binaries.resolve_qemu_path(self.qemu_path or f"qemu-system-{self.platform}",
                                               server_roots(self.server))
        check_options(self.server, self.settings["options"], self.project.path, self.vm_directory)
        throttle = self.settings["cpu_throttling"]
        cpulimit = shutil.which("cpulimit") if throttle else None
        if throttle and cpulimit is None:
            raise EmulatorError("cpulimit could not be found, please install it (Debian: apt-get install cpulimit) "
                                "or deactivate CPU throttling")
        priority = NICE.get(self.settings["process_priority"], 0)
        nice = shutil.which("nice") if priority else None
        if priority and nice is None:
            raise EmulatorError("nice (coreutils) could not be found: set process_priority to normal")
        tokens = split_options(self.settings["options"])
        use_kvm = await self._decide_kvm(qemu_path, tokens)
        self._warn_if_short_of_ram()
        plan = await self._launch_plan(qemu_path, tokens, use_kvm)
        argv = build_command(plan)
        if nice:
            argv = [nice, "-n", str(priority), *argv]
        self.command_line = " ".join(argv)  # as GNS3 1.5.x shows it: joined by spaces, no quoting
        directory = self.vm_directory
        (directory / "qemu.command").write_text(" ".join(_quote(a) for a in argv) + "\n")
        log.info("Starting QEMU %s: %s", self.name, " ".join(argv))
        process = ManagedProcess("QEMU", argv, cwd=directory, log_path=directory / "qemu.log")
        process.on_exit = lambda rc, out, proc=process: self._qemu_exited(proc, rc, out)
        self._expected_exit = False
        self._process = process
        self._monitor = Monitor(*plan.monitor) if plan.monitor else None
        try:
            await process.start()
            await self._wait_until_up(process)
            if cpulimit:
                await self._start_cpulimit(cpulimit, process.pid, throttle)
        except BaseException:
            self._expected_exit = True
            await self._stop_processes()
            raise
        self.hw_virtualization = use_kvm
        self.set_started()

    async def _wait_until_up(self, process: ManagedProcess) -> None:
        loop = asyncio.get_running_loop()
        if self._monitor is None:
            await asyncio.sleep(0.05)  # nothing to ask: at least catch a qemu refusing its command line
        else:
            try:
                await self._monitor.wait_ready(loop.time() + self.monitor_timeout, lambda: process.running)
            except MonitorError as exc:
                if process.running:
                    raise EmulatorError(f"QEMU started but its monitor did not answer: {exc}") from exc
        if not process.running:
            await asyncio.sleep(0.01)  # let the log reach the disk
            raise EmulatorError(f"QEMU process has stopped, return code: {process.returncode}\n"
                                f"{process.last_output()}")

    async def _start_cpulimit(self, cpulimit: str, pid: int | None, percent: int) -> None:
        directory = self.vm_directory
        self._cpulimit = ManagedProcess("cpulimit", [cpulimit, "--lazy", f"--pid={pid}", f"--limit={percent}"],
                                        cwd=directory, log_path=directory / "cpulimit.log")
        await self._cpulimit.start()

    async def _decide_kvm(self, qemu_path: str, tokens: list[str]) -> bool:
        config = self.server.config.section("Qemu")
        if not config.getbool("enable_kvm", True) or wants_no_kvm(tokens):
            return False
        usable, reason = await kvm.kvm_usable(qemu_path, self.platform)
        if not usable:
            log.info("QEMU %s runs without KVM: %s", self.name, reason)
        return usable

    def _check_hw_virtualization_clash(self) -> None:
        for kind, manager in self.server.emulators.items():
            if kind == self.manager.kind:
                continue
            if any(getattr(vm, "hw_virtualization", False) for vm in manager.vms.values()):
                # Only matters when KVM would be used; decided later, so refuse only if KVM is enabled at all.
                if self.server.config.section("Qemu").getbool("enable_kvm", True) and kvm.host_reason() is None:
                    raise EmulatorError("Cannot start VM with KVM enabled because hardware virtualization (VT-x/AMD-V)"
                                        " is already used by another software like VMware or VirtualBox")

    def _warn_if_short_of_ram(self) -> None:
        available = psutil.virtual_memory().available // (1024 * 1024)
        if self.settings["ram"] > available:
            self.project.warn(f"RAM requested by QEMU VM {self.name} ({self.settings['ram']} MB) is more than the "
                              f"{available} MB available on the host")

    async def _launch_plan(self, qemu_path: str, tokens: list[str], use_kvm: bool) -> LaunchPlan:
        server_config = self.server.config.server
        monitor = None
        if self.server.config.section("Qemu").getbool("monitor", True):
            monitor_host = server_config.get("monitor_host") or "127.0.0.1"
            monitor = (monitor_host, free_tcp_port(monitor_host))
        nios = [adapter.ports.get(0) for adapter in self.adapters]
        return LaunchPlan(
            qemu_path=qemu_path, name=self.name, ram=self.settings["ram"], cpus=self.settings["cpus"],
            boot_priority=self.settings["boot_priority"], console_type=self.console_type,
            console_host=self.server.console_host, console=self.console or 0, kvm=use_kvm,
            smm_off=use_kvm and self.platform == "x86_64" and await _version_at_least(qemu_path, (2, 4)),
            cdrom=self._existing_image("cdrom_image", "cdrom image"),
            disks=await self._disks(qemu_path),
            initrd=self._existing_image("initrd", "initrd"),
            kernel=self._existing_image("kernel_image", "kernel image"),
            kernel_command_line=self.settings["kernel_command_line"], monitor=monitor,
            network=network_options(nios, self.mac_address, self.settings["adapter_type"],
                                    bool(self.settings["legacy_networking"]), await self._tunnel_address(nios)),
            options=clean_options(tokens, use_kvm),
        )

    async def _tunnel_address(self, nios: list[NIO | None]) -> str:
        """Where Qemu binds its UDP tunnels: [Server] udp_host, as an IPv4 address since Qemu's socket backend knows
        IPv4 only (409 for an IPv6 rhost, with what to do)."""
        loop = asyncio.get_running_loop()
        for index, nio in enumerate(nios):
            if not isinstance(nio, NIOUDP):
                continue
            try:
                infos = await loop.getaddrinfo(nio.rhost, nio.rport, type=socket.SOCK_DGRAM)
            except OSError as exc:
                raise EmulatorError(f"Could not resolve the rhost {nio.rhost} of adapter {index}: {exc}") from None
            if not any(info[0] == socket.AF_INET for info in infos):
                raise Conflict(f"Adapter {index}: Qemu's UDP tunnels are IPv4 only and rhost {nio.rhost} has no IPv4 "
                               "address; link this VM through an IPv4 address of the peer")
        return local_address(self.server.udp_host, socket.AF_INET, "Qemu (UDP tunnels are IPv4 only in Qemu)")

    def _existing_image(self, key: str, what: str) -> str | None:
        path = self.images[key]
        if path is None:
            return None
        if not path.is_file():
            raise EmulatorError(f"{what} '{path}' is not accessible")
        return str(path)

    async def _disks(self, qemu_path: str) -> list[Disk]:
        if self.images["cdrom_image"] is not None and self.images["hdc_disk_image"] is not None:
            raise EmulatorError("You cannot use a disk image on hdc disk and a CDROM image at the same time")
        disks = []
        for index, disk in enumerate(DISKS):
            path = self.images[f"{disk}_disk_image"]
            if path is None:
                continue
            if not path.is_file():
                hint = f" (symlink to {path.resolve()})" if path.is_symlink() else ""
                raise EmulatorError(f"{disk} disk image '{path}' is not accessible{hint}")
            file = str(path)
            if self.linked_clone:
                file = await self._linked_clone(qemu_path, disk, path)
            disks.append(Disk(file, self.settings[f"{disk}_disk_interface"], index))
        return disks

    async def _linked_clone(self, qemu_path: str, disk: str, base: Path) -> str:
        """A qcow2 overlay in the VM directory over the (never written) base image; created once, then kept.

        An overlay that names another base (an imported project, an image moved or renamed) is re-pointed at the
        current one on start, as released GNS3 1.5.x does (`qemu-img rebase -u`, which rewrites only the header).
        """
        overlay = self.vm_directory / f"{disk}_disk.qcow2"
        if overlay.exists():
            current = await asyncio.to_thread(qcow2_backing_file, overlay)
            if current is not None and current != str(base.absolute()):
                qemu_img = binaries.qemu_img_for(qemu_path)
                rebase = [qemu_img, "rebase", "-u", "-F", await self._image_format(qemu_img, base), "-b",
                          str(base.absolute()), str(overlay)]
                await binaries.run_tool(rebase, f"Could not use qcow2 disk image {overlay} for {disk}")
                log.info("QEMU %s: %s now over %s (was %s)", self.name, overlay.name, base, current)
            return str(overlay)
        qemu_img = binaries.qemu_img_for(qemu_path)
        base_format = await self._image_format(qemu_img, base)
        clone = [qemu_img, "create", "-f", "qcow2", "-F", base_format, "-b", str(base.absolute()), str(overlay)]
        await binaries.run_tool(clone, f"Could not create the linked clone of {base}")
        return str(overlay)

    @staticmethod
    async def _image_format(qemu_img: str, image: Path) -> str:
        info = await binaries.run_tool([qemu_img, "info", "--output=json", str(image)],
                                       f"Could not read disk image {image}")
        return json.loads(info).get("format", "raw")

    def _qemu_exited(self, process: ManagedProcess, returncode: int, output: str) -> None:
        """qemu ended by itself (guest power-off, crash, kill from outside): say so and tidy up."""
        if self._expected_exit or process is not self._process:
            return
        self._process = None
        self._monitor = None
        self.hw_virtualization = False
        if self._cpulimit is not None:
            asyncio.get_running_loop().create_task(self._stop_cpulimit())
        if returncode == 0:
            self.set_stopped()
        else:
            self.process_exited(returncode, output)

    async def _stop_cpulimit(self) -> None:
        cpulimit, self._cpulimit = self._cpulimit, None
        if cpulimit is not None:
            await cpulimit.stop()  # cpulimit sends SIGCONT to qemu as it goes, so qemu can then hear SIGTERM

    async def _stop_processes(self) -> None:
        await self._stop_cpulimit()
        process, self._process = self._process, None
        self._monitor = None
        if process is not None:
            await process.stop()

    async def stop(self) -> None:
        self._expected_exit = True
        process = self._process
        if process is not None and process.running and self.settings["acpi_shutdown"] and self._monitor:
            await self._stop_cpulimit()
            try:
                await self._monitor.command("system_powerdown")
                process.expect_exit()
                await asyncio.wait_for(process.wait(), self.acpi_timeout)
            except (MonitorError, TimeoutError) as exc:
                log.warning("ACPI shutdown of %s did not finish (%s); terminating qemu", self.name, exc)
        await self._stop_processes()
        self.hw_virtualization = False
        if self.status == "started":
            self.set_stopped()

    async def _vm_status(self) -> str | None:
        if not self.running or self._monitor is None:
            return None
        try:
            return status_word(await self._monitor.command("info status"))
        except MonitorError as exc:
            log.warning("Qemu monitor of %s: %s", self.name, exc)
            return None

    async def monitor_command(self, command: str) -> str:
        """Run a monitor command on the running VM (409 when there is no monitor to talk to)."""
        if not self.running or self._monitor is None:
            raise Conflict(f"QEMU VM {self.name} has no running monitor")
        try:
            return await self._monitor.command(command)
        except MonitorError as exc:
            raise Conflict(str(exc)) from exc

    async def suspend(self) -> None:
        status = await self._vm_status()
        if status is None:
            raise Conflict("Suspending a QEMU VM is not supported")
        if status == "running":
            await self.monitor_command("stop")

    async def resume(self) -> None:
        status = await self._vm_status()
        if status is None:
            raise Conflict("Resuming a QEMU VM is not supported")
        if status == "paused":
            await self.monitor_command("cont")

    async def reload(self) -> None:
        if self.running and self._monitor is not None:
            await self.monitor_command("system_reset")


def qcow2_backing_file(path: Path) -> str | None:
    """The backing file a qcow2 header names, read without running qemu-img (None: not qcow2, or no backing)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
            if len(header) < 20 or header[:4] != b"QFI\xfb":
                return None
            offset, size = struct.unpack(">QI", header[8:20])
            if offset == 0 or size == 0 or size > 4096:
                return None
            handle.seek(offset)
            return handle.read(size).decode("utf-8", errors="surrogateescape")
    except OSError:
        return None


async def _version_at_least(qemu_path: str, wanted: tuple[int, ...]) -> bool:
    try:
        version = await binaries.version_of(qemu_path)
    except EmulatorError:
        return False
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[: len(wanted)])
    return numbers >= wanted


def _quote(arg: str) -> str:
    return shlex.quote(arg)
