"""The Docker Engine as this plugin uses it: aio-libs' `aiodocker` client behind the few calls the plugin makes.

Every engine failure comes out as an API error a person can act on: `EngineUnreachable` (409, says how to get an
engine) or `EngineError` (409 `Docker has returned an error: ...`, keeping the engine's HTTP status for callers that
treat "no such container" as done).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiodocker
import aiohttp
from aiodocker.stream import Stream

from gns3core.errors import Conflict

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
MAX_API_VERSION = (1, 41)  # what this plugin was written against (Docker 20.10)
MIN_API_VERSION = (1, 24)  # pause, attach/ws, exec, events filters and labels all exist from here on
REQUEST_TIMEOUT = 120.0
UNREACHABLE = 900  # aiodocker's status for "no connection to the engine"

START_HINT = (
    "Start a Docker Engine (e.g. 'systemctl start docker', or 'dockerd --iptables=false --bridge=none' as root), "
    "or point the server at a running one with the DOCKER_HOST environment variable or "
    "'docker_host' in the [Docker] section of the server configuration"
)


class EngineUnreachable(Conflict):
    """409: nothing answers at the engine address; the message says how to get an engine, `reason` why."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class EngineError(Conflict):
    """409: the engine answered with an error; `engine_status` keeps its HTTP status (404 = no such object)."""

    def __init__(self, engine_status: int, engine_message: str) -> None:
        super().__init__(f"Docker has returned an error: {engine_message}")
        self.engine_status = engine_status
        self.engine_message = engine_message


def docker_host_of(config_value: str | None) -> str:
    """The engine address: the [Docker] docker_host key, else DOCKER_HOST, else the standard socket."""
    return (config_value or "").strip() or os.environ.get("DOCKER_HOST", "").strip() or DEFAULT_DOCKER_HOST


def parse_version(text: str) -> tuple[int, int]:
    major, _, minor = str(text).partition(".")
    return int(major), int(minor or 0)


def unix_time(rfc3339: str) -> str:
    """`2024-05-01T10:00:00.123456789Z` (or with an offset) as `seconds.nanoseconds` since the epoch."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", rfc3339.strip())
    if match is None:
        raise EngineError(500, f"the engine's clock reads {rfc3339[:60]!r}, which is not an RFC 3339 time")
    base, fraction, offset = match.groups()
    seconds = int(datetime.fromisoformat(base + ("+00:00" if offset == "Z" else offset)).timestamp())
    return f"{seconds}.{(fraction or '0')[:9].ljust(9, '0')}"


def _client_url(host: str) -> str:
    """The address in the form aiodocker takes; EngineUnreachable for a scheme the plugin does not speak."""
    scheme = urlsplit(host).scheme
    if scheme == "unix":
        return host
    if scheme in ("tcp", "http"):
        return "http://" + host.split("://", 1)[1]
    raise EngineUnreachable(f"Docker host {host!r} is not supported: use unix:///path/to/docker.sock or "
                            "tcp://host:port")


class DockerEngine:
    """One engine at `host` (`unix:///path`, `tcp://host:port` or `http://host:port`), spoken to through one
    aiodocker client per event loop, on the highest API version both sides know."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._url = _client_url(host)
        self._docker: aiodocker.Docker | None = None
        self._connector: aiohttp.BaseConnector | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._negotiating: asyncio.Lock | None = None
        self._ready = False
        self.server_version: str | None = None
        self.server_api_version: str | None = None  # what the engine speaks
        self.api_version: str | None = None  # what this plugin speaks with it

    # -- plumbing ------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, what: str, timeout: float | None = REQUEST_TIMEOUT) -> Iterator[None]:
        """Translate aiodocker's and aiohttp's exceptions into the plugin's two API errors."""
        try:
            yield
        except aiodocker.DockerError as exc:
            if exc.status == UNREACHABLE:
                raise self._unreachable(exc.__context__ or exc) from None
            raise EngineError(exc.status, str(exc.message).strip() or f"HTTP status {exc.status}") from None
        except aiohttp.WSServerHandshakeError as exc:
            raise EngineError(exc.status, exc.message or "attach refused") from None
        except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionError) as exc:
            raise self._unreachable(exc) from None
        except TimeoutError:
            limit = f" within {timeout:.0f} s" if timeout else ""
            raise EngineError(504, f"no answer to {what}{limit}") from None

    def _unreachable(self, exc: BaseException) -> EngineUnreachable:
        os_error = getattr(exc, "os_error", None)
        reason = getattr(os_error, "strerror", None) or getattr(exc, "strerror", None) or str(exc)
        reason = reason or type(exc).__name__
        return EngineUnreachable(f"Cannot reach the Docker Engine at {self.host}: {reason}. {START_HINT}.", reason)

    async def client(self) -> aiodocker.Docker:
        """The aiodocker client of the running loop, its API version negotiated (once per client)."""
        loop = asyncio.get_running_loop()
        if self._docker is None or self._loop is not loop:
            # Our own connector: no cap on simultaneous connections (every console client and running container
            # may hold one), where aiodocker's default would make the 101st wait.
            parts = urlsplit(self._url)
            if parts.scheme == "unix":
                connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=parts.path, limit=0)
                url = "unix://localhost"
            else:
                connector, url = aiohttp.TCPConnector(limit=0), self._url
            self._docker = aiodocker.Docker(url=url, connector=connector,
                                            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
            self._connector = connector
            self._loop = loop
            self._negotiating = asyncio.Lock()
            self._ready = False
        if self._ready:
            return self._docker
        assert self._negotiating is not None
        async with self._negotiating:
            if not self._ready:
                await self._negotiate(self._docker)
        return self._docker

    async def _negotiate(self, docker: aiodocker.Docker) -> None:
        with self._errors("GET /version", 10):
            info = await asyncio.wait_for(docker.version(), 10)  # asks the engine's API version first
        server_api = parse_version(info.get("ApiVersion", "1.24"))
        if server_api < MIN_API_VERSION:
            raise EngineError(409, f"API version {info.get('ApiVersion')} of the engine at {self.host} is "
                              f"too old: version {'.'.join(map(str, MIN_API_VERSION))} or newer is needed")
        major, minor = min(server_api, MAX_API_VERSION)
        docker.api_version = f"v{major}.{minor}"
        self.server_version = info.get("Version")
        self.server_api_version = info.get("ApiVersion")
        self.api_version = f"{major}.{minor}"
        self._ready = True

    def _container(self, docker: aiodocker.Docker, ref: str) -> aiodocker.DockerContainer:
        return docker.containers.container(ref)

    # -- images --------------------------------------------------------------------------------------------------

    async def image_tags(self) -> list[str]:
        """Every repository tag of every local image (`<none>:<none>` left out), sorted."""
        docker = await self.client()
        with self._errors("GET /images/json"):
            images = await docker.images.list()
        return sorted({tag for image in images or [] for tag in (image.get("RepoTags") or [])
                       if tag and tag != "<none>:<none>"})

    # -- containers ----------------------------------------------------------------------------------------------

    async def create_container(self, spec: dict[str, Any], name: str) -> str:
        """Create a container (not started); its engine id."""
        docker = await self.client()
        with self._errors("POST /containers/create"):
            container = await docker.containers.create(spec, name=name)
        return container.id

    async def remove_container(self, ref: str) -> None:
        """Remove a container and its anonymous volumes, killing it if it runs; a missing one is fine."""
        docker = await self.client()
        try:
            with self._errors(f"DELETE /containers/{ref}"):
                await self._container(docker, ref).delete(force=True, v=True)
        except EngineError as exc:
            if exc.engine_status != 404:
                raise

    async def start_container(self, cid: str) -> None:
        docker = await self.client()
        with self._errors(f"POST /containers/{cid}/start"):
            await self._container(docker, cid).start()

    async def stop_container(self, cid: str, timeout: int) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; a container already stopped or gone is fine."""
        docker = await self.client()
        try:
            with self._errors(f"POST /containers/{cid}/stop"):
                await self._container(docker, cid).stop(t=timeout)
        except EngineError as exc:
            if exc.engine_status not in (304, 404):
                raise

    async def restart_container(self, cid: str, timeout: int) -> None:
        docker = await self.client()
        with self._errors(f"POST /containers/{cid}/restart"):
            await self._container(docker, cid).restart(t=timeout)

    async def pause_container(self, cid: str) -> None:
        docker = await self.client()
        with self._errors(f"POST /containers/{cid}/pause"):
            await self._container(docker, cid).pause()

    async def unpause_container(self, cid: str) -> None:
        docker = await self.client()
        with self._errors(f"POST /containers/{cid}/unpause"):
            await self._container(docker, cid).unpause()

    async def inspect_container(self, cid: str) -> dict[str, Any]:
        docker = await self.client()
        with self._errors(f"GET /containers/{cid}/json"):
            return await self._container(docker, cid).show()

    async def container_output(self, cid: str, lines: int = 20) -> str:
        """The last lines the container printed (empty when the engine cannot say)."""
        docker = await self.client()
        try:
            with self._errors(f"GET /containers/{cid}/logs"):
                output = await self._container(docker, cid).log(stdout=True, stderr=True, tail=lines)
        except Conflict:
            return ""
        return "".join(output)

    async def attach_websocket(self, cid: str) -> aiohttp.ClientWebSocketResponse:
        """The container's TTY (stdin, stdout, stderr) as a websocket of raw bytes."""
        docker = await self.client()
        with self._errors(f"GET /containers/{cid}/attach/ws"):
            return await self._container(docker, cid).websocket(stdin=True, stdout=True, stderr=True, stream=True,
                                                               logs=False)

    async def exec_stream(self, cid: str, command: Sequence[str], *, tty: bool, environment: Sequence[str] = ()
                          ) -> Stream:
        """Run `command` in the running container (`docker exec -i`, with `-t` when `tty`); its stdin/stdout as a
        stream the caller closes. Output of a TTY-less command comes demultiplexed (stdout and stderr)."""
        docker = await self.client()
        with self._errors(f"POST /containers/{cid}/exec"):
            execution = await self._container(docker, cid).exec(list(command), stdin=True, stdout=True, stderr=True,
                                                                tty=tty, environment=list(environment) or None)
            stream = execution.start(detach=False)
            await stream.__aenter__()  # the upgrade to a raw stream happens here: fail now rather than on first use
        if tty:
            with contextlib.suppress(Conflict), self._errors(f"POST /exec/{execution.id}/resize"):
                await execution.resize(h=24, w=80)
        return stream

    # -- events --------------------------------------------------------------------------------------------------

    async def clock(self) -> str:
        """The engine's current time as `seconds.nanoseconds` since the epoch (the form the events' `since` takes),
        to subscribe to events from a moment on the engine's own clock."""
        docker = await self.client()
        with self._errors("GET /info"):
            info = await docker.system.info()
        return unix_time(str(info.get("SystemTime", "")))

    async def events(self, filters: dict[str, list[str]], since: str) -> AsyncIterator[dict[str, Any]]:
        """The engine's events matching `filters` from `since` on (past ones first), until the stream ends."""
        docker = await self.client()
        subscriber = docker.events.subscribe(create_task=False)
        runner = asyncio.ensure_future(docker.events.run(filters=filters, since=since))
        try:
            while True:
                getting = asyncio.ensure_future(subscriber.get())
                await asyncio.wait({getting, runner}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    break
                event = getting.result()
                if event is None:
                    break
                yield event
            with self._errors("GET /events", None):
                await runner  # raises what ended the stream, if anything did
        finally:
            if not runner.done():
                runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    async def close(self) -> None:
        docker, self._docker = self._docker, None
        connector, self._connector = self._connector, None
        self._ready = False
        try:
            if docker is not None:
                await docker.close()
            if connector is not None:
                await connector.close()  # ours, so aiodocker leaves it open
        except RuntimeError:
            pass  # its loop is already gone (tests run one loop per test)
