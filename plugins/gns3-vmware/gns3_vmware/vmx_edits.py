"""What the server changes in a VM's VMX file before VMware powers it on, and how it puts the file back afterwards.

Before start, each GNS3 adapter `ethernet<i>` (i below the VM's adapter count) is made present with a generated MAC
and the requested virtual device, attached to a custom VMnet that the server then joins to the adapter's link (or to
VMware's NAT, or to the VMnet a `nio_vmnet` names); the other adapters start disconnected; the first serial port
becomes a pipe the console relay connects to. Every key changed is recorded with its original line, so that after
the VM stops the file is put back exactly as it was: a VMX the server did not change stays byte for byte the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gns3_vmware.vmnet import vnet_interface
from gns3_vmware.vmx import VMXFile
from gns3core.emulator.nio import NIO, NIONAT, NIOVMNET
from gns3core.errors import Conflict

MAX_ETHERNET = 10
VMWARE_ATTACHMENTS = ("nat", "bridged", "hostonly")


@dataclass
class StartEdits:
    """The outcome of the start edits: the VMnet of each adapter the server bridges, the VMnets it allocated for
    this run, and the original lines of every key it changed (None: the key was absent)."""

    bridged: dict[int, str] = field(default_factory=dict)
    allocated: list[str] = field(default_factory=list)
    undo: dict[str, str | None] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"bridged": {str(k): v for k, v in self.bridged.items()}, "allocated": self.allocated,
                "undo": self.undo}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StartEdits:
        return cls({int(k): v for k, v in data.get("bridged", {}).items()}, list(data.get("allocated", [])),
                   dict(data.get("undo", {})))


class RecordingEditor:
    """Sets keys of a VMX file and remembers each key's original line the first time it is touched."""

    def __init__(self, vmx: VMXFile, undo: dict[str, str | None]) -> None:
        self.vmx = vmx
        self.undo = undo

    def set(self, key: str, value: str) -> None:
        key = key.lower()
        if key not in self.undo:
            self.undo[key] = self.vmx.line_of(key)
        self.vmx.set(key, value)


def edit_for_start(vmx: VMXFile, *, adapters: int, adapter_type: str, use_any_adapter: bool, use_ubridge: bool,
                   nios: dict[int, NIO], pipe: str, allocate: Callable[[], str],
                   manages: Callable[[str], bool]) -> StartEdits:
    """Apply the start edits to `vmx` (in memory). `allocate()` hands out a free VMnet (or raises 409);
    `manages(vmnet)` tells a VMnet of the server's range from one the user chose. 409 when the VMX conflicts."""
    edits = StartEdits()
    editor = RecordingEditor(vmx, edits.undo)
    for i in range(adapters):
        prefix = f"ethernet{i}"
        existed = vmx.is_true(f"{prefix}.present")
        if adapter_type != "default":
            current = vmx.get(f"{prefix}.virtualdev")
            if existed and current is not None and current.lower() != adapter_type.lower():
                raise Conflict(f"Existing VMware network adapter {i} is not of type {adapter_type}, please remove it "
                               f"or change its type to {adapter_type} (or set adapter_type to {current} or default)")
        editor.set(f"{prefix}.present", "TRUE")
        editor.set(f"{prefix}.addresstype", "generated")
        editor.set(f"{prefix}.generatedaddressoffset", "0")
        if adapter_type != "default":
            editor.set(f"{prefix}.virtualdev", adapter_type)
        if (vmx.get(f"{prefix}.startconnected") or "").upper() == "FALSE":
            editor.set(f"{prefix}.startconnected", "TRUE")
        nio = nios.get(i)
        attachment = (vmx.get(f"{prefix}.connectiontype") or "").lower()
        if existed and attachment in VMWARE_ATTACHMENTS and not use_any_adapter and not isinstance(nio, NIONAT):
            if nio is not None:
                raise Conflict(f"Attachment ({attachment}) already configured on network adapter {i}. "
                               "Please remove it or allow GNS3 to use any adapter.")
            continue
        if isinstance(nio, NIONAT):
            editor.set(f"{prefix}.connectiontype", "nat")
            continue
        editor.set(f"{prefix}.connectiontype", "custom")
        if isinstance(nio, NIOVMNET):
            editor.set(f"{prefix}.vnet", nio.vmnet)
            continue
        existing = vmx.get(f"{prefix}.vnet")
        if use_ubridge:
            if existing and vnet_interface(existing) != "vmnet0" and not manages(vnet_interface(existing)):
                edits.bridged[i] = vnet_interface(existing)  # the user's own VMnet: joined as it is
                continue
            vmnet = allocate()
            edits.allocated.append(vmnet)
            edits.bridged[i] = vmnet
            editor.set(f"{prefix}.vnet", vmnet)
        elif not existing:
            editor.set(f"{prefix}.startconnected", "FALSE")
    for i in range(adapters, MAX_ETHERNET):
        if vmx.is_true(f"ethernet{i}.present"):
            editor.set(f"ethernet{i}.startconnected", "FALSE")
    editor.set("serial0.present", "TRUE")
    editor.set("serial0.filetype", "pipe")
    editor.set("serial0.filename", pipe)
    editor.set("serial0.pipe.endpoint", "server")
    return edits


def restore_after_stop(vmx: VMXFile, undo: dict[str, str | None]) -> None:
    """Put every key the start edits changed back as it was. For an adapter the server added, whatever VMware wrote
    about it while the VM ran (its generated MAC address, ...) goes too."""
    for key, line in undo.items():
        vmx.put_line(key, line)
    for i in range(MAX_ETHERNET):
        if f"ethernet{i}.present" in undo and undo[f"ethernet{i}.present"] is None:
            vmx.delete_prefix(f"ethernet{i}.")
