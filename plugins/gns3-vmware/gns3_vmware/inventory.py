"""The VMware VMs of the host: VMware's inventory file, or its default VM folder when there is no inventory.

All of it lives in the home directory of the user the server runs as, where VMware keeps it: `~/.vmware/
inventory.vmls` (one `vmlist<N>.config` / `vmlist<N>.displayName` pair per VM), `~/.vmware/preferences`
(`prefvmx.defaultVMPath`) and the default folder `~/vmware`. Everything here blocks: call it from a worker thread.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from gns3_vmware.vmrun import same_file
from gns3_vmware.vmx import VMXError, VMXFile, read_pairs

log = logging.getLogger(__name__)

INVENTORY_ENTRY = re.compile(r"^(vmlist\d+)\.(.+)$")
MAX_SCANNED_FILES = 10000


def vmware_dir() -> Path:
    return Path.home() / ".vmware"


def inventory_path() -> Path:
    return vmware_dir() / "inventory.vmls"


def default_vm_folder() -> Path:
    """Where VMware creates new VMs: `prefvmx.defaultVMPath` of its preferences, else ~/vmware."""
    configured = read_pairs(vmware_dir() / "preferences").get("prefvmx.defaultvmpath")
    return Path(os.path.expanduser(configured)) if configured else Path.home() / "vmware"


def inventory_entries(path: Path | None = None) -> dict[str, dict[str, str]]:
    """`vmlist<N>` -> its settings (lower-cased names), from the inventory file ({} when there is none)."""
    entries: dict[str, dict[str, str]] = {}
    for key, value in read_pairs(path or inventory_path()).items():
        match = INVENTORY_ENTRY.match(key)
        if match:
            entries.setdefault(match.group(1), {})[match.group(2)] = value
    return entries


def list_vms() -> list[dict[str, str]]:
    """`{"vmname", "vmx_path"}` of each VM: the inventory's VMs whose file exists, else the default folder's."""
    path = inventory_path()
    if path.is_file():
        vms = []
        for entry in inventory_entries(path).values():
            config, name = entry.get("config"), entry.get("displayname")
            if config and name is not None and os.path.isfile(config):
                vms.append({"vmname": name, "vmx_path": config})
        return vms
    return scan_folder(default_vm_folder())


def scan_folder(folder: Path) -> list[dict[str, str]]:
    """The `.vmx` files under `folder` that have a `displayName`."""
    vms: list[dict[str, str]] = []
    scanned = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for filename in sorted(filenames):
            if not filename.lower().endswith(".vmx"):
                continue
            scanned += 1
            if scanned > MAX_SCANNED_FILES:
                log.warning("Stopped looking for VMware VMs in %s after %d files", folder, MAX_SCANNED_FILES)
                return vms
            vmx_path = os.path.join(dirpath, filename)
            try:
                name = VMXFile.read(vmx_path, limit=1024 * 1024).get("displayname")
            except VMXError as exc:
                log.debug("%s", exc)
                continue
            if name is not None:
                vms.append({"vmname": name, "vmx_path": vmx_path})
    return vms


def inventory_vmx_paths() -> list[str]:
    return [entry["config"] for entry in inventory_entries().values() if entry.get("config")]


def forget_in_inventory(vmx_path: str, path: Path | None = None) -> bool:
    """Remove a VM's `vmlist<N>.*` entries from the inventory (a linked clone going away); whether it was there."""
    path = path or inventory_path()
    if not path.is_file():
        return False
    try:
        inventory = VMXFile.read(path)
    except VMXError as exc:
        log.warning("%s", exc)
        return False
    prefixes = [prefix for prefix, entry in inventory_entries(path).items()
                if entry.get("config") and same_file(entry["config"], vmx_path)]
    for prefix in prefixes:
        inventory.delete_prefix(prefix + ".")
    if prefixes:
        inventory.write(path)
    return bool(prefixes)
