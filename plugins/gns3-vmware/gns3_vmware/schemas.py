"""JSON schemas (draft-04) of the VMware endpoints: API v1's fields, each string with a length limit."""

from __future__ import annotations

from typing import Any

from gns3core import schemas
from gns3core.schemas import NAME_LENGTH, PATH_LENGTH, string

MAX_ADAPTERS = 10  # ethernet0 .. ethernet9: what VMware Workstation gives a VM

NAME = string(NAME_LENGTH, "VMware VM instance name", min_length=1)
VMX_PATH = string(PATH_LENGTH, "Absolute path of the VM's .vmx file", min_length=1)
# The adapter type is written into the VMX file as a value: letters, digits, dots, dashes and underscores only
# (every type VMware knows: e1000, e1000e, vlance, vmxnet, vmxnet2, vmxnet3, ...), and `default` keeps the VMX's own.
ADAPTER_TYPE = string(NAME_LENGTH, "VMware adapter type (e1000, e1000e, vlance, vmxnet2, vmxnet3, ...) or default",
                      min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
ADAPTERS = {"description": "Number of network adapters", "type": "integer", "minimum": 0, "maximum": MAX_ADAPTERS}

OPTIONS: dict[str, Any] = {
    "console": schemas.CONSOLE_PORT,
    "enable_remote_console": {"description": "Serve the VM's first serial port as a telnet console",
                              "type": "boolean"},
    "headless": {"description": "Start the VM without a window (vmrun start ... nogui)", "type": "boolean"},
    "acpi_shutdown": {"description": "Stop the VM through the guest (vmrun stop ... soft)", "type": "boolean"},
    "adapters": ADAPTERS,
    "adapter_type": ADAPTER_TYPE,
    "use_ubridge": {"description": "Join the adapters' vmnet interfaces to their links through the server",
                    "type": "boolean"},
    "use_any_adapter": {"description": "Also use adapters the VMX attaches to nat, bridged or hostonly",
                        "type": "boolean"},
}

CREATE = schemas.obj(
    {
        "vm_id": schemas.VM_ID,
        "linked_clone": {"description": "Run a linked clone in the project instead of the VM itself",
                         "type": "boolean"},
        "name": NAME,
        "vmx_path": VMX_PATH,
        **OPTIONS,
    },
    required=["name", "vmx_path", "linked_clone"],
    description="Request validation to create a new VMware VM instance",
)

UPDATE = schemas.obj(
    {"name": NAME, "vmx_path": VMX_PATH, **OPTIONS},
    description="Request validation to update a VMware VM instance",
)

OUTPUT = schemas.vm_object(
    {
        "vm_directory": {"description": "The VM's working directory in the project", "type": ["string", "null"]},
        "vmx_path": {"description": "The .vmx file in use (a linked clone's own file)", "type": "string",
                     "minLength": 1},
        "enable_remote_console": {"type": "boolean"},
        "headless": {"type": "boolean"},
        "acpi_shutdown": {"type": "boolean"},
        "adapters": ADAPTERS,
        "adapter_type": {"type": "string", "minLength": 1},
        "use_ubridge": {"type": "boolean"},
        "use_any_adapter": {"type": "boolean"},
        "linked_clone": {"type": "boolean"},
    },
    required=["vmx_path", "vm_directory", "adapters", "adapter_type"],
    description="VMware VM instance",
)

# nio_tap is the released 1.5.x addition; every other variant is the seed's.
NIO = schemas.NIO

VM_LIST = {
    "$schema": schemas.DRAFT4,
    "description": "VMware VMs of this host",
    "type": "array",
    "items": schemas.obj(
        {"vmname": {"type": "string"}, "vmx_path": {"type": "string", "minLength": 1}},
        required=["vmname", "vmx_path"],
    ),
}

VMNET = schemas.obj(
    {"vmnet": {"description": "A VMnet interface, e.g. vmnet12", "type": "string", "pattern": r"^vmnet\d+$"}},
    required=["vmnet"],
    description="An allocated VMnet interface",
)
