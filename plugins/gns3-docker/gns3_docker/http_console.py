"""The http and https consoles: a TCP port on the server relayed to a port inside the container.

The container has no network the server can reach (its adapters belong to the lab), so each connection runs
`nc 127.0.0.1 <console_http_port>` inside the container through the Engine API's exec endpoints and relays bytes
both ways unchanged (https is the same raw relay: TLS is between the browser and the container). At most four
connections are relayed at once, others wait; a connection is closed after 30 s of silence, or after 2 s of
silence once the container has started answering (browsers open a new one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gns3_docker.console import ChannelOpener, ContainerListener
from gns3core.errors import Conflict

log = logging.getLogger(__name__)

MAX_RELAYS = 4
IDLE_BEFORE_ANSWER = 30.0
IDLE_AFTER_ANSWER = 2.0
WAIT_FOR_RELAY = 30.0


class HTTPConsole(ContainerListener):
    """Relays each TCP connection to the container's `console_http_port` while the container runs."""

    what = "http console"

    def __init__(self, open_channel: ChannelOpener, host: str, port: int, name: str,
                 http_port: Callable[[], int]) -> None:
        super().__init__(host, port, name)
        self.open_channel = open_channel
        self.http_port = http_port
        self._relays = asyncio.Semaphore(MAX_RELAYS)
        self.idle_before_answer = IDLE_BEFORE_ANSWER
        self.idle_after_answer = IDLE_AFTER_ANSWER

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.available:
            return  # nothing to relay to while the container is stopped: the browser shows a closed connection
        try:
            await asyncio.wait_for(self._relays.acquire(), WAIT_FOR_RELAY)
        except TimeoutError:
            return
        try:
            try:
                channel = await self.open_channel()
            except Conflict as exc:
                log.info("%s of %s: %s", self.what, self.name, exc)
                return
            if channel is None:
                return
            try:
                await self._relay(reader, writer, channel)
            finally:
                with contextlib.suppress(Exception):
                    await channel.close()
        finally:
            self._relays.release()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, channel) -> None:
        loop = asyncio.get_running_loop()
        state = {"last": loop.time(), "answered": False}

        async def upstream() -> None:
            while data := await reader.read(65536):
                state["last"] = loop.time()
                await channel.write(data)

        async def downstream() -> None:
            while data := await channel.read():
                state["last"] = loop.time()
                state["answered"] = True
                writer.write(data)
                await writer.drain()

        async def watchdog() -> None:
            while True:
                limit = self.idle_after_answer if state["answered"] else self.idle_before_answer
                left = state["last"] + limit - loop.time()
                if left <= 0:
                    return
                await asyncio.sleep(min(left, 0.5))

        tasks = [asyncio.ensure_future(c) for c in (upstream(), downstream(), watchdog())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if tasks[0] in done and not tasks[0].exception():
                # the browser finished sending: keep relaying the answer until it ends or goes quiet
                await asyncio.wait(tasks[1:], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
