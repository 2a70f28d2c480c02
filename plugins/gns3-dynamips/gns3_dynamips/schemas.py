"""JSON schemas (draft-04) of the Dynamips routes, field for field as API v1 declares them."""

from __future__ import annotations

from typing import Any

from gns3core import schemas
from gns3core.schemas import CONFIG_LENGTH, DRAFT4, NAME_LENGTH, PATH_LENGTH, UUID, obj, string

_STR1 = string(NAME_LENGTH, min_length=1)
_PATH1 = string(PATH_LENGTH, min_length=1)
_CONFIG = string(CONFIG_LENGTH)
_CONFIG_BASE64 = string(CONFIG_LENGTH * 4 // 3 + 4)
_SLOT = {"oneOf": [string(NAME_LENGTH), {"type": "null"}]}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
NPE = {"enum": ["npe-100", "npe-150", "npe-175", "npe-200", "npe-225", "npe-300", "npe-400", "npe-g2"]}

_ROUTER_COMMON: dict[str, Any] = {
    "name": _STR1,
    "platform": string(NAME_LENGTH, min_length=1, pattern="^c[0-9]{4}$"),
    "chassis": string(NAME_LENGTH, min_length=1, pattern="^[0-9]{4}(XM)?$"),
    "image": _PATH1,
    "image_md5sum": string(NAME_LENGTH, nullable=True, min_length=1),
    "startup_config_content": _CONFIG,
    "private_config_content": _CONFIG,
    "ram": {"type": "integer"},
    "nvram": {"type": "integer"},
    "mmap": {"type": "boolean"},
    "sparsemem": {"type": "boolean"},
    "clock_divisor": {"type": "integer"},
    "idlepc": string(NAME_LENGTH, pattern="^(0x[0-9a-fA-F]+)?$"),
    "idlemax": {"type": "integer"},
    "idlesleep": {"type": "integer"},
    "exec_area": {"type": "integer"},
    "disk0": {"type": "integer"},
    "disk1": {"type": "integer"},
    "auto_delete_disks": {"type": "boolean"},
    "console": _PORT,
    "aux": _PORT,
    "mac_addr": string(NAME_LENGTH, min_length=1, pattern="^([0-9a-fA-F]{4}\\.){2}[0-9a-fA-F]{4}$"),
    "system_id": _STR1,
    **{f"slot{n}": _SLOT for n in range(7)},
    **{f"wic{n}": _SLOT for n in range(3)},
    "startup_config_base64": _CONFIG_BASE64,
    "private_config_base64": _CONFIG_BASE64,
    "npe": NPE,
    "midplane": {"enum": ["std", "vxr"]},
    "sensors": {"type": "array", "maxItems": 16, "items": {"type": "integer"}},
    "power_supplies": {"type": "array", "maxItems": 16, "items": {"type": "integer"}},
    "iomem": {"type": "integer", "minimum": 0, "maximum": 100},
}

ROUTER_CREATE = obj(
    {
        "vm_id": {"oneOf": [UUID, {"type": "integer"}]},
        "dynamips_id": {"type": "integer"},
        "startup_config": _PATH1,
        "private_config": _PATH1,
        **_ROUTER_COMMON,
    },
    required=["name", "platform", "image", "ram"],
    description="Request validation to create a new Dynamips VM instance",
)

ROUTER_UPDATE = obj(dict(_ROUTER_COMMON), description="Request validation to update a Dynamips VM instance")

ROUTER_OBJECT = obj(
    {
        "dynamips_id": {"type": "integer"},
        "vm_id": UUID,
        "vm_directory": {"type": "string"},
        "project_id": UUID,
        "startup_config": {"type": "string"},
        "private_config": {"type": "string"},
        **_ROUTER_COMMON,
        "image": {"type": "string"},
        "console": {"type": "integer", "minimum": 1, "maximum": 65535},
        "aux": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535},
        "mac_addr": {"type": "string"},
    },
    required=["name", "vm_id", "project_id", "dynamips_id"],
    description="Dynamips VM instance",
)

ROUTER_CONFIGS = obj(
    {
        "startup_config_content": string(CONFIG_LENGTH, nullable=True, min_length=1),
        "private_config_content": string(CONFIG_LENGTH, nullable=True, min_length=1),
    },
    description="Startup and private configs of a router",
)

IDLEPC_PROPOSALS = {"$schema": DRAFT4, "type": "array", "items": {"type": "string"}}
AUTO_IDLEPC = obj({"idlepc": string(NAME_LENGTH)}, required=["idlepc"])

IMAGE_LIST = {
    "$schema": DRAFT4,
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"filename": _STR1, "path": _STR1},
        "required": ["filename", "path"],
        "additionalProperties": False,
    },
}

DEVICE_TYPES = ("ethernet_switch", "ethernet_hub", "frame_relay_switch", "atm_switch")

DEVICE_CREATE = obj(
    {
        "name": _STR1,
        "device_id": {"oneOf": [UUID, {"type": "integer"}]},
        "device_type": _STR1,
    },
    required=["name", "device_type"],
    description="Request validation to create a new Dynamips device instance",
)

ETHERNET_SWITCH_PORT = {
    "description": "Ethernet switch port",
    "type": "object",
    "properties": {
        "port": {"type": "integer", "minimum": 1},
        "type": {"enum": ["access", "dot1q", "qinq"]},
        "vlan": {"type": "integer", "minimum": 1},
        "ethertype": {"enum": ["", "0x8100", "0x88A8", "0x9100", "0x9200"]},
    },
    "required": ["port", "type", "vlan"],
    "additionalProperties": False,
}

DEVICE_UPDATE = obj(
    {
        "name": _STR1,
        # API v1 quirk kept on purpose: `items` is a one-element list, so only the first entry is validated.
        "ports": {"type": "array", "items": [ETHERNET_SWITCH_PORT]},
    },
    description="Request validation to update a Dynamips device instance",
)

DEVICE_OBJECT = obj(
    {
        "device_id": UUID,
        "project_id": UUID,
        "name": _STR1,
        "ports": {"type": "array"},
        "mappings": {"type": "object"},
    },
    required=["device_id", "project_id", "name"],
    description="Dynamips device instance",
)

_DEVICE_NIO = schemas.nio_schema(exclude=("VMNET",))
PORT_SETTINGS = {
    "type": "object",
    "properties": {
        "type": {"enum": ["access", "dot1q", "qinq"]},
        "vlan": {"type": "integer", "minimum": 1},
        "ethertype": {"enum": ["", "0x8100", "0x88A8", "0x9100", "0x9200"]},
    },
    "required": ["type", "vlan"],
    "additionalProperties": False,
}
# Frame Relay and ATM switch mappings: "<port>:<dlci>" -> "<port>:<dlci>" (or VPI/VCI triples).
# Values that are not strings pass the schema and get the device's own 409 (as API v1 answers them).
MAPPINGS = {"type": "object", "maxProperties": 1024,
            "additionalProperties": {"anyOf": [string(NAME_LENGTH), {"not": {"type": "string"}}]}}
_NIO_WRAPPER = {
    "type": "object",
    "properties": {
        "nio": {"type": "object", "oneOf": _DEVICE_NIO["oneOf"]},
        "port_settings": PORT_SETTINGS,
        "mappings": MAPPINGS,
    },
    "required": ["nio"],
    "additionalProperties": False,
}
# The API v1 body is the wrapper; a bare NIO object is accepted too (what generic clients and the conformance kit
# send), and is treated as {"nio": <body>}.
DEVICE_NIO = {
    "$schema": DRAFT4,
    "description": "Request validation to add a NIO for a Dynamips device instance",
    "definitions": _DEVICE_NIO["definitions"],
    "oneOf": [_NIO_WRAPPER, {"oneOf": _DEVICE_NIO["oneOf"], "required": ["type"]}],
}
