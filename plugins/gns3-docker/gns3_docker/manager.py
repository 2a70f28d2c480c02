"""The Docker kind: one engine connection per server, container creation, image listing, and the watch on the
engine's events that notices containers exiting on their own."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import socket
import uuid
from typing import Any
from urllib.parse import urlsplit

from gns3_docker.engine import DockerEngine, docker_host_of
from gns3_docker.vm import LABEL_SERVER, DockerVM
from gns3core.config import Config, Section
from gns3core.emulator.manager import ProgramStatus, VMManager
from gns3core.errors import Conflict
from gns3core.projects import Project, check_uuid

log = logging.getLogger(__name__)

EVENTS_RETRY = 1.0
SUBSCRIBE_TIMEOUT = 10.0


class DockerManager(VMManager):
    vm_class = DockerVM
    supported_nios = frozenset({"nio_udp"})
    id_field = "id"
    noun = "Docker container"

    def __init__(self, server: Any, kind: str) -> None:
        super().__init__(server, kind)
        self.instance = str(uuid.uuid4())  # label on our containers: the event filter picks only them
        self._engine: DockerEngine | None = None
        self._events_task: asyncio.Task | None = None
        self._subscribed: asyncio.Event | None = None
        self._pending: set[asyncio.Task] = set()

    # -- configuration -------------------------------------------------------------------------------------------

    @property
    def config(self) -> Section:
        return self.server.config.section("Docker")

    @property
    def engine(self) -> DockerEngine:
        host = docker_host_of(self.config.get("docker_host"))
        if self._engine is None or self._engine.host != host:
            self._engine = DockerEngine(host)
        return self._engine

    @property
    def stop_timeout(self) -> int:
        """Seconds the engine waits after SIGTERM before SIGKILL (0: at once, as the reference killed)."""
        return max(0, self.config.getint("stop_timeout", 0))

    @classmethod
    def probe(cls, config: Config) -> ProgramStatus:
        """Whether an engine answers at the configured address, and its version (blocking, 3 s at most)."""
        host = docker_host_of(config.section("Docker").get("docker_host"))
        try:
            info = _version_blocking(host)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return ProgramStatus(found=False, path=host,
                                 message=f"no Docker Engine answers at {host}: {getattr(exc, 'strerror', None) or exc}")
        return ProgramStatus(found=True, path=host, version=f"{info.get('Version')} (API {info.get('ApiVersion')})",
                             message="Docker Engine answers")

    # -- VMs -----------------------------------------------------------------------------------------------------

    async def create_vm(self, project: Project, body: dict[str, Any]) -> DockerVM:
        """`id` or a UUID `vm_id` names the container VM (an existing one is returned); else a new id is made."""
        body = dict(body)
        legacy = body.pop("vm_id", None)
        if "id" not in body and isinstance(legacy, str):
            body["id"] = legacy
        return await super().create_vm(project, body)

    async def build_vm(self, project: Project, vm_id: str, body: dict[str, Any]) -> DockerVM:
        console = body.get("console")
        vm = DockerVM(self, project, vm_id, body["name"], console if isinstance(console, int) else None,
                      image=body["imagename"], startcmd=body.get("startcmd"), adapters=body.get("adapters", 0),
                      adapter_type=body.get("adapter_type"))
        try:
            await vm.create_container()
            await vm.open_console()
        except BaseException:
            await vm.close()
            raise
        return vm

    def get_vm(self, vm_id: str, project_id: str | None = None) -> DockerVM:
        check_uuid(vm_id, self.noun)  # the core checks only vm_id/device_id path parameters
        return super().get_vm(vm_id, project_id)

    async def list_images(self) -> list[dict[str, str]]:
        images = await self.engine.query("GET", "/images/json")
        names = sorted({tag for image in images or [] for tag in (image.get("RepoTags") or [])
                        if tag and tag != "<none>:<none>"})
        return [{"imagename": name} for name in names]

    # -- exits ---------------------------------------------------------------------------------------------------

    async def watch_events(self) -> None:
        """Make sure the engine's `die` events of our containers are followed (subscribed before we return)."""
        if self._events_task is None or self._events_task.done():
            self._subscribed = asyncio.Event()
            self._events_task = asyncio.create_task(self._follow_events(), name="docker-events")
        assert self._subscribed is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_TIMEOUT)

    async def _follow_events(self) -> None:
        filters = {"type": ["container"], "event": ["die"], "label": [f"{LABEL_SERVER}={self.instance}"]}
        first = True
        while any(vm.running for vm in self.vms.values()) or first:
            try:
                async for event in self.engine.events(filters, on_connected=self._connected):
                    vm = self._vm_of_container(event.get("id") or event.get("Actor", {}).get("ID"))
                    if vm is not None:
                        self._spawn(vm.exited())
            except Conflict as exc:
                log.warning("Following the Docker Engine's events failed: %s", exc)
            except Exception:
                log.exception("Following the Docker Engine's events failed")
            first = False
            if self._subscribed is not None:
                self._subscribed.set()  # never keep a start waiting for a stream that is down
            await asyncio.sleep(EVENTS_RETRY)
            for vm in list(self.vms.values()):  # anything that died while we were not listening
                if isinstance(vm, DockerVM) and vm.running:
                    self._spawn(vm.exited())

    def _connected(self) -> None:
        if self._subscribed is not None:
            self._subscribed.set()

    def _vm_of_container(self, cid: str | None) -> DockerVM | None:
        for vm in self.vms.values():
            if isinstance(vm, DockerVM) and vm.cid is not None and vm.cid == cid:
                return vm
        return None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- shutdown ------------------------------------------------------------------------------------------------

    async def unload(self) -> None:
        await super().unload()
        task, self._events_task = self._events_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._engine is not None:
            await self._engine.close()


def _version_blocking(host: str) -> dict[str, Any]:
    parts = urlsplit(host)
    if parts.scheme == "unix":
        conn: http.client.HTTPConnection = _UnixConnection(parts.path)
    elif parts.scheme in ("tcp", "http"):
        conn = http.client.HTTPConnection(parts.hostname or "localhost", parts.port or 2375, timeout=3)
    else:
        raise ValueError(f"unsupported Docker host {host!r}")
    try:
        conn.request("GET", "/version")
        response = conn.getresponse()
        if response.status != 200:
            raise ValueError(f"HTTP status {response.status}")
        return json.loads(response.read())
    finally:
        conn.close()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=3)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock
