"""JSON schemas (draft-04) of the Qemu endpoints of API v1, as api-emulators.md §4 lists their fields."""

from __future__ import annotations

from typing import Any

from gns3core import schemas
from gns3core.schemas import COMMAND_LINE_LENGTH, DRAFT4, NAME_LENGTH, PATH_LENGTH, obj, string

PLATFORMS = [
    "aarch64", "alpha", "arm", "cris", "i386", "lm32", "m68k", "microblaze", "microblazeel", "mips", "mips64",
    "mips64el", "mipsel", "moxie", "or32", "ppc", "ppc64", "ppcemb", "s390x", "sh4", "sh4eb", "sparc", "sparc64",
    "tricore", "unicore32", "x86_64", "xtensa", "xtensaeb",
]
PRIORITIES = ["realtime", "very high", "high", "normal", "low", "very low"]
MAC_PATTERN = "^([0-9a-fA-F]{2}[:]){5}([0-9a-fA-F]{2})$"
DISKS = ("hda", "hdb", "hdc", "hdd")

_PATH = string(PATH_LENGTH)
_MD5 = string(NAME_LENGTH, nullable=True)
# Words that end up inside a comma-separated Qemu option (`-device <adapter_type>,...`, `-drive ...,if=<interface>`):
# a comma or an `=` there would smuggle in other properties (a `romfile=` reads any host file).
_OPTION_WORD = "^[a-zA-Z0-9_.-]*$"
_BOOL_OR_NULL = {"type": ["boolean", "null"]}


def _image_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for disk in DISKS:
        fields[f"{disk}_disk_image"] = {"description": f"QEMU {disk} disk image path", **_PATH}
        fields[f"{disk}_disk_interface"] = string(NAME_LENGTH, f"QEMU {disk} interface", pattern=_OPTION_WORD)
        fields[f"{disk}_disk_image_md5sum"] = {"description": f"QEMU {disk} disk image checksum", **_MD5}
    for name in ("cdrom_image", "initrd", "kernel_image"):
        fields[name] = {"description": f"QEMU {name} path", **_PATH}
        md5 = "cdrom_image_md5sum" if name == "cdrom_image" else f"{name}_md5sum"
        fields[md5] = {"description": f"{name} checksum", **_MD5}
    return fields


def _common(platforms: list[str], boot: list[str], priorities: list[str]) -> dict[str, Any]:
    return {
        "usage": string(COMMAND_LINE_LENGTH, "How to use the QEMU VM"),
        "qemu_path": string(PATH_LENGTH, "Path to QEMU", nullable=True, min_length=1),
        "platform": {"description": "Platform to emulate", "enum": platforms},
        "console": schemas.CONSOLE_PORT,
        "console_type": {"description": "Console type", "enum": ["telnet", "vnc"]},
        **_image_fields(),
        "boot_priority": {"description": "QEMU boot priority", "enum": boot},
        "ram": {"description": "Amount of RAM in MB", "type": ["integer", "null"]},
        "cpus": {"description": "Number of vCPUs", "type": ["integer", "null"], "minimum": 1, "maximum": 255},
        "adapters": {"description": "Number of adapters", "type": ["integer", "null"], "minimum": 0, "maximum": 32},
        "adapter_type": string(NAME_LENGTH, "QEMU adapter type", nullable=True, min_length=1, pattern=_OPTION_WORD),
        "mac_address": string(17, "QEMU MAC address", nullable=True, min_length=1, pattern=MAC_PATTERN),
        "kernel_command_line": string(COMMAND_LINE_LENGTH, "QEMU kernel command line", nullable=True),
        "legacy_networking": {"description": "Use QEMU legagy networking commands (-net syntax)", **_BOOL_OR_NULL},
        "acpi_shutdown": {"description": "ACPI shutdown support", **_BOOL_OR_NULL},
        "cpu_throttling": {"description": "Percentage of CPU allowed for QEMU", "minimum": 0, "maximum": 800,
                           "type": ["integer", "null"]},
        "process_priority": {"description": "Process priority for QEMU", "enum": priorities},
        "options": string(COMMAND_LINE_LENGTH, "Additional QEMU options", nullable=True),
    }


BOOT_PRIORITIES = ["c", "d", "n", "cn", "cd"]  # hard disk, CD, network, disk then network, disk then CD

VM_ID = {"description": "QEMU VM identifier", "oneOf": [schemas.UUID, {"type": "integer"}]}

CREATE = obj(
    {
        "vm_id": VM_ID,
        "name": string(NAME_LENGTH, "QEMU VM instance name", min_length=1),
        "linked_clone": {"description": "Whether the VM is a linked clone or not", "type": "boolean"},
        **_common([*PLATFORMS, "null"], BOOT_PRIORITIES, [*PRIORITIES, "null"]),
    },
    required=["name"], description="Request validation to create a new QEMU VM instance",
)

UPDATE = obj(
    {
        "name": string(NAME_LENGTH, "QEMU VM instance name", nullable=True, min_length=1),
        # The released 1.5.x line widened the update's enum to the create's (the 1.5.4 client offers all five).
        **_common([*PLATFORMS, "null"], BOOT_PRIORITIES, [*PRIORITIES, "null"]),
    },
    description="Request validation to update a QEMU VM instance",
)

_OUTPUT_PROPERTIES: dict[str, Any] = {
    "vm_id": {"description": "QEMU VM uuid", "type": "string", "minLength": 1},
    "project_id": {"description": "Project uuid", "type": "string", "minLength": 1},
    "name": {"description": "QEMU VM instance name", "type": "string", "minLength": 1},
    "vm_directory": {"description": "Path to the VM working directory", "type": "string"},
    **_common(PLATFORMS, BOOT_PRIORITIES, PRIORITIES),
    "command_line": schemas.COMMAND_LINE,
}
# The output states what is really in use: no nulls where the VM always has a value.
_OUTPUT_PROPERTIES.update({
    "qemu_path": {"description": "Path to QEMU", "type": "string", "minLength": 1},
    "console": {"description": "Console TCP port", "type": "integer", "minimum": 1, "maximum": 65535},
    "ram": {"description": "Amount of RAM in MB", "type": "integer"},
    "adapters": {"description": "Number of adapters", "type": "integer", "minimum": 0, "maximum": 32},
    "adapter_type": {"description": "QEMU adapter type", "type": "string", "minLength": 1},
    "mac_address": {"description": "QEMU MAC address", "type": "string", "minLength": 1, "pattern": MAC_PATTERN},
    "kernel_command_line": {"description": "QEMU kernel command line", "type": "string"},
    "legacy_networking": {"description": "Use QEMU legagy networking commands (-net syntax)", "type": "boolean"},
    "acpi_shutdown": {"description": "ACPI shutdown support", "type": "boolean"},
    "cpu_throttling": {"description": "Percentage of CPU allowed for QEMU", "minimum": 0, "maximum": 800,
                       "type": "integer"},
    "options": {"description": "Additional QEMU options", "type": "string"},
})

OUTPUT = obj(_OUTPUT_PROPERTIES, required=sorted(_OUTPUT_PROPERTIES), description="QEMU VM instance")

BINARY_LIST = {
    "$schema": DRAFT4,
    "description": "Qemu binaries (or qemu-img binaries) found on the server",
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"path": {"description": "Qemu binary path", "type": "string"},
                       "version": {"description": "Qemu version", "type": "string"}},
    },
}

# GET /v1/qemu/binaries may carry a JSON body (released 1.5.x): only the binaries of these architectures.
BINARY_FILTER = obj(
    {"archs": {"description": "Architectures to list binaries for", "type": ["array", "null"], "maxItems": 64,
               "items": {"type": "string", "maxLength": NAME_LENGTH, "enum": PLATFORMS}}},
    description="Request validation for a list of Qemu binaries",
)

CAPABILITIES = obj(
    {"kvm": {"description": "Architectures whose guests this server really runs under KVM", "type": "array",
             "items": {"type": "string", "enum": PLATFORMS}}},
    required=["kvm"], description="What this server's Qemu can accelerate",
)

IMAGE_LIST = {
    "$schema": DRAFT4,
    "description": "Images in the QEMU image directory",
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"filename": {"type": "string", "minLength": 1}, "path": {"type": "string", "minLength": 1}},
        "required": ["filename", "path"],
        "additionalProperties": False,
    },
}

IMG_OPTIONS = ("adapter_type", "cluster_size", "lazy_refcounts", "preallocation", "refcount_bits", "static",
               "subformat", "zeroed_grain")

IMG_CREATE = obj(
    {
        "qemu_img": string(PATH_LENGTH, "Path to the qemu-img binary"),
        "path": string(PATH_LENGTH, "Absolute or relative path of the image"),
        "format": {"description": "Image format type", "enum": ["qcow2", "qcow", "vpc", "vdi", "vmdk", "raw"]},
        "size": {"description": "Image size in Megabytes", "type": "integer"},
        "preallocation": {"enum": ["off", "metadata", "falloc", "full"]},
        "cluster_size": {"type": "integer"},
        "refcount_bits": {"type": "integer"},
        "lazy_refcounts": {"enum": ["on", "off"]},
        "subformat": {"enum": ["dynamic", "fixed", "streamOptimized", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
                               "monolithicSparse", "monolithicFlat"]},
        "static": {"enum": ["on", "off"]},
        "zeroed_grain": {"enum": ["on", "off"]},
        "adapter_type": {"enum": ["ide", "lsilogic", "buslogic", "legacyESX"]},
    },
    required=["qemu_img", "path", "format", "size"], description="Create a new QEMU image",
)
