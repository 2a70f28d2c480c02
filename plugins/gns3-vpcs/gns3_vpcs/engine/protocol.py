"""The engine's control protocol: one JSON object per SOCK_SEQPACKET datagram, in both directions.

Server to worker, requests: {"id": n, "op": "start" | "stop" | "link" | "status", ...}, and {"op": "shutdown"} (no
reply) before a requested stop. Worker to server, a reply
per request: {"id": n, "ok": true, ...} or {"id": n, "error": "message for the API client"}; and events without an
id: {"event": "exited", "pc": vm_id, "code": 0, "output": "..."} when a PC ends on its own (the user typed `quit`),
{"event": "ready", "pid": n} once after connecting.
"""

from __future__ import annotations

import json
from typing import Any

MESSAGE_MAX = 1 << 16
DIRECTORY_PREFIX = "gns3-vpcs-engine-"  # the supervisor's temporary directory: control sockets, worker logs


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, Any]:
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("a control message must be a JSON object")
    return message
