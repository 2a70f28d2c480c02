"""Linked clones: a project's own copy of a VirtualBox VM, kept in the project and handed back to VirtualBox on close.

Created from the base snapshot "GNS3 Linked Base for clones" of the chosen VM (taken once), the clone lives in the
node's directory (`project-files/virtualbox/<vm_id>/<name>/`). When the project closes its disks are detached, the
list of them is written to `hdd_info.json` and the clone is unregistered, so VirtualBox holds nothing of a closed
project; reopening registers the clone's settings file again and re-attaches those disks: the same VM comes back.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from gns3_virtualbox.vboxmanage import VBoxManage
from gns3core.errors import Conflict, EmulatorError
from gns3core.files import atomic_write, contained_path

log = logging.getLogger(__name__)

BASE_SNAPSHOT = "GNS3 Linked Base for clones"
RESET_SNAPSHOT = "reset"
CLONE_MARK = "GNS3/Clone"
HDD_INFO = "hdd_info.json"
_STORAGE_SLOT = re.compile(r"^(?P<controller>.+)-(?P<port>\d+)-(?P<device>\d+)$")


def check_clone_name(name: str) -> None:
    """A clone's name becomes a directory of the project and a VBoxManage argument: one plain path component."""
    if (not name or name in (".", "..") or name.startswith(("-", ".")) or any(c in name for c in "/\\\x00")
            or len(name.encode()) > 255):
        raise Conflict(f"'{name}' cannot name a linked clone: it becomes a directory of the project, so it must not "
                       "start with '-' or '.', nor contain '/' or '\\'")


def clone_folder(vm_directory: Path, vmname: str) -> Path:
    return contained_path(vm_directory, vmname, "linked clone name")


def settings_file(vm_directory: Path, vmname: str) -> Path:
    return clone_folder(vm_directory, vmname) / f"{vmname}.vbox"


async def create(vbox: VBoxManage, base: str, base_info: dict[str, str], name: str, vm_directory: Path) -> None:
    """Clone `base` into `vm_directory/<name>`, registered under `name` and marked as a GNS3 clone."""
    check_clone_name(name)
    if any(vm_name == name for vm_name, _ in await vbox.vm_list()):
        raise Conflict(f"A VirtualBox VM named '{name}' already exists: give the node another name")
    snapshots = {value for key, value in base_info.items() if key.startswith("SnapshotName")}
    if BASE_SNAPSHOT not in snapshots:
        await vbox.run("snapshot", base, "take", BASE_SNAPSHOT)
    await vbox.run("clonevm", base, "--snapshot", BASE_SNAPSHOT, "--options", "link", "--name", name,
                   "--basefolder", str(vm_directory), "--register")
    try:
        await vbox.run("setextradata", name, CLONE_MARK, "yes")
        await vbox.run("snapshot", name, "take", RESET_SNAPSHOT)
    except EmulatorError:
        await _forget(vbox, name)
        raise


async def _forget(vbox: VBoxManage, name: str) -> None:
    try:
        await vbox.run("unregistervm", name, "--delete")
    except EmulatorError as exc:
        log.warning("Could not remove the unfinished linked clone %s: %s", name, exc)


async def close(vbox: VBoxManage, vmname: str, vm_directory: Path) -> None:
    """Detach the clone's disks, record them in hdd_info.json, unregister it. Detach failures are logged and
    skipped (the disk then stays attached in VirtualBox's view, as released GNS3 1.5 did)."""
    info = await vbox.machine_info(vmname)
    known = {block.get("Location", "") for block in await vbox.hdds()}
    snapshots = (clone_folder(vm_directory, vmname) / "Snapshots").resolve()
    disks: list[dict[str, Any]] = []
    for key, location in info.items():
        slot = _STORAGE_SLOT.match(key)
        if slot is None or location not in known:
            continue
        controller, port, device = slot["controller"], slot["port"], slot["device"]
        try:
            await vbox.run("storageattach", vmname, "--storagectl", controller, "--port", port, "--device", device,
                           "--type", "hdd", "--medium", "none")
        except EmulatorError as exc:
            log.warning("Could not detach disk %s from %s: %s", location, vmname, exc)
            continue
        if Path(location).resolve().parent == snapshots:
            disks.append({"hdd": Path(location).name, "controller": controller, "port": int(port),
                          "device": int(device)})
    atomic_write(clone_folder(vm_directory, vmname) / HDD_INFO, json.dumps(disks, indent=4))
    await vbox.run("unregistervm", vmname)


def recorded_disks(vm_directory: Path, vmname: str) -> list[dict[str, Any]]:
    """The disks hdd_info.json lists; entries that are not plain disk records of this clone are skipped."""
    path = clone_folder(vm_directory, vmname) / HDD_INFO
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise EmulatorError(f"Cannot read {path}: {exc}") from None
    disks = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        hdd, controller = entry.get("hdd"), entry.get("controller")
        port, device = entry.get("port"), entry.get("device")
        if (isinstance(hdd, str) and isinstance(controller, str) and isinstance(port, int)
                and isinstance(device, int) and hdd and "/" not in hdd and not hdd.startswith((".", "-"))):
            disks.append(entry)
        else:
            log.warning("Skipping a malformed entry of %s: %r", path, entry)
    return disks


async def reopen(vbox: VBoxManage, vmname: str, vm_directory: Path) -> bool:
    """Register a clone this project saved and re-attach its disks; False when the project holds no such clone.
    A clone VirtualBox still knows (a server that did not close it) is taken as it is."""
    vbox_file = settings_file(vm_directory, vmname)
    if not vbox_file.is_file():
        return False
    if any(name == vmname for name, _ in await vbox.vm_list()):
        log.info("Linked clone %s is still registered in VirtualBox: using it as it is", vmname)
        return True
    await vbox.run("registervm", str(vbox_file))
    snapshots = clone_folder(vm_directory, vmname) / "Snapshots"
    for disk in recorded_disks(vm_directory, vmname):
        try:
            await vbox.run("storageattach", vmname, "--storagectl", disk["controller"], "--port", str(disk["port"]),
                           "--device", str(disk["device"]), "--type", "hdd", "--medium", str(snapshots / disk["hdd"]))
        except EmulatorError as exc:
            log.warning("Could not re-attach disk %s to %s: %s", disk["hdd"], vmname, exc)
    return True
