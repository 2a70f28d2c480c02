"""JSON schemas (draft-04) of the VirtualBox endpoints, field for field as API v1 declares them, with length limits."""

from __future__ import annotations

from gns3core import schemas
from gns3core.schemas import NAME_LENGTH, PATH_LENGTH, string

_NAME = string(NAME_LENGTH, "VirtualBox VM instance name", min_length=1)
_VMNAME = string(NAME_LENGTH, "VirtualBox VM name (in VirtualBox itself)", min_length=1)
_ADAPTERS = {"description": "number of adapters", "type": "integer", "minimum": 0, "maximum": 36}
_ADAPTER_TYPE = string(NAME_LENGTH, "VirtualBox adapter type", min_length=1)
_RAM = {"description": "Amount of RAM (MB); 0 keeps the VM's own setting", "type": "integer", "minimum": 0,
        "maximum": 65535}
_BOOL = {"type": "boolean"}

_SETTINGS = {
    "name": _NAME,
    "vmname": _VMNAME,
    "adapters": _ADAPTERS,
    "use_any_adapter": {**_BOOL, "description": "allow GNS3 to use any VirtualBox adapter"},
    "adapter_type": _ADAPTER_TYPE,
    "console": schemas.CONSOLE_PORT,
    "enable_remote_console": {**_BOOL, "description": "serve the serial console over telnet"},
    "ram": _RAM,
    "headless": {**_BOOL, "description": "start the VM without a window"},
    "acpi_shutdown": {**_BOOL, "description": "stop with the ACPI power button instead of powering off"},
}

CREATE = schemas.obj(
    {"vm_id": schemas.VM_ID_CREATE, "linked_clone": {**_BOOL, "description": "clone the VM into the project"},
     **_SETTINGS},
    required=["name", "vmname", "linked_clone"],
    description="Request validation to create a new VirtualBox VM instance",
)

UPDATE = schemas.obj(_SETTINGS, description="Request validation to update a VirtualBox VM instance")

OBJECT = schemas.vm_object(
    {
        "name": _NAME,
        "vmname": _VMNAME,
        "vm_directory": string(PATH_LENGTH, "working directory of a linked clone (null otherwise)", nullable=True),
        "enable_remote_console": _BOOL,
        "headless": _BOOL,
        "acpi_shutdown": _BOOL,
        "adapters": _ADAPTERS,
        "use_any_adapter": _BOOL,
        "adapter_type": _ADAPTER_TYPE,
        "console": {"description": "console TCP port", "type": "integer", "minimum": 1, "maximum": 65535},
        "ram": {"description": "RAM of the VM (MB)", "type": "integer", "minimum": 0},
    },
    required=["vm_directory"], description="VirtualBox VM instance",
)

VM_LIST = {
    "$schema": schemas.DRAFT4,
    "description": "The VirtualBox VMs of the host, without GNS3's linked clones",
    "type": "array",
    "items": schemas.obj({"vmname": string(NAME_LENGTH * 4, "VirtualBox VM name"),
                          "ram": {"type": "integer", "minimum": 0}}, required=["vmname", "ram"]),
}
