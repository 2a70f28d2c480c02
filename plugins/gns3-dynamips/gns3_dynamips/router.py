"""Dynamips routers: each router owns a hypervisor; every setting is a hypervisor command (backends §4.2)."""

from __future__ import annotations

import asyncio
import base64
import glob
import logging
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3_dynamips.common import (
    SECTION,
    create_dynamips_nio,
    delete_dynamips_nio,
    start_dynamips_capture,
    start_hypervisor,
    working_dir,
)
from gns3_dynamips.hypervisor import Hypervisor, HypervisorError, quote
from gns3_dynamips.images import display_image, is_ios_image, resolve_image
from gns3_dynamips.platforms import (
    ADAPTER_PORTS,
    BUILTIN_ADAPTERS,
    PLATFORMS,
    WIC_PORTS,
    Platform,
    wic_port_base,
    wic_slot_count,
)
from gns3core.emulator import Adapter, BaseVM
from gns3core.emulator.nio import NIO, NIOUDP
from gns3core.errors import Conflict, EmulatorError
from gns3core.files import atomic_write, cached_md5, contained_path

if TYPE_CHECKING:
    from gns3core.emulator.manager import VMManager
    from gns3core.projects import Project

log = logging.getLogger(__name__)

STATUS_NAMES = {0: "inactive", 1: "shutting down", 2: "running", 3: "suspended"}
_ghost_lock = asyncio.Lock()
_ghosts_made: set[str] = set()


def _flag(value: bool) -> int:
    return 1 if value else 0


class Router(BaseVM):
    process_name = "Dynamips"

    def __init__(self, manager: VMManager, project: Project, vm_id: str, name: str, console: int | None = None,
                 *, platform: str, dynamips_id: int, chassis: str | None = None, aux: int | None = None) -> None:
        quote(name)
        super().__init__(manager, project, vm_id, name, console)
        self.platform_info: Platform = PLATFORMS[platform]
        p = self.platform_info
        self.platform = platform
        self.dynamips_id = dynamips_id
        self.chassis = chassis or p.default_chassis
        self.aux: int | None = None
        if aux is not None or manager.server.config.section(SECTION).getbool("allocate_aux_console_ports"):
            self.aux = self._reserve_console(aux)
        self.image: Path | None = None
        self.ram, self.nvram, self.clock_divisor = p.ram, p.nvram, p.clock_divisor
        self.iomem = p.iomem
        self.mmap, self.sparsemem = True, p.sparsemem
        self.idlepc, self.idlemax, self.idlesleep = "", 500, 30
        self.exec_area = 16 if os.name == "nt" else 64
        self.disk0 = self.disk1 = 0
        self.auto_delete_disks = False
        self.mac_addr = ""
        self.system_id = "FTX0945W0MY"
        self.npe, self.midplane = "npe-400", "vxr"
        self.sensors, self.power_supplies = [22, 22, 22, 22], [1, 1]
        self.startup_config = ""
        self.private_config = ""
        self.slots: list[str | None] = []
        self.wics: list[str | None] = []
        self.nios: dict[tuple[int, int], NIO] = {}
        self.nio_names: dict[tuple[int, int], str] = {}
        self.dynamips_status = 0
        self.hypervisor: Hypervisor | None = None
        self._reset_slots()

    # -- identity and JSON -----------------------------------------------------------------------------------------

    @property
    def vm_directory(self) -> Path:
        return working_dir(self.project)

    @property
    def hv(self) -> Hypervisor:
        if self.hypervisor is None:
            raise EmulatorError(f"Router {self.name} has no running hypervisor")
        return self.hypervisor

    @property
    def qname(self) -> str:
        return quote(self.name)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name, "vm_id": self.id, "vm_directory": str(self.vm_directory), "project_id": self.project.id,
            "dynamips_id": self.dynamips_id, "platform": self.platform,
            "image": display_image(self.server, self.image),
            "image_md5sum": cached_md5(self.image) if self.image is not None and self.image.is_file() else None,
            "startup_config": self.startup_config, "private_config": self.private_config,
            "ram": self.ram, "nvram": self.nvram, "mmap": self.mmap, "sparsemem": self.sparsemem,
            "clock_divisor": self.clock_divisor, "idlepc": self.idlepc, "idlemax": self.idlemax,
            "idlesleep": self.idlesleep, "exec_area": self.exec_area, "disk0": self.disk0, "disk1": self.disk1,
            "auto_delete_disks": self.auto_delete_disks, "console": self.console, "aux": self.aux,
            "mac_addr": self.mac_addr, "system_id": self.system_id,
        }
        for number, adapter in enumerate(self.slots):
            data[f"slot{number}"] = adapter
        for number, wic in enumerate(self.wics):
            data[f"wic{number}"] = wic
        if self.platform == "c7200":
            data.update(npe=self.npe, midplane=self.midplane, sensors=self.sensors,
                        power_supplies=self.power_supplies)
        else:
            data["iomem"] = self.iomem
            if self.platform in ("c1700", "c2600", "c3600"):
                data["chassis"] = self.chassis
        return data

    # -- creation --------------------------------------------------------------------------------------------------

    def _reset_slots(self) -> None:
        """Slots and WIC slots for the current chassis/NPE, keeping client adapters that still fit."""
        p = self.platform_info
        count = p.slot_count(self.chassis)
        builtin = p.builtin_slots(self.chassis, self.npe)
        old = self.slots
        self.slots = [builtin.get(n) or (old[n] if n < len(old) and old[n] not in BUILTIN_ADAPTERS else None)
                      for n in range(count)]
        wic_count = wic_slot_count(p, self.slots[0] if self.slots else None)
        self.wics = [self.wics[n] if n < len(self.wics) else None for n in range(wic_count)]

    async def create(self) -> None:
        """Start this router's hypervisor and create the router in it."""
        self.hypervisor = await start_hypervisor(self.server, self.project, on_exit=self._hypervisor_exited)
        try:
            await self.hv.send(f"vm create {self.qname} {self.dynamips_id} {self.platform}")
            await self.hv.send(f"vm set_con_tcp_port {self.qname} {self.console}")
            if self.aux is not None:
                await self.hv.send(f"vm set_aux_tcp_port {self.qname} {self.aux}")
            if self.platform_info.default_chassis and self.chassis != self.platform_info.default_chassis:
                await self.hv.send(f"{self.platform} set_chassis {self.qname} {self.chassis}")
            if self.platform == "c7200":
                await self.hv.send(f"vm slot_add_binding {self.qname} 0 0 {self.slots[0]}")
            chassis_mac = self.server.mac_base.dynamips(self.dynamips_id)  # None: dynamips' own ([Server] mac_base)
            if chassis_mac is not None:
                await self.hv.send(f"{self.platform} set_mac_addr {self.qname} {chassis_mac}")
            self.mac_addr = (await self.hv.send(f"{self.platform} get_mac_addr {self.qname}"))[0]
        except Exception:
            await self.hv.stop()
            self.hypervisor = None
            raise

    def _hypervisor_exited(self, returncode: int, output: str) -> None:
        self.dynamips_status = 0
        self.process_exited(returncode, output)

    # -- settings --------------------------------------------------------------------------------------------------

    async def update(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            await self.update_field(key, value)
        if not self.server.config.section(SECTION).getbool("mmap_support", True) and self.mmap:
            await self.set_mmap(False)
        if not self.server.config.section(SECTION).getbool("sparse_memory_support", True) and self.sparsemem:
            await self.set_sparsemem(False)
        if any(k.endswith("_config_content") or k in ("startup_config", "private_config", "name") for k in changes):
            await self.push_config_paths()

    async def update_field(self, key: str, value: Any) -> None:  # noqa: C901 - one branch per API key
        if key in ("platform", "image_md5sum", "startup_config_base64", "private_config_base64", "dynamips_id",
                   "vm_id"):
            return
        if key.startswith("slot") and key[4:].isdigit():
            await self.set_slot(int(key[4:]), value)
        elif key.startswith("wic") and key[3:].isdigit():
            await self.set_wic(int(key[3:]), value)
        elif key in ("startup_config_content", "private_config_content"):
            self.write_config(key.removesuffix("_config_content"), value)
        elif key in ("startup_config", "private_config"):
            await self.import_config(key.removesuffix("_config"), value)
        elif key == "name":
            if value and value != self.name:
                await self.rename(value)
        elif key == "console":
            if value != self.console:
                self.change_console(value)
                await self.hv.send(f"vm set_con_tcp_port {self.qname} {self.console}")
        elif key == "aux":
            if value != self.aux:
                self.server.ports.release_tcp_port(self.aux, self.project.id)
                self.aux = self._reserve_console(value) if value is not None else None
                if self.aux is not None:
                    await self.hv.send(f"vm set_aux_tcp_port {self.qname} {self.aux}")
        else:
            setter = getattr(self, f"set_{key}", None)
            if setter is not None and getattr(self, key, None) != value:
                await setter(value)

    async def set_image(self, value: str) -> None:
        path = resolve_image(self.server, value)
        await self.hv.send(f"vm set_ios {self.qname} {quote(str(path))}")
        self.image = path

    async def set_ram(self, value: int) -> None:
        await self.hv.send(f"vm set_ram {self.qname} {int(value)}")
        self.ram = value

    async def set_nvram(self, value: int) -> None:
        await self.hv.send(f"vm set_nvram {self.qname} {int(value)}")
        self.nvram = value

    async def set_mmap(self, value: bool) -> None:
        await self.hv.send(f"vm set_ram_mmap {self.qname} {_flag(value)}")
        self.mmap = bool(value)

    async def set_sparsemem(self, value: bool) -> None:
        await self.hv.send(f"vm set_sparse_mem {self.qname} {_flag(value)}")
        self.sparsemem = bool(value)

    async def set_clock_divisor(self, value: int) -> None:
        await self.hv.send(f"vm set_clock_divisor {self.qname} {int(value)}")
        self.clock_divisor = value

    async def set_idlepc(self, value: str) -> None:
        pc = value or "0x0"
        if self.dynamips_status == 2:
            await self.hv.send(f"vm set_idle_pc_online {self.qname} 0 {pc}")
        else:
            await self.hv.send(f"vm set_idle_pc {self.qname} {pc}")
        self.idlepc = value

    async def set_idlemax(self, value: int) -> None:
        if self.dynamips_status == 2:
            await self.hv.send(f"vm set_idle_max {self.qname} 0 {int(value)}")
        self.idlemax = value

    async def set_idlesleep(self, value: int) -> None:
        if self.dynamips_status == 2:
            await self.hv.send(f"vm set_idle_sleep_time {self.qname} 0 {int(value)}")
        self.idlesleep = value

    async def set_exec_area(self, value: int) -> None:
        await self.hv.send(f"vm set_exec_area {self.qname} {int(value)}")
        self.exec_area = value

    async def set_disk0(self, value: int) -> None:
        await self.hv.send(f"vm set_disk0 {self.qname} {int(value)}")
        self.disk0 = value

    async def set_disk1(self, value: int) -> None:
        await self.hv.send(f"vm set_disk1 {self.qname} {int(value)}")
        self.disk1 = value

    async def set_auto_delete_disks(self, value: bool) -> None:
        self.auto_delete_disks = bool(value)

    async def set_mac_addr(self, value: str) -> None:
        await self.hv.send(f"{self.platform} set_mac_addr {self.qname} {value}")
        self.mac_addr = value

    async def set_system_id(self, value: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
            raise Conflict(f"Invalid system ID {value!r}: letters, digits, '.', '_' and '-' only")
        await self.hv.send(f"{self.platform} set_system_id {self.qname} {value}")
        self.system_id = value

    async def set_iomem(self, value: int) -> None:
        if self.platform == "c7200":
            return
        await self.hv.send(f"{self.platform} set_iomem {self.qname} {int(value)}")
        self.iomem = value

    async def set_chassis(self, value: str) -> None:
        if not self.platform_info.default_chassis:
            raise Conflict(f"{self.platform} routers do not have chassis")
        if self.platform != "c1700" and value not in self.platform_info.chassis:
            raise Conflict(f"Unknown chassis {value} for {self.platform} routers")
        if self.nios:
            raise Conflict(f"Cannot change the chassis of {self.name} while it has links")
        await self.hv.send(f"{self.platform} set_chassis {self.qname} {value}")
        self.chassis = value
        self._reset_slots()

    async def set_npe(self, value: str) -> None:
        if self.platform != "c7200":
            return
        if self.dynamips_status != 0:
            raise Conflict("Cannot change the NPE of a running router")
        await self.hv.send(f"c7200 set_npe {self.qname} {value}")
        self.npe = value
        expected = "C7200-IO-GE-E" if value == "npe-g2" else "C7200-IO-FE"
        if self.slots[0] in ("C7200-IO-FE", "C7200-IO-GE-E") and self.slots[0] != expected:
            await self.set_slot(0, expected)

    async def set_midplane(self, value: str) -> None:
        if self.platform != "c7200":
            return
        await self.hv.send(f"c7200 set_midplane {self.qname} {value}")
        self.midplane = value

    async def set_sensors(self, value: list[int]) -> None:
        if self.platform != "c7200":
            return
        if self.dynamips_status == 2:
            for index, celsius in enumerate(value):
                await self.hv.send(f"c7200 set_temp_sensor {self.qname} {index} {int(celsius)}")
        self.sensors = list(value)

    async def set_power_supplies(self, value: list[int]) -> None:
        if self.platform != "c7200":
            return
        if self.dynamips_status == 2:
            for index, state in enumerate(value):
                await self.hv.send(f"c7200 set_power_supply {self.qname} {index} {_flag(bool(state))}")
        self.power_supplies = list(value)

    async def rename(self, new_name: str) -> None:
        quote(new_name)
        await self.hv.send(f"vm rename {self.qname} {quote(new_name)}")
        old = self.name
        self.name = new_name
        for kind in ("startup", "private"):
            path = self.config_path(kind)
            if path.is_file():
                try:
                    text = path.read_text(encoding="utf-8", errors="replace")
                    atomic_write(path, text.replace(old, new_name))
                except OSError as exc:
                    log.warning("Could not rename inside %s: %s", path, exc)

    # -- adapters --------------------------------------------------------------------------------------------------

    def _adapter_change_allowed_running(self, adapter: str | None) -> bool:
        if self.platform == "c7200":
            return not (adapter or "").startswith("C7200-")
        return (self.platform == "c3600" and self.chassis == "3660") or (
            self.platform == "c3745" and adapter == "NM-4T")

    async def set_slot(self, slot: int, adapter: str | None) -> None:
        if slot >= len(self.slots):
            raise Conflict(f"Slot {slot} doesn't exist on this router")
        current = self.slots[slot]
        if adapter == current:
            return
        if adapter is not None and adapter not in ADAPTER_PORTS:
            log.info("Unknown adapter %s for slot %s ignored", adapter, slot)
            return
        if current in BUILTIN_ADAPTERS or adapter in BUILTIN_ADAPTERS:
            return  # mainboards come with the chassis: they are neither removed nor inserted
        running = self.dynamips_status != 0
        if running and not self._adapter_change_allowed_running(adapter or current):
            raise Conflict(f"Sorry, changing the adapter in slot {slot} is not supported while router "
                           f"{self.name} is running")
        if any(s == slot for s, _ in self.nios):
            raise Conflict(f"Slot {slot} of router {self.name} has links: remove them first")
        if current is not None:
            if running:
                await self.hv.send(f"vm slot_oir_stop {self.qname} {slot} 0")
            await self.hv.send(f"vm slot_remove_binding {self.qname} {slot} 0")
            self.slots[slot] = None
        if adapter is not None:
            await self.hv.send(f"vm slot_add_binding {self.qname} {slot} 0 {adapter}")
            if running:
                await self.hv.send(f"vm slot_oir_start {self.qname} {slot} 0")
            self.slots[slot] = adapter
        if slot == 0:
            self.wics = [None] * wic_slot_count(self.platform_info, self.slots[0])

    async def set_wic(self, wic_slot: int, wic: str | None) -> None:
        if wic_slot >= len(self.wics):
            raise Conflict(f"WIC slot {wic_slot} doesn't exist on router {self.name}")
        current = self.wics[wic_slot]
        if wic == current:
            return
        if wic is not None and wic not in WIC_PORTS:
            log.info("Unknown WIC %s ignored", wic)
            return
        base = wic_port_base(wic_slot)
        if any(s == 0 and base <= p < base + 16 for s, p in self.nios):
            raise Conflict(f"WIC slot {wic_slot} of router {self.name} has links: remove them first")
        if current is not None:
            await self.hv.send(f"vm slot_remove_binding {self.qname} 0 {base}")
            self.wics[wic_slot] = None
        if wic is not None:
            await self.hv.send(f"vm slot_add_binding {self.qname} 0 {base} {wic}")
            self.wics[wic_slot] = wic

    def check_port(self, adapter_number: int, port_number: int) -> Adapter:
        if adapter_number < 0 or adapter_number >= len(self.slots):
            raise Conflict(f"Slot {adapter_number} doesn't exist on router {self.name}")
        adapter = self.slots[adapter_number]
        if adapter is None:
            raise Conflict(f"There is no adapter in slot {adapter_number} of router {self.name}")
        if 0 <= port_number < ADAPTER_PORTS.get(adapter, 0):
            return Adapter(ADAPTER_PORTS[adapter])
        if adapter_number == 0:
            for number, wic in enumerate(self.wics):
                base = wic_port_base(number)
                if wic is not None and base <= port_number < base + WIC_PORTS[wic]:
                    return Adapter(WIC_PORTS[wic])
        raise Conflict(f"Port {port_number} doesn't exist in adapter {adapter}")

    def get_nio(self, adapter_number: int, port_number: int) -> NIO | None:
        self.check_port(adapter_number, port_number)
        return self.nios.get((adapter_number, port_number))

    async def add_nio(self, adapter_number: int, port_number: int, nio: NIO) -> None:
        self.check_port(adapter_number, port_number)
        key = (adapter_number, port_number)
        if key in self.nios:
            await self.remove_nio(adapter_number, port_number)
        name = await create_dynamips_nio(self.hv, nio)
        binding = f"{self.qname} {adapter_number} {port_number} {name}"
        try:
            try:
                await self.hv.send(f"vm slot_add_nio_binding {binding}")
            except HypervisorError:
                await self.hv.send(f"vm slot_remove_nio_binding {self.qname} {adapter_number} {port_number}")
                await self.hv.send(f"vm slot_add_nio_binding {binding}")
            if self.dynamips_status == 2:
                await self.hv.send(f"vm slot_enable_nio {self.qname} {adapter_number} {port_number}")
        except EmulatorError:
            await delete_dynamips_nio(self.hv, name, False)
            raise
        self.nios[key] = nio
        self.nio_names[key] = name

    async def remove_nio(self, adapter_number: int, port_number: int) -> NIO | None:
        self.check_port(adapter_number, port_number)
        key = (adapter_number, port_number)
        if self.dynamips_status == 2:
            await self.hv.send(f"vm slot_disable_nio {self.qname} {adapter_number} {port_number}")
        await self.hv.send(f"vm slot_remove_nio_binding {self.qname} {adapter_number} {port_number}")
        nio = self.nios.pop(key, None)
        name = self.nio_names.pop(key, None)
        if nio is None or name is None:
            raise Conflict(f"Port {adapter_number}/{port_number} of router {self.name} is not connected")
        try:
            await delete_dynamips_nio(self.hv, name, nio.capturing)
        finally:
            self.release_nio(nio)
        return nio

    async def start_capture(self, adapter_number: int, port_number: int, path: Path, data_link_type: str) -> None:
        nio = self.get_nio(adapter_number, port_number)
        if nio is None:
            raise Conflict(f"Port {adapter_number}/{port_number} is not connected")
        if nio.capturing:
            raise Conflict(f"Port {port_number} has already a filter applied on {self.slots[adapter_number]}")
        await start_dynamips_capture(self.hv, self.nio_names[(adapter_number, port_number)], path, data_link_type)
        nio.capture_file, nio.capture_dlt = path, data_link_type

    async def stop_capture(self, adapter_number: int, port_number: int) -> None:
        nio = self.get_nio(adapter_number, port_number)
        if nio is None:
            raise Conflict(f"Port {adapter_number}/{port_number} is not connected")
        if nio.capturing:
            await self.hv.send(f"nio unbind_filter {self.nio_names[(adapter_number, port_number)]} 2")
        nio.capture_file = nio.capture_dlt = None

    # -- configs ---------------------------------------------------------------------------------------------------

    def config_path(self, kind: str) -> Path:
        return self.vm_directory / "configs" / f"i{self.dynamips_id}_{kind}-config.cfg"

    def write_config(self, kind: str, content: str | None) -> None:
        """Store a config as the reference did: a leading `!` line, no `\\r`, `%h` replaced by the name."""
        path = self.config_path(kind)
        text = (content or "").replace("\r", "").replace("%h", self.name)
        if text and not text.startswith("!\n"):
            text = "!\n" + text
        atomic_write(path, text)
        setattr(self, f"{kind}_config", f"configs/{path.name}")

    async def import_config(self, kind: str, relative: str) -> None:
        source = contained_path(self.vm_directory, relative, f"{kind} config path")
        if source == self.config_path(kind):
            setattr(self, f"{kind}_config", f"configs/{source.name}")
            return
        try:
            content = source.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise EmulatorError(f"Could not read the {kind} config {relative}: {exc.strerror or exc}") from exc
        self.write_config(kind, content)

    async def push_config_paths(self) -> None:
        """Tell dynamips which files to load into NVRAM (an empty private config is sent as "")."""
        if not self.startup_config and not self.private_config:
            return
        private = self.private_config
        if private and not (self.vm_directory / private).stat().st_size:
            private = ""
        await self.hv.send(f"vm set_config {self.qname} {quote(self.startup_config)} {quote(private)}")

    async def extract_configs(self) -> tuple[str | None, str | None]:
        """NVRAM contents through `vm extract_config` (last two tokens: quoted base64 startup and private)."""
        reply = await self.hv.send(f"vm extract_config {self.qname}")
        tokens = (reply[0] if reply else "").split(" ")
        if len(tokens) < 2:
            return None, None
        decoded = []
        for token in tokens[-2:]:
            raw = token.strip('"')
            text = base64.b64decode(raw).decode("utf-8", errors="replace") if raw else ""
            decoded.append(text.replace("\r", "") or None)
        return decoded[0], decoded[1]

    async def get_configs(self) -> dict[str, str | None]:
        startup = private = None
        try:
            startup, private = await self.extract_configs()
        except EmulatorError as exc:
            log.debug("No NVRAM configs for %s: %s", self.name, exc)
        if startup is None and private is None:
            for kind in ("startup", "private"):
                path = self.config_path(kind)
                text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
                if kind == "startup":
                    startup = text or None
                else:
                    private = text or None
        return {"startup_config_content": startup, "private_config_content": private}

    async def save_configs(self) -> None:
        if not self.startup_config and not self.private_config:
            return
        try:
            startup, private = await self.extract_configs()
        except EmulatorError as exc:
            log.warning("Could not extract the configs of %s: %s", self.name, exc)
            return
        if startup is not None:
            self.write_config("startup", startup)
        if private is not None:
            self.write_config("private", private)

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def get_status(self) -> int:
        reply = await self.hv.send(f"vm get_status {self.qname}")
        self.dynamips_status = int(reply[0]) if reply and reply[0].strip().isdigit() else 0
        return self.dynamips_status

    def _check_image(self) -> Path:
        image = self.image
        if image is None or not image.is_file():
            raise EmulatorError(f'IOS image "{display_image(self.server, image)}" is not accessible')
        if not is_ios_image(image):
            raise EmulatorError(f'"{image}" is not a valid IOS image')
        return image

    def _warn_about_ram(self) -> None:
        try:
            import psutil

            available = psutil.virtual_memory().available // (1024 * 1024)
        except Exception:  # noqa: BLE001 - only a hint
            return
        if self.ram > available:
            self.project.warn(f"Router {self.name} needs {self.ram} MB of RAM but only {available} MB are free")

    async def start(self) -> None:
        status = await self.get_status()
        if status == 3:
            await self.resume()
            return
        if status != 0:
            return
        image = self._check_image()
        self._warn_about_ram()
        await self._prepare_ghost(image)
        await self.push_config_paths()
        offset = self.hv.output_size()
        try:
            await self.hv.send(f"vm start {self.qname}")
        except HypervisorError as exc:
            await asyncio.sleep(0.05)  # let dynamips finish printing why
            detail = self.hv.output(offset)
            raise EmulatorError(f"{exc.message}\n{detail}".strip()) from exc
        self.dynamips_status = 2
        if self.platform == "c7200":
            if self.sensors != [22, 22, 22, 22]:
                await self.set_sensors(self.sensors)
            if self.power_supplies != [1, 1]:
                await self.set_power_supplies(self.power_supplies)
        if self.idlemax != 500:
            await self.set_idlemax(self.idlemax)
        if self.idlesleep != 30:
            await self.set_idlesleep(self.idlesleep)
        self.set_started()

    async def _prepare_ghost(self, image: Path) -> None:
        """Ghost IOS: one shared RAM image per (image, RAM) produced once per server run; failures only logged."""
        config = self.server.config.section(SECTION)
        if not config.getbool("ghost_ios_support", True) or (self.platform == "c7200" and self.npe == "npe-g2"):
            return
        if not self.mmap:
            raise EmulatorError("mmap support is required to enable ghost IOS support")
        ghost = re.sub(r"[\\/:]", "-", f"{image.name}-{self.ram}.ghost")
        ghost_path = self.vm_directory / ghost
        async with _ghost_lock:
            key = str(ghost_path)
            if key not in _ghosts_made:
                commands = [f'vm create "Ghost" 0 {self.platform}', f'vm set_ios "Ghost" {quote(str(image))}',
                            'vm set_ghost_status "Ghost" 1', f'vm set_ghost_file "Ghost" {quote(ghost)}',
                            f'vm set_ram "Ghost" {self.ram}', 'vm start "Ghost"', 'vm stop "Ghost"']
                try:
                    for command in commands:
                        await self.hv.send(command)
                    _ghosts_made.add(key)
                except EmulatorError as exc:
                    log.warning("Could not create ghost IOS %s: %s", ghost, exc)
                finally:
                    try:
                        await self.hv.send('vm clean_delete "Ghost"')
                    except EmulatorError:
                        pass
        if ghost_path.exists():
            try:
                await self.hv.send(f"vm set_ghost_status {self.qname} 2")
                await self.hv.send(f"vm set_ghost_file {self.qname} {quote(ghost)}")
            except EmulatorError as exc:
                log.warning("Could not use ghost IOS %s: %s", ghost, exc)

    async def stop(self) -> None:
        status = await self.get_status() if self.hypervisor is not None and self.hypervisor.running else 0
        if status != 0:
            await self.hv.send(f"vm stop {self.qname}")
        self.dynamips_status = 0
        if self.status == "started":
            self.set_stopped()

    async def suspend(self) -> None:
        if await self.get_status() == 2:
            await self.hv.send(f"vm suspend {self.qname}")
            self.dynamips_status = 3
            self.project.emit("vm.suspended", self.as_json())

    async def resume(self) -> None:
        await self.hv.send(f"vm resume {self.qname}")
        self.dynamips_status = 2
        if self.status != "started":
            self.set_started()

    async def reload(self) -> None:
        await self.stop()
        await self.start()

    @property
    def running(self) -> bool:
        return self.dynamips_status != 0 or self.status == "started"

    # -- idle-PC ---------------------------------------------------------------------------------------------------

    async def idlepc_proposals(self) -> list[str]:
        if await self.get_status() != 2:
            raise Conflict(f'Router "{self.name}" is not running')
        await self.set_idlepc("0x0")
        return await self.hv.send(f"vm get_idle_pc_prop {self.qname} 0")

    async def cpu_usage(self) -> float:
        reply = await self.hv.send(f"vm cpu_usage {self.qname} 0")
        return float(reply[0]) if reply else 0.0

    async def auto_idlepc(self, boot_wait: float = 20.0, sample_wait: float = 3.0) -> str:
        """Try each proposal; the first one that keeps the CPU under 70 % wins (backends §4.6)."""
        await self.set_idlepc("0x0")
        was_running = await self.get_status() == 2
        try:
            if not was_running:
                await self.start()
                await asyncio.sleep(boot_wait)
            proposals = await self.hv.send(f"vm get_idle_pc_prop {self.qname} 0")
            if not proposals:
                raise Conflict("No Idle-PC values found")
            for proposal in proposals:
                value = proposal.split(" ")[0]
                await self.set_idlepc(value)
                start_cpu, start_time = await self.cpu_usage(), time.monotonic()
                await asyncio.sleep(sample_wait)
                cpu, elapsed = await self.cpu_usage(), time.monotonic() - start_time
                usage = min(100.0, (cpu - start_cpu) * 100 / elapsed) if elapsed > 0 else 100.0
                if usage < 70:
                    return value
            raise Conflict("Sorry, no idle-pc value was suitable")
        finally:
            if not was_running:
                await self.stop()

    # -- close -----------------------------------------------------------------------------------------------------

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        ports = self.server.ports
        ports.release_tcp_port(self.console, self.project.id)
        ports.release_tcp_port(self.aux, self.project.id)
        for nio in self.nios.values():
            if isinstance(nio, NIOUDP):
                self.release_nio(nio)
        self.nios.clear()
        self.nio_names.clear()
        if self.hypervisor is None:
            return
        try:
            if self.hypervisor.running:
                try:
                    await self.stop()
                    await self.save_configs()
                    await self.hv.send(f"vm delete {self.qname}")
                except EmulatorError as exc:
                    log.warning("Closing router %s: %s", self.name, exc)
        finally:
            await self.hypervisor.stop()
            self.hypervisor = None
        if self.auto_delete_disks:
            self.delete_disks()

    def delete_disks(self) -> None:
        prefix = str(self.vm_directory / f"{self.platform}_i{self.dynamips_id}")
        for suffix in ("_disk[0-1]", "_slot[0-1]", "_nvram", "_flash[0-1]", "_rom", "_bootflash", "_ssa"):
            for path in glob.glob(glob.escape(prefix) + suffix):
                try:
                    os.remove(path)
                except OSError as exc:
                    log.warning("Could not delete %s: %s", path, exc)

    def delete_files(self) -> None:
        """Commit after delete: the router's dynamips files and its config files go."""
        prefix = glob.escape(str(self.vm_directory / f"{self.platform}_i{self.dynamips_id}"))
        paths = glob.glob(prefix + "_*") + [str(self.config_path("startup")), str(self.config_path("private"))]
        for path in paths:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("Could not delete %s: %s", path, exc)
