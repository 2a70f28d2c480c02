"""A project's notification stream, read in the background by a test: what the GNS3 client would have been told."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gns3core.testing.client import ApiClient


class NotificationStream:
    """`async with NotificationStream(api, project_id) as stream:` collects events until the block ends."""

    def __init__(self, api: ApiClient, project_id: str) -> None:
        self.api = api
        self.project_id = project_id
        self.events: list[dict[str, Any]] = []
        self._task: asyncio.Task | None = None
        self._response: Any = None

    async def __aenter__(self) -> NotificationStream:
        self._response = await self.api.client.get(f"/v1/projects/{self.project_id}/notifications")
        self._task = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        while line := await self._response.content.readline():
            if line.strip():
                self.events.append(json.loads(line))

    async def wait_for(self, action: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first event of that action, waiting for it up to `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            for event in self.events:
                if event.get("action") == action:
                    return event
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {action} notification; got {self.actions()}")

    def actions(self) -> list[str]:
        return [event.get("action", "") for event in self.events]

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._response is not None:
            self._response.close()
