"""Test helpers around the VBoxManage stand-in (tests/virtualbox/standin/): a test double, not VirtualBox.

`StandIn` is one stand-in "installation": its state directory ($VBOX_USER_HOME), the program path the server is
configured with, the calls the server made, and the VM processes it left running (ended by `kill_leftovers`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

STANDIN_DIR = Path(__file__).parent / "standin"
VBOXMANAGE = STANDIN_DIR / "VBoxManage"
BASE_VM = "VM1"  # the VM every test's stand-in starts with


def private_port_ranges() -> dict[str, str]:
    """Tunnel and console ports away from the default ranges other suites (and their emulators) use here."""
    udp = 42000 + (os.getpid() % 50) * 100
    console = 7100 + (os.getpid() % 40) * 20
    return {"udp_start_port_range": str(udp), "udp_end_port_range": str(udp + 99),
            "console_start_port_range": str(console), "console_end_port_range": str(console + 19)}


class StandIn:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.pipes: Path | None = None  # the temp dir the server's serial sockets go to, when tests set one

    @property
    def program(self) -> str:
        return str(VBOXMANAGE)

    def env(self) -> dict[str, str]:
        return {**os.environ, "VBOX_USER_HOME": str(self.home), "VBOX_STANDIN_CALLER": "test"}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the stand-in directly (test set-up and inspection); its calls are not counted as the server's."""
        done = subprocess.run([self.program, "--nologo", *args], capture_output=True, text=True, env=self.env(),
                              timeout=60, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"VBoxManage {' '.join(args)} failed: {done.stderr}")
        return done

    def create_base_vm(self, name: str, *, memory: int = 256, disk: bool = True, nics: dict[int, str] | None = None,
                       guest_ip: str | None = None) -> None:
        """A VM as a user would have made it in VirtualBox: a disk on SATA, NIC 1 on NAT unless told otherwise."""
        self.run("createvm", "--name", name, "--ostype", "Linux_64", "--register")
        self.run("modifyvm", name, "--memory", str(memory))
        if disk:
            self.run("createmedium", "disk", "--filename", str(self.home / "disks" / f"{name}.vdi"), "--size", "64")
            self.run("storagectl", name, "--name", "SATA", "--add", "sata")
            self.run("storageattach", name, "--storagectl", "SATA", "--port", "0", "--device", "0", "--type", "hdd",
                     "--medium", str(self.home / "disks" / f"{name}.vdi"))
        for slot, attachment in (nics or {}).items():
            self.run("modifyvm", name, f"--nic{slot}", attachment)
        if guest_ip:
            self.run("setextradata", name, "VBoxStandIn/GuestIP", guest_ip)
        self.mark()

    def info(self, vm: str) -> dict[str, str]:
        info = {}
        for line in self.run("showvminfo", vm, "--machinereadable").stdout.splitlines():
            key, _, value = line.partition("=")
            info[key.strip('"')] = value.strip('"')
        return info

    def vms(self) -> list[str]:
        return [line.split('"')[1] for line in self.run("list", "vms").stdout.splitlines() if line.startswith('"')]

    # -- what the server did ---------------------------------------------------------------------------------------

    def _log(self) -> Path:
        return self.home / "standin-calls.jsonl"

    def mark(self) -> None:
        """Forget the calls so far: `calls()` then shows only what happens next."""
        self._offset = self._log().stat().st_size if self._log().exists() else 0

    def calls(self) -> list[dict[str, Any]]:
        """The server's VBoxManage runs since the last `mark()` (argv without --nologo, start, end, rc)."""
        if not self._log().exists():
            return []
        with open(self._log()) as handle:
            handle.seek(getattr(self, "_offset", 0))
            entries = [json.loads(line) for line in handle if line.strip()]
        entries = [entry for entry in entries if entry.get("caller") != "test"]
        for entry in entries:
            if entry["argv"][:1] == ["--nologo"]:
                entry["argv"] = entry["argv"][1:]
        return entries

    def argv(self) -> list[list[str]]:
        return [entry["argv"] for entry in self.calls()]

    # -- VM processes ----------------------------------------------------------------------------------------------

    def session(self, vm: str) -> dict[str, Any] | None:
        path = self.home / "standin-sessions" / f"{self.info(vm)['UUID']}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def vm_pid(self, vm: str) -> int:
        session = self.session(vm)
        assert session is not None, f"{vm} has no session"
        return session["pid"]

    def running_pids(self) -> list[int]:
        """VM processes of this stand-in that are alive (not zombies)."""
        pids = []
        for path in (self.home / "standin-sessions").glob("*.json"):
            pid = json.loads(path.read_text())["pid"]
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if state not in ("Z", "X") and path.stem.encode() in cmdline:
                pids.append(pid)
        return pids

    def kill_leftovers(self) -> list[int]:
        """End every VM process still running; returns their pids (a test that leaves one is buggy)."""
        pids = self.running_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while self.running_pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        return pids


def wait_until(condition, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
