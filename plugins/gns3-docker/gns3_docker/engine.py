"""A small asynchronous Docker Engine API client (aiohttp over the engine's unix socket or TCP).

The `docker` package is synchronous; speaking the HTTP API directly keeps the event loop free, lets one connection
follow the engine's events, and attaches to a container's TTY over a websocket.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from gns3core.errors import Conflict

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
MAX_API_VERSION = (1, 41)  # what this client was written against (Docker 20.10)
MIN_API_VERSION = (1, 24)  # pause, attach/ws, events filters and labels all exist from here on
REQUEST_TIMEOUT = 120.0

START_HINT = (
    "Start a Docker Engine (e.g. 'systemctl start docker', or 'dockerd --iptables=false --bridge=none' as root), "
    "or point the server at a running one with the DOCKER_HOST environment variable or "
    "'docker_host' in the [Docker] section of the server configuration"
)


class EngineUnreachable(Conflict):
    """409: nothing answers at the engine address; the message says how to get an engine."""


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


class DockerEngine:
    """One engine at `host` (`unix:///path`, `tcp://host:port` or `http://host:port`)."""

    def __init__(self, host: str) -> None:
        self.host = host
        parts = urlsplit(host)
        if parts.scheme == "unix":
            self._socket_path: str | None = parts.path
            self._base = "http://docker"
        elif parts.scheme in ("tcp", "http"):
            self._socket_path = None
            self._base = f"http://{parts.netloc}"
        else:
            raise EngineUnreachable(f"Docker host {host!r} is not supported: use unix:///path/to/docker.sock or "
                                    "tcp://host:port")
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._prefix: str | None = None
        self._negotiating: asyncio.Lock | None = None
        self.server_version: str | None = None
        self.api_version: str | None = None

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            if self._socket_path is not None:
                connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=self._socket_path, limit=0)
            else:
                connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(connector=connector)
            self._session_loop = loop
            self._prefix = None
            self._negotiating = asyncio.Lock()
        return self._session

    def _unreachable(self, exc: BaseException) -> EngineUnreachable:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return EngineUnreachable(f"Cannot reach the Docker Engine at {self.host}: {reason}. {START_HINT}.")

    async def _prefix_path(self) -> str:
        """`/v1.NN`, the highest API version both sides speak (asked once per session)."""
        self._get_session()
        if self._prefix is not None:
            return self._prefix
        assert self._negotiating is not None
        async with self._negotiating:
            if self._prefix is None:
                info = await self._request("GET", "/version")
                server_api = parse_version(info.get("ApiVersion", "1.24"))
                if server_api < MIN_API_VERSION:
                    raise EngineError(409, f"API version {info.get('ApiVersion')} of the engine at {self.host} is "
                                      f"too old: version {'.'.join(map(str, MIN_API_VERSION))} or newer is needed")
                major, minor = min(server_api, MAX_API_VERSION)
                self.server_version = info.get("Version")
                self.api_version = f"{major}.{minor}"
                self._prefix = f"/v{major}.{minor}"
        return self._prefix

    async def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                       data: bytes | None = None, timeout: float | None = REQUEST_TIMEOUT, raw: bool = False) -> Any:
        session = self._get_session()
        kwargs: dict[str, Any] = {"params": _clean(params)}
        if body is not None:
            kwargs["json"] = body
        elif data is not None:
            kwargs["data"] = data
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        try:
            async with session.request(method, self._base + path, timeout=client_timeout, **kwargs) as response:
                payload = await response.read()
                status = response.status
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, FileNotFoundError,
                ConnectionError) as exc:
            raise self._unreachable(exc) from None
        except TimeoutError:
            raise EngineError(504, f"no answer to {method} {path} within {timeout:.0f} s") from None
        if status >= 400:
            raise EngineError(status, _error_message(payload, status))
        if raw:
            return payload
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            return payload.decode(errors="replace")

    # -- the API -------------------------------------------------------------------------------------------------

    async def query(self, method: str, path: str, **kwargs: Any) -> Any:
        """An API call on the negotiated version; EngineError (409) for engine errors, EngineUnreachable (409)."""
        return await self._request(method, await self._prefix_path() + path, **kwargs)

    async def version(self) -> dict[str, Any]:
        return await self._request("GET", "/version", timeout=10)

    async def attach_websocket(self, cid: str) -> aiohttp.ClientWebSocketResponse:
        """The container's TTY (stdin, stdout, stderr) as a websocket of raw bytes."""
        session = self._get_session()
        url = self._base + await self._prefix_path() + f"/containers/{cid}/attach/ws"
        params = {"stream": "1", "stdin": "1", "stdout": "1", "stderr": "1", "logs": "0"}
        try:
            return await session.ws_connect(url, params=params, autoping=True, max_msg_size=0, heartbeat=None)
        except aiohttp.WSServerHandshakeError as exc:
            raise EngineError(exc.status, exc.message or "attach refused") from None
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, FileNotFoundError,
                ConnectionError) as exc:
            raise self._unreachable(exc) from None

    async def events(self, filters: dict[str, list[str]],
                     on_connected: Callable[[], None] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Follow the engine's event stream (one JSON object per event) until the connection ends;
        `on_connected` is called once the engine accepted the subscription."""
        session = self._get_session()
        url = self._base + await self._prefix_path() + "/events"
        try:
            async with session.get(url, params={"filters": json.dumps(filters)},
                                   timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
                if response.status >= 400:
                    raise EngineError(response.status, _error_message(await response.read(), response.status))
                if on_connected is not None:
                    on_connected()
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            yield json.loads(line)
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, FileNotFoundError,
                ConnectionError) as exc:
            raise self._unreachable(exc) from None

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            try:
                await session.close()
            except RuntimeError:
                pass  # its loop is already gone (tests run one loop per test)


def _clean(params: dict[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    result = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "1" if value else "0"
        result[key] = str(value)
    return result


def _error_message(payload: bytes, status: int) -> str:
    try:
        message = json.loads(payload).get("message")
    except (ValueError, AttributeError):
        message = payload.decode(errors="replace").strip()
    return message or f"HTTP status {status}"
