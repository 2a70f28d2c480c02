"""One Docker container as a GNS3 node: created on the engine with the node, wired with veth pairs when it runs."""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
from typing import TYPE_CHECKING, Any

from gns3_docker.console import ConsolePortBusy, TelnetConsole
from gns3_docker.engine import EngineError
from gns3_docker.links import AdapterVeth, host_interface_name
from gns3core.dataplane import EthernetEndpoint
from gns3core.emulator.links import LinkWiring
from gns3core.emulator.vm import Adapter, BaseVM
from gns3core.errors import Conflict, EmulatorError

if TYPE_CHECKING:
    from gns3_docker.manager import DockerManager

log = logging.getLogger(__name__)

LABEL_VM = "org.gns3.vm_id"
LABEL_PROJECT = "org.gns3.project_id"
LABEL_SERVER = "org.gns3.server"
CONSOLE_ATTEMPTS = 5


def hostname_of(name: str) -> str:
    """A valid hostname from a node name (letters, digits, dashes; at most 63 characters)."""
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-")[:63].strip("-")
    return cleaned or "gns3"


class DockerVM(BaseVM):
    """A container; `status` is started, stopped or suspended (paused)."""

    process_name = "Docker container"
    manager: DockerManager

    def __init__(self, manager: DockerManager, project: Any, vm_id: str, name: str, console: int | None = None,
                 *, image: str, startcmd: str | None = None, adapters: int = 0, adapter_type: str | None = None):
        super().__init__(manager, project, vm_id, name, console)
        self.image = image
        self.startcmd = startcmd
        self.adapter_type = adapter_type or "Ethernet"
        self.adapters = [Adapter() for _ in range(adapters)]
        self.cid: str | None = None
        self.pid: int | None = None
        self._veths: dict[int, AdapterVeth] = {}
        self.links = LinkWiring(self, lambda adapter, _port: EthernetEndpoint(host_interface_name(self.id, adapter)))
        self._lock = asyncio.Lock()
        self._expect_exit = False
        self._console = TelnetConsole(manager.engine, lambda: self.cid, self.server.console_host, self.console,
                                      name)

    @property
    def engine(self):
        return self.manager.engine

    def as_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "vm_id": self.id,
            "id": self.id,
            "project_id": self.project.id,
            "image": self.image,
            "startcmd": self.startcmd,
            "adapters": len(self.adapters),
            "adapter_type": self.adapter_type,
            "console": self.console,
            "status": self.status,
        }
        if self.cid is not None:
            data["cid"] = self.cid
        return data

    @property
    def running(self) -> bool:
        return self.status in ("started", "suspended")

    # -- the container on the engine ---------------------------------------------------------------------------

    def _container_spec(self) -> dict[str, Any]:
        section = self.manager.config
        cap_add = [c.strip().upper() for c in (section.get("cap_add") or "NET_ADMIN").split(",") if c.strip()]
        spec: dict[str, Any] = {
            "Image": self.image,
            "Hostname": hostname_of(self.name),
            "Tty": True,
            "OpenStdin": True,
            "StdinOnce": False,
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "NetworkDisabled": False,
            "Labels": {LABEL_VM: self.id, LABEL_PROJECT: self.project.id, LABEL_SERVER: self.manager.instance},
            "HostConfig": {"NetworkMode": "none", "CapAdd": cap_add, "Privileged": section.getbool("privileged")},
        }
        if self.startcmd:
            try:
                spec["Cmd"] = shlex.split(self.startcmd)
            except ValueError as exc:
                raise Conflict(f"Start command {self.startcmd!r} cannot be parsed: {exc}") from None
        return spec

    async def create_container(self) -> None:
        """Create the container (not started); 409 with the engine's reason when it refuses."""
        try:
            result = await self.engine.query("POST", "/containers/create", params={"name": f"gns3-{self.id}"},
                                             body=self._container_spec())
        except EngineError as exc:
            if exc.engine_status == 404:
                raise EngineError(404, f"image {self.image} is not on the engine at {self.engine.host}: "
                                  "pull, load or import it first (GET /v1/docker/images lists what is there)"
                                  ) from None
            if exc.engine_status == 409 and "already in use" in exc.engine_message:
                await self._remove_leftover()
                result = await self.engine.query("POST", "/containers/create", params={"name": f"gns3-{self.id}"},
                                                 body=self._container_spec())
            else:
                raise
        self.cid = result["Id"]

    async def _remove_leftover(self) -> None:
        """A container of this VM id left by a server that died: it is ours, remove it."""
        try:
            await self.engine.query("DELETE", f"/containers/gns3-{self.id}", params={"force": True, "v": True})
        except EngineError as exc:
            if exc.engine_status != 404:
                raise

    async def _remove_container(self) -> None:
        cid, self.cid = self.cid, None
        if cid is None:
            return
        try:
            await self.engine.query("DELETE", f"/containers/{cid}", params={"force": True, "v": True})
        except EngineError as exc:
            if exc.engine_status != 404:
                raise

    async def _inspect(self) -> dict[str, Any]:
        return await self.engine.query("GET", f"/containers/{self.cid}/json")

    async def _logs(self, lines: int = 20) -> str:
        try:
            raw = await self.engine.query("GET", f"/containers/{self.cid}/logs",
                                          params={"stdout": True, "stderr": True, "tail": lines}, raw=True)
        except Conflict:
            return ""
        return raw.decode(errors="replace")

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            if self.status == "suspended":
                await self._unpause()
                return
            if self.status == "started":
                return
            if self.cid is None:
                await self.create_container()
            await self.manager.watch_events()  # subscribed first: an immediate exit is not missed
            self._expect_exit = False
            await self.engine.query("POST", f"/containers/{self.cid}/start")
            await self._after_start_or_kill()
            self.set_started()

    async def _after_start_or_kill(self) -> None:
        """Wire the running container; if that fails, the container goes down again rather than half-wired."""
        try:
            await self._after_start()
        except BaseException:
            self._expect_exit = True
            await self._teardown()
            await self._kill()
            raise

    async def _after_start(self) -> None:
        state = (await self._inspect())["State"]
        if not state.get("Running") or not state.get("Pid"):
            output = await self._logs()
            raise EmulatorError(f"Docker container {self.name} exited at once with code {state.get('ExitCode')}"
                                f"{': ' + output.strip() if output.strip() else ''}")
        self.pid = int(state["Pid"])
        await self._wire()
        self._console.set_available(True)

    async def _wire(self) -> None:
        """eth<n> for every adapter, then bridges for the adapters that have a NIO."""
        veths = {n: AdapterVeth(self.id, n, self.pid) for n in range(len(self.adapters))}
        self._veths = veths
        await asyncio.gather(*(veth.create() for veth in veths.values()))
        await self.links.start()

    async def _teardown(self) -> None:
        """Links down (the veths vanish with the container's namespace anyway); console clients wait."""
        self._console.set_available(False)
        await self.links.stop()
        veths, self._veths = self._veths, {}
        await asyncio.gather(*(veth.destroy() for veth in veths.values()), return_exceptions=True)
        self.pid = None

    async def _kill(self) -> None:
        if self.cid is None:
            return
        try:
            await self.engine.query("POST", f"/containers/{self.cid}/stop", params={"t": self.manager.stop_timeout})
        except EngineError as exc:
            if exc.engine_status not in (304, 404):
                raise

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_locked()

    async def _stop_locked(self) -> None:
        was_running = self.running
        self._expect_exit = True
        await self._teardown()
        if self.status == "suspended":
            await self.engine.query("POST", f"/containers/{self.cid}/unpause")
        await self._kill()
        if was_running:
            self.set_stopped()
        else:
            self.status = "stopped"

    async def reload(self) -> None:
        """Restart the container; it gets a new network namespace, so the adapters are wired again."""
        async with self._lock:
            if not self.running:
                raise Conflict(f"Docker container {self.name} is not running")
            self._expect_exit = True
            await self._teardown()  # console clients stay connected and are attached again
            await self.engine.query("POST", f"/containers/{self.cid}/restart", params={"t": self.manager.stop_timeout})
            self._expect_exit = False
            self.status = "started"
            try:
                await self._after_start_or_kill()
            except BaseException:
                self.set_stopped()
                raise

    async def suspend(self) -> None:
        async with self._lock:
            if self.status == "suspended":
                return
            if self.status != "started":
                raise Conflict(f"Docker container {self.name} is not running")
            await self.engine.query("POST", f"/containers/{self.cid}/pause")
            self.links.set_suspended(True)
            self.status = "suspended"

    async def resume(self) -> None:
        async with self._lock:
            if self.status == "started":
                return
            if self.status != "suspended":
                raise Conflict(f"Docker container {self.name} is not suspended")
            await self._unpause()

    async def _unpause(self) -> None:
        await self.engine.query("POST", f"/containers/{self.cid}/unpause")
        self.links.set_suspended(False)
        self.status = "started"

    async def close(self) -> None:
        """Stop and remove the container, give back the console and UDP ports."""
        if self.closed:
            return
        try:
            async with self._lock:
                self._expect_exit = True
                was_running = self.running
                try:
                    await self._teardown()
                    await self._console.stop()
                    await self._remove_container()
                finally:
                    if was_running:
                        self.set_stopped()
                    self.status = "stopped"
        finally:
            await super().close()  # not running any more: only gives the ports back

    async def exited(self) -> None:
        """The engine reported that the container died: if nobody asked for it, report it and tidy up."""
        async with self._lock:
            if self._expect_exit or not self.running or self.cid is None:
                return
            try:
                state = (await self._inspect())["State"]
            except Conflict:
                state = {"Running": False, "ExitCode": -1}
            if state.get("Running"):
                return  # an old event: the container runs again
            self._expect_exit = True
            await self._teardown()
            self.process_exited(int(state.get("ExitCode", -1)), await self._logs())

    # -- updates -----------------------------------------------------------------------------------------------

    async def open_console(self) -> None:
        """Listen on the console port from now on (bound for the node's whole life, so nothing else takes it).

        Another program may have taken the allocated port since it was found free: then another free one is used.
        """
        for _ in range(CONSOLE_ATTEMPTS - 1):
            try:
                await self._console.start()
                return
            except ConsolePortBusy as exc:
                busy = self.console
                self.change_console(None)
                self._console.port = self.console
                self.project.warn(f"{exc}; console moved to port {self.console}")
                log.warning("console port %s of %s was taken, using %s", busy, self.name, self.console)
        await self._console.start()

    async def update(self, changes: dict[str, Any]) -> None:
        async with self._lock:
            recreate = any(key in changes and changes[key] != getattr(self, key) for key in ("image", "startcmd"))
            if recreate and self.running:
                raise Conflict(f"Stop Docker container {self.name} before changing its image or start command")
            changes = dict(changes)
            if "console" in changes:
                await self._move_console(changes.pop("console"))
            await super().update(changes)
            if recreate and self.cid is not None:
                await self._remove_container()
                await self.create_container()

    async def update_field(self, key: str, value: Any) -> None:
        if key in ("image", "startcmd", "adapter_type"):
            setattr(self, key, value)
        elif key == "adapters" and value != len(self.adapters):
            await self._resize_adapters(value)

    async def _move_console(self, requested: int | None) -> None:
        """A new console port: connected clients are dropped, the new port is listened on at once."""
        if requested == self.console:
            return
        await self._console.stop()
        try:
            self.change_console(requested)
        finally:
            self._console.port = self.console
            await self._console.start()

    @BaseVM.name.setter
    def name(self, value: str) -> None:
        self._name = value
        if hasattr(self, "_console"):
            self._console.name = value

    async def _resize_adapters(self, count: int) -> None:
        """Adapters can come and go while the container runs: eth<n> is created or deleted with them."""
        for number in range(count, len(self.adapters)):
            for port in list(self.adapters[number].ports):
                await self.links.nio_removed(number, port)
            for nio in self.adapters[number].ports.values():
                self.release_nio(nio)
            veth = self._veths.pop(number, None)
            if veth is not None:
                await veth.destroy()
        self.adapters = self.adapters[:count] + [Adapter() for _ in range(len(self.adapters), count)]
        if self.status in ("started", "suspended") and self.pid is not None:
            for number in range(count):
                if number not in self._veths:
                    veth = AdapterVeth(self.id, number, self.pid)
                    await veth.create()
                    self._veths[number] = veth

    # -- NIOs --------------------------------------------------------------------------------------------------

    def adapter(self, adapter_number: int) -> Adapter:
        if adapter_number >= len(self.adapters) or adapter_number < 0:
            raise Conflict(f"Adapter {adapter_number} doesn't exist on Docker container {self.name} "
                           f"(it has {len(self.adapters)}; set 'adapters' to add more)")
        return self.adapters[adapter_number]

    async def add_nio(self, adapter_number: int, port_number: int, nio: Any) -> None:
        async with self._lock:  # not while the container is being started or stopped
            await super().add_nio(adapter_number, port_number, nio)

    async def remove_nio(self, adapter_number: int, port_number: int) -> Any:
        async with self._lock:
            return await super().remove_nio(adapter_number, port_number)
