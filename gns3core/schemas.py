"""JSON schemas (draft-04) of the core API and the building blocks emulator plugins reuse."""

from __future__ import annotations

from typing import Any

DRAFT4 = "http://json-schema.org/draft-04/schema#"

UUID_PATTERN = "^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$"

UUID = {"type": "string", "minLength": 36, "maxLength": 36, "pattern": UUID_PATTERN}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
CONSOLE_PORT = {"description": "console TCP port", "minimum": 1, "maximum": 65535, "type": ["integer", "null"]}

# Length limits. Every string a client sends has one, so no value is large enough to make a parser, a program or a
# log line slow; a value over its limit is a 400 before any handler runs.
NAME_LENGTH = 256  # node, project and device names, identifiers, enum-like words
FILE_NAME_LENGTH = 255  # one path component (NAME_MAX)
PATH_LENGTH = 4096  # a path on the host (PATH_MAX)
HOST_LENGTH = 253  # a host name or address (the DNS limit)
COMMAND_LINE_LENGTH = 8192  # extra options and start commands
CONFIG_LENGTH = 1024 * 1024  # router configurations, startup scripts, environment blocks


def string(max_length: int, description: str = "", *, nullable: bool = False, min_length: int | None = None,
           **extra: Any) -> dict[str, Any]:
    """A string field with its length limit (and optionally null); `extra` adds pattern, enum and the like."""
    schema: dict[str, Any] = {"type": ["string", "null"] if nullable else "string", "maxLength": max_length}
    if description:
        schema["description"] = description
    if min_length is not None:
        schema["minLength"] = min_length
    schema.update(extra)
    return schema


def unbounded_strings(schema: Any, where: str = "") -> list[str]:
    """Where a schema accepts a string of any length (a string type without `maxLength`, `enum` or `const`).

    Every request schema must come back empty: the conformance kit and the core's tests check it for every route.
    """
    found: list[str] = []
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            found += unbounded_strings(item, f"{where}/{index}")
        return found
    if not isinstance(schema, dict):
        return found
    kind = schema.get("type")
    is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
    if is_string and not {"maxLength", "enum", "const"} & schema.keys():
        found.append(where or "/")
    for key in ("properties", "patternProperties", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            found += unbounded_strings(sub, f"{where}/{key}/{name}")
    for key in ("items", "additionalProperties", "additionalItems"):  # not "not": what it names is refused
        if isinstance(schema.get(key), (dict, list)):
            found += unbounded_strings(schema[key], f"{where}/{key}")
    for key in ("oneOf", "anyOf", "allOf"):
        if key in schema:
            found += unbounded_strings(schema[key], f"{where}/{key}")
    return found


def obj(properties: dict[str, Any], required: list[str] | None = None, description: str = "",
        strict: bool = True) -> dict[str, Any]:
    """A draft-04 object schema; `strict` forbids unknown keys as almost every API v1 schema does."""
    schema: dict[str, Any] = {"$schema": DRAFT4, "type": "object", "properties": properties}
    if description:
        schema["description"] = description
    if required:
        schema["required"] = required
    if strict:
        schema["additionalProperties"] = False
    return schema


# -- version -----------------------------------------------------------------------------------------------------------

VERSION = obj(
    {"version": string(NAME_LENGTH, "Version number"),
     "local": {"type": "boolean", "description": "Whether this is a local server or not"}},
    required=["version"], description="Request validation to check a client's version",
)

# -- projects ----------------------------------------------------------------------------------------------------------

PROJECT_CREATE = obj(
    {
        "name": string(NAME_LENGTH, "Project name", nullable=True, min_length=1),
        "path": string(PATH_LENGTH, "Project directory", nullable=True, min_length=1),
        "project_id": {"description": "Project UUID", "type": ["string", "null"], "minLength": 36, "maxLength": 36,
                       "pattern": UUID_PATTERN},
        "temporary": {"description": "If project is a temporary project", "type": "boolean"},
    },
    description="Request validation to create a new Project instance",
)

PROJECT_UPDATE = obj(
    {
        "name": string(NAME_LENGTH, "Project name", nullable=True, min_length=1),
        "temporary": {"description": "If project is a temporary project", "type": "boolean"},
        "path": string(PATH_LENGTH, "Path of the project on the server (work only with --local)", nullable=True),
    },
    description="Request validation to update a Project instance",
)

PROJECT_OBJECT = obj(
    {
        "name": {"description": "Project name", "type": ["string", "null"], "minLength": 1},
        "location": {"description": "Project directory", "type": "string", "minLength": 1},
        "path": {"description": "Project directory", "type": "string", "minLength": 1},
        "project_id": {"description": "Project UUID", **UUID},
        "temporary": {"description": "If project is a temporary project", "type": "boolean"},
    },
    required=["location", "project_id", "temporary"], description="Project instance",
)

PROJECT_LIST = {"$schema": DRAFT4, "type": "array", "items": PROJECT_OBJECT}

PROJECT_FILE_LIST = {
    "$schema": DRAFT4,
    "description": "List files in the project",
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"path": {"type": "string"}, "md5sum": {"type": "string"}},
    },
}

UDP_PORT_OBJECT = obj({"udp_port": PORT}, required=["udp_port"], description="A UDP port for a tunnel")

# Query strings of the portable-project routes (released 1.5.x), merged into the body as strings.
_QUERY_FLAG = {"type": "string", "maxLength": 16, "pattern": "^-?[0-9]+$"}

PROJECT_EXPORT_QUERY = obj(
    {"include_images": {"description": "1 to put the project's disk images in the archive (default 0)",
                        **_QUERY_FLAG}},
    description="Query of a project export",
)

PROJECT_IMPORT_QUERY = obj(
    {"gns3vm": {"description": "1 (the default) to set Qemu, IOU and Docker nodes up for a GNS3 VM", **_QUERY_FLAG}},
    description="Query of a project import",
)

FILE_STREAM = obj(
    {"location": string(PATH_LENGTH, "File path", min_length=1)},
    required=["location"], description="Request validation for streaming a file",
)

INTERFACE_LIST = {
    "$schema": DRAFT4,
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "ip_address": {"type": "string"},
            "mac_address": {"type": "string", "description": "Link-layer address, \"\" if none (released 1.5.x)"},
        },
        "required": ["id", "name", "ip_address"],
    },
}

# -- NIOs ---------------------------------------------------------------------------------------------------------

_DEVICE = string(NAME_LENGTH, min_length=1)
_HOST_FILE = string(PATH_LENGTH, min_length=1)

NIO_DEFINITIONS: dict[str, dict[str, Any]] = {
    "UDP": {
        "description": "UDP Network Input/Output",
        "properties": {"type": {"enum": ["nio_udp"]}, "lport": PORT, "rhost": string(HOST_LENGTH, min_length=1),
                       "rport": PORT},
        "required": ["type", "lport", "rhost", "rport"],
        "additionalProperties": False,
    },
    "Ethernet": {
        "description": "Generic Ethernet Network Input/Output",
        "properties": {"type": {"enum": ["nio_generic_ethernet"]}, "ethernet_device": _DEVICE},
        "required": ["type", "ethernet_device"],
        "additionalProperties": False,
    },
    "LinuxEthernet": {
        "description": "Linux Ethernet Network Input/Output",
        "properties": {"type": {"enum": ["nio_linux_ethernet"]}, "ethernet_device": _DEVICE},
        "required": ["type", "ethernet_device"],
        "additionalProperties": False,
    },
    "NAT": {
        "description": "NAT Network Input/Output",
        "properties": {"type": {"enum": ["nio_nat"]}},
        "required": ["type"],
        "additionalProperties": False,
    },
    "TAP": {
        "description": "TAP Network Input/Output",
        "properties": {"type": {"enum": ["nio_tap"]}, "tap_device": _DEVICE},
        "required": ["type", "tap_device"],
        "additionalProperties": False,
    },
    "UNIX": {
        "description": "UNIX Network Input/Output",
        "properties": {"type": {"enum": ["nio_unix"]}, "local_file": _HOST_FILE, "remote_file": _HOST_FILE},
        "required": ["type", "local_file", "remote_file"],
        "additionalProperties": False,
    },
    "VDE": {
        "description": "VDE Network Input/Output",
        "properties": {"type": {"enum": ["nio_vde"]}, "control_file": _HOST_FILE, "local_file": _HOST_FILE},
        "required": ["type", "control_file", "local_file"],
        "additionalProperties": False,
    },
    "VMNET": {
        "description": "VMNET Network Input/Output",
        "properties": {"type": {"enum": ["nio_vmnet"]}, "vmnet": _DEVICE},
        "required": ["type", "vmnet"],
        "additionalProperties": False,
    },
    "NULL": {
        "description": "NULL Network Input/Output",
        "properties": {"type": {"enum": ["nio_null"]}},
        "required": ["type"],
        "additionalProperties": False,
    },
}


def nio_schema(exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The NIO `oneOf` schema; the Dynamips device variant leaves VMNET out."""
    names = [name for name in NIO_DEFINITIONS if name not in exclude]
    return {
        "$schema": DRAFT4,
        "description": "Request validation to add a NIO instance",
        "type": "object",
        "definitions": {name: NIO_DEFINITIONS[name] for name in names},
        # inline, not "$ref": the validator resolves a $ref on every request, which made NIO bodies 2-3x slower
        "oneOf": [NIO_DEFINITIONS[name] for name in names],
        "required": ["type"],
    }


NIO = nio_schema()

# One start_capture schema for every kind (api-1.5-release §7): the 1.5.4 client always sends `data_link_type`, a
# seed-era client may leave it out (the capture is then Ethernet, DLT_EN10MB).
CAPTURE = obj(
    {
        "capture_file_name": string(FILE_NAME_LENGTH, "Capture file name", min_length=1),
        "data_link_type": string(NAME_LENGTH, "PCAP data link type", min_length=1),
    },
    required=["capture_file_name"], description="Request validation to start a packet capture",
)

CAPTURE_RESULT = obj(
    {"pcap_file_path": {"description": "Absolute path of the capture file", "type": "string"}},
    required=["pcap_file_path"],
)


# -- the VM object shared by every kind ---------------------------------------------------------------------------

VM_ID = {"description": "VM UUID", **UUID}
VM_ID_CREATE = {"description": "VM identifier (a UUID, or the integer id of a pre-1.3 project)",
                "oneOf": [UUID, {"type": "integer"}]}
VM_STATUS = {"description": "VM status", "enum": ["started", "stopped", "suspended"]}
COMMAND_LINE = {"description": "The emulator's command line of the last start (\"\" before the first start)",
                "type": "string"}

BASE_VM_PROPERTIES: dict[str, Any] = {
    "name": string(NAME_LENGTH, "VM name", min_length=1),
    "vm_id": VM_ID,
    "project_id": {"description": "Project UUID", **UUID},
    "console": {"description": "console TCP port", "type": ["integer", "null"], "minimum": 1, "maximum": 65535},
    "status": VM_STATUS,
}


def vm_object(properties: dict[str, Any], required: list[str] | None = None, description: str = "VM instance"
              ) -> dict[str, Any]:
    """A kind's VM object: what `BaseVM.as_json` gives (name, vm_id, project_id, console, status) plus `properties`."""
    base_required = ["name", "vm_id", "project_id", "status"]
    return obj({**BASE_VM_PROPERTIES, **properties},
               required=base_required + [r for r in required or [] if r not in base_required],
               description=description)
