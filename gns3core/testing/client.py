"""A small API client for tests: every call returns the status, the decoded JSON and the headers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse


@dataclass
class Reply:
    status: int
    json: Any
    headers: Any
    body: bytes

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.json!r})"


class ApiClient:
    """Wraps aiohttp's test client (or a ClientSession with a base URL) with JSON-in, Reply-out helpers."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def request(self, method: str, path: str, body: Any = None, raw: bytes | str | None = None,
                      headers: dict[str, str] | None = None) -> Reply:
        data: bytes | str | None = raw
        if body is not None:
            data = json.dumps(body)
        async with self.client.request(method, path, data=data, headers=headers) as response:
            return await _reply(response)

    async def get(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.request("GET", path, body, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.request("PUT", path, body, **kw)

    async def delete(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.request("DELETE", path, body, **kw)


async def _reply(response: ClientResponse) -> Reply:
    body = await response.read()
    decoded: Any = None
    if body and response.headers.get("Content-Type", "").startswith("application/json"):
        decoded = json.loads(body)
    return Reply(response.status, decoded, response.headers, body)
