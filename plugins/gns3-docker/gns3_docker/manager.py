"""The Docker kind: one engine connection per server, container creation from either API family's body, image
listing, X displays for VNC consoles, and the watch on the engine's events that notices containers exiting on their
own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

from gns3_docker.busybox_image import is_static_program
from gns3_docker.engine import DockerEngine, EngineUnreachable, docker_host_of
from gns3_docker.settings import DEFAULT_HTTP_PATH, DEFAULT_HTTP_PORT, DEFAULT_RESOLUTION, release_names
from gns3_docker.vm import LABEL_SERVER, DockerVM
from gns3_docker.vnc import pick_display
from gns3core.config import Config, Section
from gns3core.emulator.manager import ProgramStatus, VMManager
from gns3core.errors import Conflict
from gns3core.projects import Project, check_uuid

log = logging.getLogger(__name__)

EVENTS_RETRY = 1.0
def find_helper_busybox(configured: str | None) -> str | None:
    """`[Docker] busybox_path`, else busybox on PATH, when it is statically linked (Debian: busybox-static)."""
    path = shutil.which(configured or "busybox")
    if path is None:
        return None
    real = str(Path(path).resolve())
    return real if is_static_program(real) else None


class DockerManager(VMManager):
    vm_class = DockerVM
    supported_nios = frozenset({"nio_udp", "nio_tap"})
    id_field = "id"
    noun = "Docker container"

    def __init__(self, server: Any, kind: str) -> None:
        super().__init__(server, kind)
        self.instance = str(uuid.uuid4())  # label on our containers: the event filter picks only them
        self._engine: DockerEngine | None = None
        self._events_task: asyncio.Task | None = None
        self._watch_lock: asyncio.Lock | None = None
        self._pending: set[asyncio.Task] = set()
        self._displays: set[int] = set()
        self._helper_checked = False
        self.helper_busybox: str | None = None

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
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own loop, whether or not one runs here
            try:
                version, api = pool.submit(asyncio.run, _engine_version(host)).result()
            except EngineUnreachable as exc:
                return ProgramStatus(found=False, path=host, message=f"no Docker Engine answers at {host}: "
                                                                     f"{exc.reason}")
            except (Conflict, TimeoutError) as exc:
                reason = getattr(exc, "message", None) or "no answer within 3 s"
                return ProgramStatus(found=False, path=host, message=f"no Docker Engine answers at {host}: {reason}")
        return ProgramStatus(found=True, path=host, version=f"{version} (API {api})", message="Docker Engine answers")

    # -- VMs -----------------------------------------------------------------------------------------------------

    async def create_vm(self, project: Project, body: dict[str, Any]) -> DockerVM:
        """`id` or a UUID `vm_id` names the container VM (an existing one is returned); else a new id is made."""
        body = dict(body)
        legacy = body.pop("vm_id", None)
        if "id" not in body and isinstance(legacy, str):
            body["id"] = legacy
        return await super().create_vm(project, body)

    async def build_vm(self, project: Project, vm_id: str, body: dict[str, Any]) -> DockerVM:
        """A container from a validated body of either API family (`adapters` defaulted by the route)."""
        body = release_names(body)
        await self._check_helper()
        console = body.get("console")
        vm = DockerVM(self, project, vm_id, body["name"], image=body["image"],
                      start_command=body.get("start_command"), environment=body.get("environment"),
                      adapters=body.get("adapters") or 0, adapter_type=body.get("adapter_type"),
                      console=console if isinstance(console, int) else None,  # a string is the seed's, ignored
                      console_type=body.get("console_type") or "telnet",
                      console_resolution=body.get("console_resolution") or DEFAULT_RESOLUTION,
                      console_http_port=body.get("console_http_port") or DEFAULT_HTTP_PORT,
                      console_http_path=body.get("console_http_path") or DEFAULT_HTTP_PATH,
                      aux=body.get("aux"))
        try:
            await vm.open_consoles()
            await vm.create_container()
        except BaseException:
            await vm.close()
            raise
        return vm

    async def _check_helper(self) -> None:
        if not self._helper_checked:
            self.helper_busybox = await asyncio.to_thread(find_helper_busybox, self.config.get("busybox_path"))
            self._helper_checked = True

    def get_vm(self, vm_id: str, project_id: str | None = None) -> DockerVM:
        check_uuid(vm_id, self.noun)  # the core checks only vm_id/device_id path parameters
        return super().get_vm(vm_id, project_id)

    async def list_images(self) -> list[dict[str, str]]:
        """Both API families' keys in every item: `image` (released 1.5.x) and `imagename` (seed)."""
        return [{"image": tag, "imagename": tag} for tag in await self.engine.image_tags()]

    # -- X displays of VNC consoles ------------------------------------------------------------------------------

    def take_display(self) -> int:
        number = pick_display(self._displays)
        self._displays.add(number)
        return number

    def give_back_display(self, number: int) -> None:
        self._displays.discard(number)

    # -- exits ---------------------------------------------------------------------------------------------------

    async def watch_events(self) -> None:
        """Make sure the engine's `die` events of our containers are followed from this moment on. The subscription
        starts at the engine's current time, so an event that happens before the stream is connected is still
        delivered."""
        if self._watch_lock is None:
            self._watch_lock = asyncio.Lock()
        async with self._watch_lock:
            if self._events_task is None or self._events_task.done():
                since = await self.engine.clock()
                self._events_task = asyncio.create_task(self._follow_events(since), name="docker-events")

    async def _follow_events(self, since: str) -> None:
        filters = {"type": ["container"], "event": ["die"], "label": [f"{LABEL_SERVER}={self.instance}"]}
        while True:
            try:
                async for event in self.engine.events(filters, since):
                    nanoseconds = event.get("timeNano")
                    if isinstance(nanoseconds, int):
                        since = f"{nanoseconds // 10**9}.{nanoseconds % 10**9:09d}"
                    vm = self._vm_of_container(event.get("id") or event.get("Actor", {}).get("ID"))
                    if vm is not None:
                        self._spawn(vm.exited())
            except Conflict as exc:
                log.warning("Following the Docker Engine's events failed: %s", exc)
            except Exception:
                log.exception("Following the Docker Engine's events failed")
            if not any(vm.running for vm in self.vms.values()):
                return  # the next start subscribes again
            await asyncio.sleep(EVENTS_RETRY)
            for vm in list(self.vms.values()):  # the engine may have been restarted: anything not running is gone
                if isinstance(vm, DockerVM) and vm.running:
                    self._spawn(vm.exited())

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


async def _engine_version(host: str) -> tuple[str | None, str | None]:
    engine = DockerEngine(host)
    try:
        await asyncio.wait_for(engine.client(), 3)
        return engine.server_version, engine.server_api_version
    finally:
        await engine.close()
