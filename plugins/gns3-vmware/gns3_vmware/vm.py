"""One VMware VM as a GNS3 node: its VMX file edited for the run, powered on and off through vmrun, each adapter's
VMnet interface joined to its link by the core's data plane, and its first serial port served as a telnet console.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from gns3_vmware.vm_process import VMWatch, find_vm_process
from gns3_vmware.vmx import VMXError, VMXFile
from gns3_vmware.vmx_edits import StartEdits, edit_for_start, restore_after_stop
from gns3core.dataplane import EthernetEndpoint
from gns3core.dataplane.endpoints import interface_exists
from gns3core.emulator.links import LinkWiring
from gns3core.emulator.nio import NIO, NIONAT, NIOVMNET
from gns3core.emulator.serial_relay import SerialConsoleRelay
from gns3core.emulator.vm import Adapter, BaseVM
from gns3core.errors import Conflict, EmulatorError
from gns3core.files import atomic_write
from gns3core.ports import tcp_port_is_free

if TYPE_CHECKING:
    from gns3_vmware.manager import VMwareManager

log = logging.getLogger(__name__)

NATIVE_NIOS = ("nio_nat", "nio_vmnet")  # attached by VMware through the VMX file, never bridged
RESTORE_RECORD = "vmx-restore.json"
CONSOLE_ATTEMPTS = 3
POWER_OFF_WAIT = 15.0  # seconds for vmware-vmx to finish (and write the VMX one last time) after vmrun stop


class VMwareVM(BaseVM):
    """A VMware VM; `status` is started, stopped or suspended (paused)."""

    process_name = "VMware VM"
    manager: VMwareManager

    def __init__(self, manager: VMwareManager, project: Any, vm_id: str, name: str, console: int | None = None,
                 *, vmx_path: str, linked_clone: bool) -> None:
        super().__init__(manager, project, vm_id, name, console)
        self.vmx_path = vmx_path
        self.linked_clone = linked_clone
        self.headless = False
        self.acpi_shutdown = False
        self.enable_remote_console = False
        self.adapter_type = "e1000"
        self.use_ubridge = True
        self.use_any_adapter = False
        self.adapters = []
        self.reserved_vmnets: list[str] = []  # handed out by POST .../interfaces/vmnet
        self.edits: StartEdits | None = None  # what this run changed in the VMX, and the VMnets it uses
        self.links = LinkWiring(self, self._vmnet_endpoint, native_nios=NATIVE_NIOS)
        self._relay: SerialConsoleRelay | None = None
        self._watch: VMWatch | None = None
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task] = set()

    def as_json(self) -> dict[str, Any]:
        return {
            **super().as_json(),
            "vm_directory": str(self.vm_directory),
            "vmx_path": self.vmx_path,
            "linked_clone": self.linked_clone,
            "enable_remote_console": self.enable_remote_console,
            "headless": self.headless,
            "acpi_shutdown": self.acpi_shutdown,
            "adapters": len(self.adapters),
            "adapter_type": self.adapter_type,
            "use_ubridge": self.use_ubridge,
            "use_any_adapter": self.use_any_adapter,
        }

    @property
    def running(self) -> bool:
        return self.status in ("started", "suspended")

    @property
    def restore_record(self) -> Path:
        return self.vm_directory / RESTORE_RECORD

    def vmnets_in_use(self) -> set[str]:
        """The VMnets this VM holds: this run's, those handed out to it, and those its nio_vmnet links name."""
        used = set(self.reserved_vmnets)
        if self.edits is not None:
            used.update(self.edits.bridged.values())
            used.update(self.edits.allocated)
        for adapter in self.adapters:
            used.update(nio.vmnet for nio in adapter.ports.values() if isinstance(nio, NIOVMNET))
        return used

    # -- updates ---------------------------------------------------------------------------------------------------

    RESTART_KEYS = ("vmx_path", "adapters", "adapter_type", "use_ubridge", "use_any_adapter")

    async def update(self, changes: dict[str, Any]) -> None:
        async with self._lock:
            changed = [key for key in self.RESTART_KEYS if key in changes and changes[key] != self._value_of(key)]
            if changed and self.running:
                raise Conflict(f"VMware VM {self.name} is running: stop it before changing {', '.join(changed)}")
            changes = dict(changes)
            if "vmx_path" in changes and changes["vmx_path"] != self.vmx_path:
                changes["vmx_path"] = await self.manager.check_vmx_path(changes["vmx_path"], self.name, self.id,
                                                                         other_than=self)  # re-targets, no clone
            await super().update(changes)

    def _value_of(self, key: str) -> Any:
        return len(self.adapters) if key == "adapters" else getattr(self, key)

    async def update_field(self, key: str, value: Any) -> None:
        if key == "adapters":
            self._resize_adapters(value)
        elif key == "enable_remote_console":
            self.enable_remote_console = value
            if self.status == "started":
                await (self._start_console() if value else self._stop_console())
        elif key in ("vmx_path", "headless", "acpi_shutdown", "adapter_type", "use_ubridge", "use_any_adapter"):
            setattr(self, key, value)

    def change_console(self, requested: int | None) -> None:
        super().change_console(requested)
        if self._relay is not None:  # a running console moves to the new port
            self._spawn(self._restart_console())

    async def _restart_console(self) -> None:
        async with self._lock:
            if self._relay is not None:
                await self._stop_console()
                await self._start_console()

    def _resize_adapters(self, count: int) -> None:
        """Adapters beyond the new count lose their links; the others keep them."""
        for adapter in self.adapters[count:]:
            for nio in adapter.ports.values():
                self.release_nio(nio)
        self.adapters = self.adapters[:count] + [Adapter() for _ in range(len(self.adapters), count)]

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            if self.status == "suspended":
                await self._unpause()
            elif self.status != "started":
                await self._start_locked()

    async def _start_locked(self) -> None:
        manager = self.manager
        self._check_links_can_be_joined()
        if await manager.is_running(self.vmx_path):
            raise Conflict("The VM is already running in VMware")
        await self._restore_leftover()
        pipe = manager.pipe_path(self.id)
        await self._apply_start_edits(pipe)
        try:
            await asyncio.to_thread(_prepare_pipe, pipe)
            await manager.vmrun("start", self.vmx_path, *(["nogui"] if self.headless else []))
        except BaseException:
            await self._restore_vmx()
            raise
        try:
            await self._watch_vm()
            if self.use_ubridge:
                await self.links.start()
            if self.enable_remote_console:
                await self._start_console()
        except BaseException:
            # Half-wired is worse than off: the VM goes down again and its VMX is put back.
            await self._power_off(soft=False)
            await self._restore_vmx()
            raise
        self.set_started()

    def _check_links_can_be_joined(self) -> None:
        if self.use_ubridge:
            return
        for number, adapter in enumerate(self.adapters):
            for nio in adapter.ports.values():
                if nio.type not in NATIVE_NIOS:
                    raise Conflict(f"Adapter {number} of VMware VM {self.name} has a {nio.type} link, which only "
                                   "works with use_ubridge (the server joins the adapter's VMnet interface to it): "
                                   "enable use_ubridge, or use nio_vmnet and nio_nat links only")

    async def _apply_start_edits(self, pipe: Path) -> None:
        """Edit the VMX for this run (VMnets allocated in the same step, so no other VM gets them)."""
        manager = self.manager
        vmx_path = self.vmx_path
        try:
            vmx = await asyncio.to_thread(VMXFile.read, vmx_path)
        except VMXError as exc:
            raise Conflict(f'VMware VM "{self.name}" [{self.id}]: {exc}') from None
        original = vmx.to_bytes()
        available = await manager.available_vmnets()
        pool = manager.vmnet_pool
        free = pool.free(available, manager.vmnets_in_use())
        nios = {n: adapter.ports[0] for n, adapter in enumerate(self.adapters) if 0 in adapter.ports}

        def allocate() -> str:
            if not free:
                raise pool.exhausted()
            return free.pop(0)

        edits = edit_for_start(vmx, adapters=len(self.adapters), adapter_type=self.adapter_type,
                               use_any_adapter=self.use_any_adapter, use_ubridge=self.use_ubridge, nios=nios,
                               pipe=str(pipe), allocate=allocate, manages=pool.manages)
        self.edits = edits  # held from now on: the next VM to start sees these VMnets as taken
        record = {"vmx_path": vmx_path, **edits.as_json()}
        try:
            await asyncio.to_thread(_write_edits, self.restore_record, record, vmx_path, vmx, original)
        except BaseException:
            self.edits = None
            raise

    async def _restore_vmx(self) -> None:
        """Put the VMX back as it was before this run and give back the run's VMnets; no serial socket stays."""
        edits, self.edits = self.edits, None
        if edits is None:
            return
        await asyncio.to_thread(_remove_pipe, self.manager.pipe_path(self.id))
        try:
            await asyncio.to_thread(_restore_file, self.vmx_path, edits.undo, self.restore_record)
        except Conflict as exc:
            log.error("VMware VM %s: %s", self.name, exc)
            self.project.emit("log.error", {"message": f"VMware VM {self.name}: cannot restore its VMX file: {exc}"})

    async def _restore_leftover(self) -> None:
        """A run the server could not finish (it was killed) left its record: put that VMX back first."""
        record = await asyncio.to_thread(_read_record, self.restore_record)
        if record is None:
            return
        if record.get("vmx_path") != self.vmx_path:
            if await self.manager.is_running(record["vmx_path"]):
                return
            vmx_path = record["vmx_path"]
        else:
            vmx_path = self.vmx_path
        log.info("VMware VM %s: restoring %s after an unfinished run", self.name, vmx_path)
        await asyncio.to_thread(_restore_file, vmx_path, StartEdits.from_json(record).undo, self.restore_record)

    async def _watch_vm(self) -> None:
        watch = VMWatch(self._vm_gone, lambda: self.manager.is_running(self.vmx_path))
        pid = await asyncio.to_thread(find_vm_process, self.vmx_path)
        if pid is None or not watch.watch_process(pid):
            log.info("VMware VM %s: no vmware-vmx process found, checking vmrun list every few seconds", self.name)
            watch.poll()
        self._watch = watch

    def _vm_gone(self) -> None:
        self._spawn(self._report_gone())

    async def _report_gone(self) -> None:
        async with self._lock:
            watch = self._watch
            if not self.running or watch is None:
                return
            self._watch = None
            how = f"its vmware-vmx process {watch.pid} ended" if watch.pid else "vmrun no longer lists it"
            message = (f"VMware VM {self.name} has stopped without the server asking ({how}): the guest shut down, "
                       "VMware closed it or it crashed")
            log.error("%s", message)
            self.project.emit("log.error", {"message": message})
            await self._tear_down()
            await self._restore_vmx()
            self.set_stopped()

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_locked()

    async def _stop_locked(self) -> None:
        if not self.running:
            if self.edits is not None:
                await self._restore_vmx()
            return
        await self._power_off(soft=self.acpi_shutdown)
        await self._restore_vmx()
        self.set_stopped()

    async def _power_off(self, soft: bool) -> None:
        """Links and console go, then vmrun stop (only while VMware runs the VM), then wait for vmware-vmx to be
        gone. When vmrun refuses, the VM runs on as before: watched, wired and with its console."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
        console = self._relay is not None
        await self._tear_down()
        try:
            if await self.manager.is_running(self.vmx_path):
                await self.manager.vmrun("stop", self.vmx_path, *(["soft"] if soft else []))
        except BaseException:
            if self.running:
                await self._watch_vm()
                if self.use_ubridge:
                    await self.links.start()
                if console:
                    await self._start_console()
            raise
        if watch is not None and watch.pid is not None:
            await asyncio.to_thread(_wait_gone, watch.pid, POWER_OFF_WAIT)

    async def _tear_down(self) -> None:
        await self._stop_console()
        await self.links.stop()

    async def suspend(self) -> None:
        async with self._lock:
            self.manager.check_can_pause()
            if self.status == "suspended":
                return
            if self.status != "started":
                raise Conflict(f"VMware VM {self.name} is not running")
            await self.manager.vmrun("pause", self.vmx_path)
            self.status = "suspended"

    async def resume(self) -> None:
        async with self._lock:
            self.manager.check_can_pause()
            if self.status == "suspended":
                await self._unpause()

    async def _unpause(self) -> None:
        await self.manager.vmrun("unpause", self.vmx_path)
        self.status = "started"

    async def reload(self) -> None:
        async with self._lock:
            await self.manager.vmrun("reset", self.vmx_path)
            if self.status == "suspended":
                self.status = "started"

    async def close(self) -> None:
        if self.closed:
            return
        try:
            async with self._lock:
                try:
                    await self._stop_locked()
                except Exception as exc:
                    log.error("VMware VM %s could not be stopped while closing: %s", self.name, exc)
                    await self._tear_down()
                    self.status = "stopped"
        finally:
            self.reserved_vmnets.clear()
            if self.linked_clone:
                await self.manager.forget_clone(self.vmx_path)
            for task in list(self._background):
                if task is not asyncio.current_task():
                    task.cancel()
            await super().close()

    # -- console ---------------------------------------------------------------------------------------------------

    async def _start_console(self) -> None:
        """Serve the serial pipe on the console port. Another program may have taken that port since it was
        handed out: then the console moves to a free one (with a warning) rather than failing the start."""
        if self._relay is not None or self.console is None:
            return
        for attempt in range(CONSOLE_ATTEMPTS):
            relay = SerialConsoleRelay(self.manager.pipe_path(self.id), self.server.console_host, self.console,
                                       self.name)
            try:
                await relay.start()
            except EmulatorError:
                host = self.server.console_host
                if attempt + 1 == CONSOLE_ATTEMPTS or tcp_port_is_free(self.console, host):
                    raise
                taken = self.console
                super().change_console(None)
                self.project.warn(f"Console port {taken} of VMware VM {self.name} is used by another program: "
                                  f"the console moved to port {self.console}")
                continue
            self._relay = relay
            return

    async def _stop_console(self) -> None:
        relay, self._relay = self._relay, None
        if relay is not None:
            await relay.stop()

    # -- links -----------------------------------------------------------------------------------------------------

    def _vmnet_endpoint(self, adapter: int, _port: int) -> EthernetEndpoint:
        vmnet = self.edits.bridged.get(adapter) if self.edits is not None else None
        if vmnet is None:
            raise Conflict(f"Adapter {adapter} of VMware VM {self.name} has no VMnet interface in this run (its VMX "
                           "attaches it to nat, bridged or hostonly): allow use_any_adapter, or restart the VM")
        if not interface_exists(vmnet):
            raise Conflict(f"VMnet interface {vmnet} of adapter {adapter} does not exist on this host: VMware's "
                           f"networking must be running with {vmnet} configured (vmware-netcfg)")
        return EthernetEndpoint(vmnet)

    def adapter(self, adapter_number: int) -> Adapter:
        if adapter_number >= len(self.adapters) or adapter_number < 0:
            raise Conflict(f"Adapter {adapter_number} doesn't exist on VMware VM {self.name} (it has "
                           f"{len(self.adapters)}; set 'adapters' to add more)")
        return self.adapters[adapter_number]

    async def add_nio(self, adapter_number: int, port_number: int, nio: NIO) -> None:
        async with self._lock:
            adapter = self.check_port(adapter_number, port_number)
            if self.running:
                old = adapter.ports.get(port_number)
                if isinstance(nio, NIONAT | NIOVMNET) or isinstance(old, NIONAT | NIOVMNET):
                    raise Conflict(f"VMware VM {self.name} is running: stop it to attach adapter {adapter_number} "
                                   f"to {'VMware NAT' if isinstance(nio, NIONAT) else 'a VMnet'} or to change such "
                                   "an attachment")
                if self.use_ubridge and (self.edits is None or adapter_number not in self.edits.bridged):
                    raise Conflict(f"Adapter {adapter_number} of VMware VM {self.name} has no VMnet interface in "
                                   "this run: restart the VM to link it")
                if not self.use_ubridge:
                    raise Conflict(f"VMware VM {self.name} runs without use_ubridge: stop it to add a {nio.type} "
                                   "link")
            await super().add_nio(adapter_number, port_number, nio)

    async def remove_nio(self, adapter_number: int, port_number: int) -> NIO | None:
        async with self._lock:
            return await super().remove_nio(adapter_number, port_number)

    # -- helpers ---------------------------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _prepare_pipe(pipe: Path) -> None:
    """The serial port's socket directory exists (private to this user) and no stale socket is in the way."""
    pipe.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        pipe.unlink()


def _remove_pipe(pipe: Path) -> None:
    """The serial socket of a VM that is off (VMware may leave it behind when the VM dies). The directory stays:
    other VMs, of this server or another one on the host, may be about to open theirs in it."""
    with contextlib.suppress(FileNotFoundError):
        pipe.unlink()


def _write_edits(record_path: Path, record: dict[str, Any], vmx_path: str, vmx: VMXFile, original: bytes) -> None:
    """The restore record first, then the VMX (only when it changed): a server killed in between still knows how to
    put the file back."""
    atomic_write(record_path, json.dumps(record, indent=1))
    if vmx.to_bytes() != original:
        vmx.write(vmx_path)


def _read_record(record_path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(record_path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("Ignoring unreadable %s: %s", record_path, exc)
        return None
    return data if isinstance(data, dict) and isinstance(data.get("vmx_path"), str) else None


def _restore_file(vmx_path: str, undo: dict[str, str | None], record_path: Path) -> None:
    try:
        vmx = VMXFile.read(vmx_path)
    except VMXError as exc:
        log.warning("Cannot restore the VMX file: %s", exc)
    else:
        before = vmx.to_bytes()
        restore_after_stop(vmx, undo)
        if vmx.to_bytes() != before:
            vmx.write(vmx_path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record_path)


def _wait_gone(pid: int, timeout: float) -> None:
    """Until the process has ended (a zombie has: nobody may have reaped it yet), `timeout` seconds at most."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    log.warning("vmware-vmx (pid %s) is still there %s s after vmrun stop", pid, timeout)

