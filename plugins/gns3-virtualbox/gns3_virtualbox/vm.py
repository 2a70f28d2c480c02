"""One VirtualBox VM as a GNS3 node: wired, started, watched and stopped through VBoxManage.

VirtualBox runs the VM in a process of its own that outlives every VBoxManage call, so the server watches it in two
cheap ways instead of polling in a loop: the serial console socket (held open by the telnet relay when the remote
console is on) closes the moment the VM process ends, and a slow check (`[VirtualBox] state_check_interval`, 5 s)
asks VBoxManage for the VM's state. A VM that powers off or disappears without being asked to is reported
(`log.error`, then `vm.stopped`) and left tidy for its next start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3_virtualbox import linked_clone, network
from gns3_virtualbox.vboxmanage import VBoxManage
from gns3core.emulator.nio import NIO
from gns3core.emulator.serial_relay import SerialConsoleRelay
from gns3core.emulator.vm import Adapter, BaseVM
from gns3core.errors import Conflict, EmulatorError

if TYPE_CHECKING:
    from gns3_virtualbox.manager import VirtualBoxManager
    from gns3core.projects import Project

log = logging.getLogger(__name__)

RUNNING_STATES = ("running", "paused", "stuck")
STARTABLE_STATES = ("poweroff", "aborted")  # VirtualBox starts an aborted (crashed) VM afresh
PIPE_WAIT = 10.0  # how long the relay waits for VirtualBox to create the serial socket after a start
SESSION_RELEASE_DELAY = 0.5  # VirtualBox keeps a stopped VM locked for a moment; settings edited earlier fail
ACPI_POLL = 0.5
ACPI_TIMEOUT = 120.0
HW_VIRT_TAKEN = ("Cannot start VM because hardware virtualization (VT-x/AMD-V) is already used by another software "
                 "like VMware or KVM (on Linux)")


def pipe_directory() -> Path:
    """`<temp dir>/gns3_vbox`, ours alone (mode 0700): the serial sockets of every VM live there."""
    directory = Path(tempfile.gettempdir()) / "gns3_vbox"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        raise EmulatorError(f"Cannot create the serial console directory {directory}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise EmulatorError(f"{directory} is not a directory of this server's user: remove it and start again")
    return directory


def check_vm_reference(vmname: str) -> None:
    """A VirtualBox VM name goes to VBoxManage as an argument of its own: it must not read as an option."""
    if vmname.startswith("-") or "\x00" in vmname:
        raise Conflict(f"'{vmname}' cannot be used as a VirtualBox VM name (it must not start with '-')")


class VirtualBoxVM(BaseVM):
    process_name = "VirtualBox"
    manager: VirtualBoxManager

    def __init__(self, manager: VirtualBoxManager, project: Project, vm_id: str, name: str, console: int | None,
                 *, vmname: str, linked_clone: bool) -> None:
        super().__init__(manager, project, vm_id, name, console)
        self.vmname = vmname
        self.linked_clone = linked_clone
        self.adapters = []
        self.adapter_type = network.DEFAULT_ADAPTER_TYPE
        self.use_any_adapter = False
        self.headless = False
        self.acpi_shutdown = False
        self.enable_remote_console = False
        self.ram = 0
        self.max_adapters = 8
        self.hw_virtualization = False  # read by other emulators: a VM running with VT-x/AMD-V
        self.clone_registered = False
        self._relay: SerialConsoleRelay | None = None
        self._watch: asyncio.Task | None = None
        self._check_now = asyncio.Event()
        self._lifecycle = asyncio.Lock()
        self._attachments: dict[str, str] = {}  # showvminfo nic<n> values before this start

    @property
    def vbox(self) -> VBoxManage:
        return self.manager.vbox

    @property
    def active(self) -> bool:
        """Running or suspended: VirtualBox holds a session for it."""
        return self.status in ("started", "suspended")

    @property
    def pipe_path(self) -> Path:
        return pipe_directory() / self.id

    def as_json(self) -> dict[str, Any]:
        return {
            **super().as_json(),
            "vmname": self.vmname,
            "vm_directory": str(self.vm_directory) if self.linked_clone else None,
            "enable_remote_console": self.enable_remote_console,
            "headless": self.headless,
            "acpi_shutdown": self.acpi_shutdown,
            "adapters": len(self.adapters),
            "use_any_adapter": self.use_any_adapter,
            "adapter_type": self.adapter_type,
            "ram": self.ram,
        }

    # -- settings --------------------------------------------------------------------------------------------------

    async def load_machine(self) -> dict[str, str]:
        """Read the VM from VirtualBox: its RAM and how many adapters its chipset has."""
        info = await self.vbox.machine_info(self.vmname)
        memory = info.get("memory", "")
        self.ram = int(memory) if memory.isdigit() else 0
        self.max_adapters = await self.vbox.max_adapters(info)
        return info

    def check_adapter_count(self, count: int) -> None:
        if count > self.max_adapters:
            raise Conflict(f"Number of adapters above the maximum supported of {self.max_adapters}")

    async def update(self, changes: dict[str, Any]) -> None:
        """PUT in the reference's order: vmname, enable_remote_console, adapters, ram, then the rest."""
        if "adapters" in changes:
            self.check_adapter_count(changes["adapters"])
        if "vmname" in changes:
            await self.set_vmname(changes["vmname"])
        if "enable_remote_console" in changes:
            await self.set_remote_console(changes["enable_remote_console"])
        if "adapters" in changes:
            self.set_adapters(changes["adapters"])
        if "ram" in changes:
            await self.set_ram(changes["ram"])
        console = self.console
        await super().update({k: v for k, v in changes.items()
                              if k not in ("vmname", "enable_remote_console", "adapters", "ram")})
        if self.console != console and self._relay is not None:
            await self._close_console()
            await self.open_console()

    async def update_field(self, key: str, value: Any) -> None:
        if key in ("adapter_type", "use_any_adapter", "headless", "acpi_shutdown") and value is not None:
            setattr(self, key, value)

    async def set_vmname(self, vmname: str) -> None:
        """Renames a linked clone in VirtualBox; for another VM, points the node at that VirtualBox VM."""
        if vmname == self.vmname:
            return
        check_vm_reference(vmname)
        if self.active:
            raise Conflict(f"VirtualBox VM {self.name} is running: stop it before changing its VirtualBox VM")
        if self.linked_clone:
            linked_clone.check_clone_name(vmname)
            await self.vbox.run("modifyvm", self.vmname, "--name", vmname)
            self.vmname = vmname
            return
        previous = self.vmname
        self.vmname = vmname
        try:
            await self.load_machine()
            self.check_adapter_count(len(self.adapters))
        except Exception:
            self.vmname = previous
            raise

    async def set_remote_console(self, enabled: bool) -> None:
        self.enable_remote_console = enabled
        if enabled:
            await self.open_console()
        else:
            await self._close_console()

    def set_adapters(self, count: int) -> None:
        """Recreate the adapters (every link is dropped), as the reference did."""
        if count == len(self.adapters):
            return
        if self.active:
            raise Conflict(f"VirtualBox VM {self.name} is running: stop it before changing its number of adapters")
        for adapter in self.adapters:
            for nio in adapter.ports.values():
                self.release_nio(nio)
        self.adapters = [Adapter() for _ in range(count)]

    async def set_ram(self, ram: int) -> None:
        if ram and ram != self.ram:
            await self.vbox.run("modifyvm", self.vmname, "--memory", str(ram))
            self.ram = ram

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lifecycle:
            info = await self.vbox.machine_info(self.vmname)
            state = info.get("VMState", "")
            if state == "paused" and self.status == "suspended":
                await self.vbox.run("controlvm", self.vmname, "resume")
                self.status = "started"
                return
            if state == "running" and self.status == "started":
                return  # started by this server already: nothing to do
            if state not in STARTABLE_STATES:
                raise Conflict(f"VirtualBox VM not powered off: {self.vmname} is {state or 'in an unknown state'}")
            if info.get("hwvirtex") == "on" and self.manager.hardware_virtualization_taken():
                raise Conflict(HW_VIRT_TAKEN)
            nios = {index: nio for index, adapter in enumerate(self.adapters) if (nio := adapter.ports.get(0))}
            plan = network.start_plan(info, nios, len(self.adapters), await self.vbox.max_adapters(info),
                                      self.use_any_adapter, self.adapter_type)
            pipe = self.pipe_path
            for options in plan:
                await self.vbox.run("modifyvm", self.vmname, *options)
            await self.vbox.run("modifyvm", self.vmname, "--uart1", "0x3F8", "4")
            await self.vbox.run("modifyvm", self.vmname, "--uartmode1", "server", str(pipe))
            try:
                await self.vbox.run("startvm", self.vmname, *(["--type", "headless"] if self.headless else []))
            except EmulatorError:
                await self._reset_settings()
                raise
            self._attachments = {key: value for key, value in info.items() if key.startswith("nic")}
            self.hw_virtualization = info.get("hwvirtex") == "on"
            try:
                await self.vbox.run("guestproperty", "set", self.vmname, "NameInGNS3", self.name)
                await self.vbox.run("guestproperty", "set", self.vmname, "ProjectDirInGNS3", str(self.vm_directory))
            except Exception:
                await self._power_off()
                raise
            self.status = "started"
            await self._attach_console()
            self._watch = asyncio.get_running_loop().create_task(self._watch_state())
            self.set_started()

    async def stop(self) -> None:
        async with self._lifecycle:
            await self._power_off()
            if self.status != "stopped":
                self.set_stopped()

    async def _power_off(self) -> None:
        """Power the VM off (ACPI first when asked) and undo what the start set; safe when it is not running."""
        watch, self._watch = self._watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        if self._relay is not None:
            await self._relay.detach()
        try:
            state = (await self.vbox.machine_info(self.vmname)).get("VMState", "")
        except EmulatorError as exc:
            log.warning("VirtualBox VM %s: cannot read its state before stopping it: %s", self.name, exc)
            state = ""
        was_ours = self.active or self.hw_virtualization
        if state in RUNNING_STATES:
            if self.acpi_shutdown and state == "running":
                await self._acpi_shutdown()
            else:
                await self.vbox.run("controlvm", self.vmname, "poweroff")
            await asyncio.sleep(SESSION_RELEASE_DELAY)
        elif not was_ours:
            return  # stopped already: nothing to undo
        self.hw_virtualization = False
        await self._reset_settings()

    async def _acpi_shutdown(self) -> None:
        await self.vbox.run("controlvm", self.vmname, "acpipowerbutton")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ACPI_TIMEOUT
        while loop.time() < deadline:
            await asyncio.sleep(ACPI_POLL)
            if (await self.vbox.machine_info(self.vmname)).get("VMState") not in RUNNING_STATES:
                return
        self.project.warn(f"VirtualBox VM {self.name} did not shut down within {ACPI_TIMEOUT:.0f} s of the ACPI "
                          "power button: it was powered off")
        await self.vbox.run("controlvm", self.vmname, "poweroff")

    async def _reset_settings(self) -> None:
        """Serial port off, linked adapters unplugged: the VM is left as GNS3 found it. Failures are logged (a VM
        removed from VirtualBox meanwhile has nothing left to reset)."""
        connected = [index for index, adapter in enumerate(self.adapters) if adapter.ports.get(0) is not None]
        try:
            for options in network.stop_plan(connected):
                await self.vbox.run("modifyvm", self.vmname, *options)
        except EmulatorError as exc:
            log.warning("VirtualBox VM %s: could not reset its settings after the stop: %s", self.name, exc)

    async def suspend(self) -> None:
        async with self._lifecycle:
            state = (await self.vbox.machine_info(self.vmname)).get("VMState", "")
            if state != "running":
                raise Conflict(f"VirtualBox VM {self.name} is not running (its state is {state})")
            await self.vbox.run("controlvm", self.vmname, "pause")
            self.status = "suspended"

    async def resume(self) -> None:
        async with self._lifecycle:
            await self.vbox.run("controlvm", self.vmname, "resume")
            self.status = "started"

    async def reload(self) -> None:
        async with self._lifecycle:
            await self.vbox.run("controlvm", self.vmname, "reset")

    async def close(self) -> None:
        """Stop the VM, give back its ports and, for a linked clone, hand the clone back to VirtualBox's disk."""
        if self.closed:
            return
        try:
            if self.active:
                await self.stop()
        finally:
            await super().close()
            try:
                if self.linked_clone and self.clone_registered:
                    await linked_clone.close(self.vbox, self.vmname, self.vm_directory)
                    self.clone_registered = False
            except EmulatorError as exc:
                log.error("Could not close the linked clone %s: %s", self.vmname, exc)
                self.project.emit("log.error", {"message": f"Could not close the linked clone {self.vmname}: "
                                                           f"{exc.message}"})
            finally:
                await self._close_console()
                (pipe_directory() / self.id).unlink(missing_ok=True)

    # -- crash watch -----------------------------------------------------------------------------------------------

    def _serial_hung_up(self) -> None:
        self._check_now.set()

    async def _watch_state(self) -> None:
        """Check the VM's state now and then, at once when its serial socket closes."""
        while self.active:
            try:
                await asyncio.wait_for(self._check_now.wait(), self.manager.state_check_interval())
            except TimeoutError:
                pass
            self._check_now.clear()
            async with self._lifecycle:
                if not self.active:
                    return
                await self._check_state()

    async def _check_state(self) -> None:
        try:
            state = (await self.vbox.machine_info(self.vmname)).get("VMState", "")
            reason = f"its state is now {state}"
        except EmulatorError as exc:
            state, reason = "", exc.message
        if state in RUNNING_STATES:
            if state == "paused" and self.status == "started":
                self.status = "suspended"  # paused from VirtualBox itself
            elif state == "running" and self.status == "suspended":
                self.status = "started"
            return
        message = f"VirtualBox VM {self.name} ({self.vmname}) has stopped unexpectedly: {reason}"
        log.error(message)
        self.project.emit("log.error", {"message": message})
        self._watch = None
        if self._relay is not None:
            await self._relay.detach()
        self.hw_virtualization = False
        await self._reset_settings()
        self.set_stopped()

    # -- console ---------------------------------------------------------------------------------------------------

    async def open_console(self) -> None:
        """With the remote console on, the console port is listened on for the node's whole life (no other program
        can take it while the VM is down); the serial socket is joined while the VM runs."""
        if self._relay is not None or self.closed:
            return
        relay = SerialConsoleRelay(self.pipe_path, self.server.console_host, self.console or 0, self.name,
                                   on_hangup=self._serial_hung_up)
        await relay.start(attach=False)
        self._relay = relay
        if self.active:
            await self._attach_console()

    async def _attach_console(self) -> None:
        if self._relay is None:
            return
        self._relay.attach()
        if not await self._relay.wait_connected(PIPE_WAIT):
            self.project.warn(f"The serial console of VirtualBox VM {self.name} did not appear at {self.pipe_path} "
                              f"within {PIPE_WAIT:.0f} s; telnet clients will be connected once it does")

    async def _close_console(self) -> None:
        relay, self._relay = self._relay, None
        if relay is not None:
            await relay.stop()

    # -- links -----------------------------------------------------------------------------------------------------

    def check_port(self, adapter_number: int, port_number: int) -> Adapter:
        """VirtualBox adapters have one port: `port_number` is ignored, as the reference did."""
        if not 0 <= adapter_number < len(self.adapters):
            raise Conflict(f"Adapter {adapter_number} doesn't exist on VirtualBox VM '{self.name}'")
        return self.adapters[adapter_number]

    def get_nio(self, adapter_number: int, port_number: int) -> NIO | None:
        return self.check_port(adapter_number, port_number).ports.get(0)

    async def add_nio(self, adapter_number: int, port_number: int, nio: NIO) -> None:
        """Attach a link; on a running VM the adapter is re-wired at once through `controlvm`."""
        self.check_port(adapter_number, port_number)
        async with self._lifecycle:
            if self.active:
                network.check_attachment(adapter_number, self._attachments.get(f"nic{adapter_number + 1}", "none"),
                                         nio, self.use_any_adapter)
                for operation in network.hot_add_plan(adapter_number, nio):
                    await self.vbox.run("controlvm", self.vmname, *operation)
                await self._check_tunnel(adapter_number, nio)
            await super().add_nio(adapter_number, 0, nio)

    async def _check_tunnel(self, adapter_number: int, nio: NIO) -> None:
        """After a hot add, VirtualBox should show the adapter on the generic driver (released 1.5.x warns)."""
        if nio.type != "nio_udp":
            return
        n = adapter_number + 1
        if (await self.vbox.machine_info(self.vmname)).get(f"nic{n}") != "generic":
            self.project.warn(f"UDP tunnel has not been set on nic: {n}")

    async def remove_nio(self, adapter_number: int, port_number: int) -> NIO | None:
        """Detach a link; on a running VM the adapter is unplugged at once."""
        adapter = self.check_port(adapter_number, port_number)
        async with self._lifecycle:
            if self.active and adapter.ports.get(0) is not None:
                for operation in network.hot_remove_plan(adapter_number):
                    await self.vbox.run("controlvm", self.vmname, *operation)
            return await super().remove_nio(adapter_number, 0)

    async def start_capture(self, adapter_number: int, port_number: int, path: Path, data_link_type: str) -> None:
        """VirtualBox writes the pcap itself (`nictrace`) from the next start; it cannot begin on a running VM."""
        adapter = self.check_port(adapter_number, port_number)
        if self.active:
            raise Conflict("Sorry, packet capturing on a started VirtualBox VM is not supported.")
        nio = adapter.ports.get(0)
        if nio is None:
            raise Conflict(f"Adapter {adapter_number} is not connected")
        if nio.capturing:
            raise Conflict(f"Packet capture is already activated on adapter {adapter_number}")
        nio.capture_file, nio.capture_dlt = path, data_link_type

    async def stop_capture(self, adapter_number: int, port_number: int) -> None:
        """No more trace from the next start (a running VM keeps writing until it stops, as in the reference)."""
        nio = self.check_port(adapter_number, port_number).ports.get(0)
        if nio is None:
            raise Conflict(f"Adapter {adapter_number} is not connected")
        nio.capture_file = nio.capture_dlt = None
