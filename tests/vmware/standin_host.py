"""A STAND-IN VMware installation for one test: `vmrun`, `vmware` and `vmware-vmx` programs in a private bin
directory (small wrappers around standin_vmrun.py and standin_vm.py), their state directory, a home directory with
VMware's per-user files, VMs (VMX files) to use, and the clean-up that leaves no VM process or interface behind.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

WRAPPER = """#!{python}
# STAND-IN for VMware's {program}, generated for a test (see {module}.py in {here}).
import sys
sys.path.insert(0, {here!r})
import {module}
sys.exit({module}.{function}(sys.argv[1:], state_dir={state!r}))
"""

PROGRAMS = {
    "vmrun": ("standin_vmrun", "vmrun_main"),
    "vmware": ("standin_vmrun", "product_main"),
    "vmware-vmx": ("standin_vm", "main"),
}


SLOTS = 20  # test runs of this suite that can run at once on one machine (other worktrees, CI)
SLOT_WAIT = 120.0


def _vmnets_in_use(first: int, last: int) -> bool:
    names = {f"vmnet{n}" for n in range(first, last + 1)}
    return any(name in names for _, name in socket.if_nameindex())


def claim_slot() -> tuple[int, socket.socket]:
    """A slot number no other running test of this suite holds, held as long as the returned socket is open.

    VMnet interface names are global to the machine, and other clones of this repository may run these tests at
    the same time: each test takes a slot and, with it, VMnet numbers and port ranges of its own. An abstract UNIX
    socket name is the lock (it goes away with the process, and leaves no file behind).
    """
    deadline = time.monotonic() + SLOT_WAIT
    while True:
        for slot in random.sample(range(SLOTS), SLOTS):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(f"\0gns3-vmware-tests-slot-{slot}")
            except OSError:
                sock.close()
                continue
            if _vmnets_in_use(20 + 10 * slot, 29 + 10 * slot):  # someone else's interfaces: not a free slot
                sock.close()
                continue
            return slot, sock
        if time.monotonic() > deadline:
            raise RuntimeError(f"all {SLOTS} slots of the VMware tests are held by other test runs")
        time.sleep(0.5)


class StandinVMware:
    """What a host with VMware Workstation installed has, played by the stand-ins, under `root`; plus the VMnet
    numbers, port ranges and serial-socket directory of this test alone."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / "standin-state"
        self.bin_dir = self.state_dir / "bin"
        self.home = root / "home"
        self.vm_folder = self.home / "vmware"
        self.networking_file = root / "networking"
        self.slot, self._slot_lock = claim_slot()
        self.vmnet_start = 20 + 10 * self.slot
        self.vmnet_end = self.vmnet_start + 9
        self.own_vmnet = f"vmnet{230 + self.slot}"  # outside the server's range: a VMnet the user chose
        self.udp_range = (40000 + 1000 * self.slot, 40999 + 1000 * self.slot)
        self.console_range = (20000 + 500 * self.slot, 20499 + 500 * self.slot)
        # VMware puts serial sockets in <temp dir>/gns3_vmware: a short temporary directory of the test's own
        # (UNIX socket paths are limited to 107 bytes).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="gvm", dir="/tmp"))
        self.bin_dir.mkdir(parents=True)
        self.vm_folder.mkdir(parents=True)
        (self.home / ".vmware").mkdir()
        for program, (module, function) in PROGRAMS.items():
            path = self.bin_dir / program
            path.write_text(WRAPPER.format(python=sys.executable, program=program, module=module,
                                           function=function, here=str(HERE), state=str(self.state_dir)))
            path.chmod(0o755)
        self.set_vmnets(range(self.vmnet_start, self.vmnet_end + 1))

    @property
    def vmrun(self) -> str:
        return str(self.bin_dir / "vmrun")

    def config_section(self) -> dict[str, str]:
        """The server's [VMware] section for this installation."""
        return {"vmrun_path": self.vmrun, "host_type": "ws", "vmnet_start_range": str(self.vmnet_start),
                "vmnet_end_range": str(self.vmnet_end), "networking_path": str(self.networking_file),
                "vms_path": str(self.vm_folder)}

    def server_section(self) -> dict[str, str]:
        """The server's [Server] port ranges for this test: away from the defaults other suites start from, and
        from other runs of this suite."""
        return {"udp_start_port_range": str(self.udp_range[0]), "udp_end_port_range": str(self.udp_range[1]),
                "console_start_port_range": str(self.console_range[0]),
                "console_end_port_range": str(self.console_range[1])}

    def set_vmnets(self, numbers) -> None:
        """VMware's networking file, with a host interface for each of these VMnets (and VMware's vmnet1/vmnet8)."""
        lines = ["VERSION=1,0"]
        for n in sorted({1, 8, *numbers}):
            lines += [f"answer VNET_{n}_DHCP no", f"answer VNET_{n}_HOSTONLY_NETMASK 255.255.255.0",
                      f"answer VNET_{n}_VIRTUAL_ADAPTER yes"]
        self.networking_file.write_text("\n".join(lines) + "\n")

    def configure(self, **values: Any) -> None:
        """The stand-in's behaviour: product (what `vmware -v` says), fail / delay per vmrun command."""
        (self.state_dir / "config.json").write_text(json.dumps(values))

    # -- VMs ----------------------------------------------------------------------------------------------------

    def make_vm(self, name: str, *, folder: Path | None = None, adapters: dict[int, dict[str, str]] | None = None,
                ips: dict[int, str] | None = None, extra: str = "", shebang: bool = True) -> Path:
        """A VM as Workstation creates it: `<folder>/<name>/<name>.vmx` with a disk and an empty snapshot list.
        `adapters` adds pre-existing ethernet<i> settings; `ips` gives the stand-in guest an address per adapter."""
        directory = (folder or self.vm_folder) / name
        directory.mkdir(parents=True)
        lines = [
            *(["#!/usr/bin/vmware"] if shebang else []),
            '.encoding = "UTF-8"',
            'config.version = "8"',
            'virtualHW.version = "12"',
            f'displayName = "{name}"',
            'guestOS = "other3xlinux-64"',
            'memsize = "256"',
            'scsi0.present = "TRUE"',
            'scsi0.virtualDev = "lsilogic"',
            'scsi0:0.present = "TRUE"',
            f'scsi0:0.fileName = "{name}.vmdk"',
            'uuid.bios = "56 4d 12 34 56 78 9a bc-de f0 12 34 56 78 9a bc"',
        ]
        for number, settings in (adapters or {}).items():
            lines += [f'ethernet{number}.{key} = "{value}"' for key, value in settings.items()]
        for number, ip in (ips or {}).items():
            lines.append(f'standin.ethernet{number}.ip = "{ip}"')
        vmx = directory / f"{name}.vmx"
        vmx.write_text("\n".join(lines) + "\n" + extra)
        vmx.chmod(0o755)
        (directory / f"{name}.vmdk").write_text("# stand-in disk descriptor\n")
        (directory / f"{name}.vmsd").write_text('.encoding = "UTF-8"\n')
        return vmx

    # -- what tests look at -------------------------------------------------------------------------------------

    def calls(self) -> list[list[str]]:
        """Every vmrun argument list received so far (without the program name)."""
        path = self.state_dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def overlapping_calls(self) -> list[list[str]]:
        """vmrun calls that started while another one ran."""
        path = self.state_dir / "overlaps.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def clear_calls(self) -> None:
        (self.state_dir / "calls.jsonl").unlink(missing_ok=True)

    def running(self) -> dict[str, dict]:
        try:
            return json.loads((self.state_dir / "state.json").read_text())["running"]
        except (OSError, ValueError, KeyError):
            return {}

    def vm_pid(self, vmx: Path | str) -> int:
        return self.running()[str(vmx)]["pid"]

    # -- clean-up -----------------------------------------------------------------------------------------------

    def vm_processes(self) -> list[int]:
        """Stand-in VM processes of this installation still alive."""
        marker = os.fsencode(str(self.bin_dir / "vmware-vmx"))
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if marker in (entry / "cmdline").read_bytes().split(b"\0"):
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def vmnet_interfaces(self) -> list[str]:
        """The VMnet interfaces this installation's VMs created that still exist."""
        path = self.state_dir / "interfaces.log"
        created = set(path.read_text().split()) if path.exists() else set()
        return sorted(name for _, name in socket.if_nameindex() if name in created)

    def release(self) -> None:
        """After cleanup: the temporary directory goes and the slot is free for another test."""
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        self._slot_lock.close()

    def cleanup(self) -> list[int]:
        """Kill VM processes left running (their TAP interfaces go with them); the pids that were left."""
        left = self.vm_processes()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while self.vm_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        return left
