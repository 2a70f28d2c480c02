"""Helpers shared by the core's tests: disk snapshots, hand-written HTTP requests, free port blocks."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import socket
from pathlib import Path
from typing import Any


def tree_snapshot(root: Path) -> dict[str, str]:
    """Every entry under root with its kind and, for files, an md5 of its content: equal snapshots = nothing changed."""
    snapshot: dict[str, str] = {}
    if not root.exists():
        return snapshot
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            full = Path(dirpath) / name
            snapshot[str(full.relative_to(root))] = "link" if full.is_symlink() else "dir"
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink():
                snapshot[str(full.relative_to(root))] = f"link->{os.readlink(full)}"
            else:
                snapshot[str(full.relative_to(root))] = hashlib.md5(full.read_bytes()).hexdigest()
    return snapshot


async def raw_http(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send one hand-written HTTP/1.1 request (no URL normalisation by a client library) and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return status, headers, body


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out


def get_request(path: str, body: Any = None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


def free_port_block(kind: int, size: int) -> int:
    """A random base port in 30000-59000 whose next `size` ports are bindable now (tests share the machine)."""
    for _ in range(200):
        base = random.randrange(30000, 59000)
        if all(_bindable(kind, p) for p in range(base, base + size)):
            return base
    raise RuntimeError("no free block of ports found")


def _bindable(kind: int, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("0.0.0.0" if kind == socket.SOCK_DGRAM else "127.0.0.1", port))
        except OSError:
            return False
    return True
