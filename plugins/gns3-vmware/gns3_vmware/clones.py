"""Linked clones: a project runs its own copy of a VM that shares the base VM's disks through a snapshot.

The base VM gets a snapshot named "GNS3 Linked Base for clones" once (VMware lists its snapshots in `<vm>.vmsd`),
then `vmrun clone ... linked` makes the clone in the node's directory. VMware records each clone in the base's
`.vmsd` (`snapshot<N>.numClones`, `snapshot<N>.clone<i>`) and would then refuse to delete that snapshot or the base
VM; the server removes those records, as the clone lives and dies with the project.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gns3_vmware.vmx import VMXFile

BASE_SNAPSHOT = "GNS3 Linked Base for clones"
SNAPSHOT_NAME = re.compile(r"^(snapshot\d+)\.displayname$")
UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9 _.()+,@-]")


def vmsd_path(vmx_path: str) -> Path:
    return Path(os.path.splitext(vmx_path)[0] + ".vmsd")


def snapshot_prefix(vmsd: VMXFile, name: str = BASE_SNAPSHOT) -> str | None:
    """`snapshot<N>` of the snapshot with this display name, or None."""
    for key, value in vmsd.items().items():
        match = SNAPSHOT_NAME.match(key)
        if match and value == name:
            return match.group(1)
    return None


def forget_clones(vmsd: VMXFile, prefix: str) -> None:
    """Drop the base snapshot's clone records: one fewer clone counted, no `clone<i>` entries left."""
    count_key = f"{prefix}.numclones"
    count = vmsd.get(count_key)
    if count is not None:
        try:
            vmsd.set(count_key, str(max(0, int(count) - 1)))
        except ValueError:
            pass  # not a number: VMware wrote something else there; leave it alone
    clone_key = re.compile(rf"^{re.escape(prefix)}\.clone\d+$")
    for key in vmsd.keys():
        if clone_key.match(key):
            vmsd.delete(key)


def clone_file_name(vm_name: str) -> str:
    """A file name for the clone's VMX from the node's name: nothing that could leave the node's directory."""
    cleaned = UNSAFE_FILE_CHARACTERS.sub("_", vm_name).strip().lstrip(".")[:200]
    return f"{cleaned or 'vm'}.vmx"
