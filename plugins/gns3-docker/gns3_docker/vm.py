"""One Docker container as a GNS3 node: created on the engine with the node, wired with veth pairs when it runs,
reached through its consoles."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gns3_docker.console import ConsolePortBusy, ContainerListener, TelnetConsole, attach_opener, exec_opener
from gns3_docker.engine import EngineError
from gns3_docker.http_console import HTTPConsole
from gns3_docker.links import AdapterVeth, host_interface_name
from gns3_docker.settings import (
    DEFAULT_HTTP_PATH,
    DEFAULT_HTTP_PORT,
    DEFAULT_RESOLUTION,
    check_resolution,
    environment_lines,
    hostname_of,
    normalise_command,
    normalise_image,
    release_names,
    split_command,
)
from gns3_docker.vnc import VNCDisplay, vnc_programs
from gns3core.dataplane import EthernetEndpoint
from gns3core.emulator.links import LinkWiring
from gns3core.emulator.vm import Adapter, BaseVM
from gns3core.errors import Conflict, EmulatorError
from gns3core.ports import PortRange

if TYPE_CHECKING:
    from gns3_docker.manager import DockerManager

log = logging.getLogger(__name__)

LABEL_VM = "org.gns3.vm_id"
LABEL_PROJECT = "org.gns3.project_id"
LABEL_SERVER = "org.gns3.server"
CONSOLE_ATTEMPTS = 5
VNC_PORTS = PortRange(5900, 6000)
HELPER_BUSYBOX = "/gns3/bin/busybox"  # the server's static busybox, mounted read-only when one is found
DEFAULT_COMMAND = ["/bin/sh"]  # for images that have neither a command nor an entrypoint

__all__ = ["DockerVM", "LABEL_PROJECT", "LABEL_SERVER", "LABEL_VM", "hostname_of"]


class DockerVM(BaseVM):
    """A container; `status` is started, stopped or suspended (paused)."""

    process_name = "Docker container"
    allocate_console = False  # the range depends on the console type (VNC: 5900-6000), see __init__
    manager: DockerManager

    def __init__(self, manager: DockerManager, project: Any, vm_id: str, name: str, *, image: str,
                 start_command: str | None = None, environment: str | None = None, adapters: int = 0,
                 adapter_type: str | None = None, console: int | None = None, console_type: str = "telnet",
                 console_resolution: str = DEFAULT_RESOLUTION, console_http_port: int = DEFAULT_HTTP_PORT,
                 console_http_path: str = DEFAULT_HTTP_PATH, aux: int | None = None) -> None:
        super().__init__(manager, project, vm_id, name)
        self.image = normalise_image(image)
        self.start_command = normalise_command(start_command)
        self.environment = environment
        self.adapter_type = adapter_type or "Ethernet"
        self.adapters = [Adapter() for _ in range(adapters)]
        self.console_type = console_type
        self.console_resolution = check_resolution(console_resolution)
        self.console_http_port = console_http_port
        self.console_http_path = console_http_path
        if console_type == "vnc":
            vnc_programs()  # 409 before anything is reserved
        self.console = self._reserve_console(console, self._console_range())
        try:
            self.aux: int | None = self._reserve_console(aux)
        except BaseException:
            self.server.ports.release_tcp_port(self.console, self.project.id)
            raise
        self.cid: str | None = None
        self.pid: int | None = None
        self._veths: dict[int, AdapterVeth] = {}
        self.links = LinkWiring(self, lambda adapter, _port: EthernetEndpoint(host_interface_name(self.id, adapter)))
        self._lock = asyncio.Lock()
        self._expect_exit = False
        self._console: ContainerListener | None = None
        self._aux = TelnetConsole(exec_opener(self.engine, lambda: self.cid, self._aux_command, tty=True,
                                              environment=["TERM=vt100"]),
                                  self.server.console_host, self.aux, name, what="aux console", greeting=False)
        self._vnc: VNCDisplay | None = None

    @property
    def engine(self):
        return self.manager.engine

    @property
    def container_directory(self) -> Path:
        """`project-files/docker/<vm_id>` (not created by asking)."""
        return self.project.files_dir / self.module_name / self.id

    def as_json(self) -> dict[str, Any]:
        """The union of both API families' container objects (api-1.5-release §8.5)."""
        data = {
            "name": self.name,
            "vm_id": self.id,
            "id": self.id,
            "project_id": self.project.id,
            "image": self.image,
            "start_command": self.start_command,
            "startcmd": self.start_command,
            "environment": self.environment,
            "adapters": len(self.adapters),
            "adapter_type": self.adapter_type,
            "console": self.console,
            "console_type": self.console_type,
            "console_resolution": self.console_resolution,
            "console_http_port": self.console_http_port,
            "console_http_path": self.console_http_path,
            "aux": self.aux,
            "vm_directory": str(self.container_directory),
            "status": self.status,
        }
        if self.cid is not None:
            data["container_id"] = data["cid"] = self.cid
        return data

    @property
    def running(self) -> bool:
        return self.status in ("started", "suspended")

    def _console_range(self) -> PortRange | None:
        return VNC_PORTS if self.console_type == "vnc" else None

    @BaseVM.name.setter
    def name(self, value: str) -> None:
        self._name = value
        for listener in (getattr(self, "_console", None), getattr(self, "_aux", None)):
            if listener is not None:
                listener.name = value

    # -- helpers inside the container ----------------------------------------------------------------------------

    def _busybox(self) -> str | None:
        """The path of the server's busybox inside the container, when one is mounted."""
        return HELPER_BUSYBOX if self.manager.helper_busybox is not None else None

    def _aux_command(self) -> list[str]:
        busybox = self._busybox()
        return [busybox, "sh"] if busybox else ["sh"]

    def _http_command(self) -> list[str]:
        busybox = self._busybox()
        netcat = [busybox, "nc"] if busybox else ["nc"]
        return [*netcat, "127.0.0.1", str(self.console_http_port)]

    # -- the container on the engine ---------------------------------------------------------------------------

    async def _container_spec(self, command: list[str] | None = None) -> dict[str, Any]:
        section = self.manager.config
        cap_add = [c.strip().upper() for c in (section.get("cap_add") or "NET_ADMIN").split(",") if c.strip()]
        env = ["container=docker", f"GNS3_MAX_ETHERNET=eth{max(0, len(self.adapters) - 1)}",
               *environment_lines(self.environment)]
        binds = []
        if self.manager.helper_busybox is not None:
            binds.append(f"{self.manager.helper_busybox}:{HELPER_BUSYBOX}:ro")
        if self._vnc is not None:
            env += [f"DISPLAY=:{self._vnc.number}", "QT_GRAPHICSSYSTEM=native"]
            binds.append(f"{self._vnc.socket_path}:{self._vnc.socket_path}")
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
            "Env": env,
            "Labels": {LABEL_VM: self.id, LABEL_PROJECT: self.project.id, LABEL_SERVER: self.manager.instance},
            "HostConfig": {"NetworkMode": "none", "CapAdd": cap_add, "Privileged": section.getbool("privileged"),
                           "Binds": binds},
        }
        if command is not None:
            spec["Cmd"] = command
        elif self.start_command:
            spec["Cmd"] = await asyncio.to_thread(split_command, self.start_command)
        return spec

    async def create_container(self) -> None:
        """Create the container (not started); 409 with the engine's reason when it refuses."""
        name = f"gns3-{self.id}"
        try:
            self.cid = await self.engine.create_container(await self._container_spec(), name)
        except EngineError as exc:
            if exc.engine_status == 404:
                raise EngineError(404, f"image {self.image} is not on the engine at {self.engine.host}: "
                                  "pull, load or import it first (GET /v1/docker/images lists what is there)"
                                  ) from None
            if exc.engine_status == 409 and "already in use" in exc.engine_message:
                await self.engine.remove_container(name)  # left by a server that died: the name embeds our id
                self.cid = await self.engine.create_container(await self._container_spec(), name)
            elif exc.engine_status == 400 and "no command specified" in exc.engine_message.lower():
                self.cid = await self.engine.create_container(await self._container_spec(DEFAULT_COMMAND), name)
            else:
                raise

    async def _remove_container(self) -> None:
        cid, self.cid = self.cid, None
        if cid is not None:
            await self.engine.remove_container(cid)

    async def _inspect(self) -> dict[str, Any]:
        return await self.engine.inspect_container(self.cid)

    async def _logs(self, lines: int = 20) -> str:
        return await self.engine.container_output(self.cid, lines) if self.cid else ""

    # -- consoles ------------------------------------------------------------------------------------------------

    def _make_console(self) -> ContainerListener | None:
        host = self.server.console_host
        if self.console_type == "telnet":
            return TelnetConsole(attach_opener(self.engine, lambda: self.cid), host, self.console, self.name)
        if self.console_type in ("http", "https"):
            return HTTPConsole(exec_opener(self.engine, lambda: self.cid, self._http_command, tty=False), host,
                               self.console, self.name, lambda: self.console_http_port)
        return None  # vnc: x11vnc holds the port

    def _listeners(self) -> list[ContainerListener]:
        return [listener for listener in (self._console, self._aux) if listener is not None]

    def _set_available(self, running: bool) -> None:
        for listener in self._listeners():
            listener.set_available(running)

    async def open_consoles(self) -> None:
        """Listen on the console and aux ports from now on (VNC: start the display and its VNC server)."""
        if self.console_type == "vnc":
            await self._start_vnc()
        else:
            self._console = self._make_console()
            await self._listen(self._console, "console")
        await self._listen(self._aux, "aux")
        self._set_available(self.running)

    async def _listen(self, listener: ContainerListener, attribute: str) -> None:
        """Another program may have taken the allocated port since it was found free: then another free one."""
        for _ in range(CONSOLE_ATTEMPTS - 1):
            try:
                await listener.start()
                return
            except ConsolePortBusy as exc:
                busy = getattr(self, attribute)
                self.server.ports.release_tcp_port(busy, self.project.id)
                setattr(self, attribute, self._reserve_console(None))
                listener.port = getattr(self, attribute)
                self.project.warn(f"{exc}; {listener.what} moved to port {listener.port}")
                log.warning("%s port %s of %s was taken, using %s", listener.what, busy, self.name, listener.port)
        await listener.start()

    async def _start_vnc(self) -> None:
        number = self.manager.take_display()
        display = VNCDisplay(number, self.console_resolution, self.server.console_host, self.console,
                             self.container_directory / "vnc")
        try:
            await display.start()
        except BaseException:
            self.manager.give_back_display(number)
            raise
        self._vnc = display

    async def _stop_vnc(self) -> None:
        display, self._vnc = self._vnc, None
        if display is not None:
            await display.stop()
            self.manager.give_back_display(display.number)

    async def _close_console(self) -> None:
        console, self._console = self._console, None
        if console is not None:
            await console.stop()
        await self._stop_vnc()

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            await self._start_locked()

    async def _start_locked(self) -> None:
        if self.status == "suspended":
            await self._unpause()
            return
        if self.status == "started":
            return
        if self.cid is None:
            await self.create_container()
        await self.manager.watch_events()  # from now on, on the engine's clock: an immediate exit is not missed
        self._expect_exit = False
        await self.engine.start_container(self.cid)
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
        self._set_available(True)

    async def _wire(self) -> None:
        """eth<n> for every adapter, then bridges for the adapters that have a NIO."""
        veths = {n: AdapterVeth(self.id, n, self.pid) for n in range(len(self.adapters))}
        self._veths = veths
        await asyncio.gather(*(veth.create() for veth in veths.values()))
        await self.links.start()

    async def _teardown(self) -> None:
        """Links down (the veths vanish with the container's namespace anyway); console clients wait."""
        self._set_available(False)
        await self.links.stop()
        veths, self._veths = self._veths, {}
        await asyncio.gather(*(veth.destroy() for veth in veths.values()), return_exceptions=True)
        self.pid = None

    async def _kill(self) -> None:
        if self.cid is not None:
            await self.engine.stop_container(self.cid, self.manager.stop_timeout)

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_locked()

    async def _stop_locked(self) -> None:
        was_running = self.running
        self._expect_exit = True
        await self._teardown()
        if self.status == "suspended":
            await self.engine.unpause_container(self.cid)
        await self._kill()
        if was_running:
            self.set_stopped()
        else:
            self.status = "stopped"

    async def reload(self) -> None:
        """Restart the container (a new network namespace, so the adapters are wired again); a stopped container
        is started, as the released 1.5.x server's engine restart did."""
        async with self._lock:
            if not self.running:
                await self._start_locked()
                return
            self._expect_exit = True
            await self._teardown()  # console clients stay connected and are attached again
            await self.engine.restart_container(self.cid, self.manager.stop_timeout)
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
            await self.engine.pause_container(self.cid)
            self.links.set_suspended(True)
            self.status = "suspended"
            self.project.emit("vm.paused", self.as_json())

    async def resume(self) -> None:
        async with self._lock:
            if self.status == "started":
                return
            if self.status != "suspended":
                raise Conflict(f"Docker container {self.name} is not suspended")
            await self._unpause()

    async def _unpause(self) -> None:
        await self.engine.unpause_container(self.cid)
        self.links.set_suspended(False)
        self.set_started()

    async def close(self) -> None:
        """Stop and remove the container, close the consoles, give back the console, aux and UDP ports."""
        if self.closed:
            return
        try:
            async with self._lock:
                self._expect_exit = True
                was_running = self.running
                try:
                    await self._teardown()
                    await asyncio.gather(*(listener.stop() for listener in self._listeners()))
                    await self._stop_vnc()
                    await self._remove_container()
                finally:
                    if was_running:
                        self.set_stopped()
                    self.status = "stopped"
        finally:
            self.server.ports.release_tcp_port(self.aux, self.project.id)
            await super().close()  # not running any more: only gives the other ports back

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

    # -- updates -------------------------------------------------------------------------------------------------

    async def update(self, changes: dict[str, Any]) -> None:
        """Apply a PUT. What the container itself is made from (image, command, environment, host name, console
        type) recreates it, as the released 1.5.x server does: stopped if it runs, removed, created anew (a new
        container id) and started again if it ran. Ports, adapters and the http console's target change in place."""
        async with self._lock:
            changes = release_names(changes)
            await self._check_changes(changes)
            recreate = False
            if "console_type" in changes and changes["console_type"] not in (None, self.console_type):
                await self._change_console_type(changes["console_type"], changes.get("console"))
                recreate = True
            elif "console" in changes:
                recreate |= await self._move_console(changes["console"])
            if "aux" in changes and changes["aux"] != self.aux:
                await self._move_aux(changes["aux"])
            for key, value in changes.items():
                if key == "name":
                    if value is not None and value != self.name:
                        recreate |= hostname_of(value) != hostname_of(self.name)
                        self.name = value
                elif key == "image" and value is not None:
                    value = normalise_image(value)
                    recreate |= value != self.image
                    self.image = value
                elif key == "start_command":
                    value = normalise_command(value)
                    recreate |= value != self.start_command
                    self.start_command = value
                elif key == "environment":
                    recreate |= (value or None) != (self.environment or None)
                    self.environment = value
                elif key == "console_resolution" and value is not None:
                    recreate |= value != self.console_resolution and self.console_type == "vnc"
                    self.console_resolution = check_resolution(value)
                elif key == "console_http_port" and value is not None:
                    self.console_http_port = value
                elif key == "console_http_path" and value is not None:
                    self.console_http_path = value
                elif key == "adapter_type" and value is not None:
                    self.adapter_type = value
                elif key == "adapters" and value is not None and value != len(self.adapters):
                    await self._resize_adapters(value)
            if recreate and (self.cid is not None or self.console_type == "vnc"):
                await self._recreate()

    @staticmethod
    async def _check_changes(changes: dict[str, Any]) -> None:
        """400/409 for values that cannot work, before anything changes."""
        if changes.get("console_resolution") is not None:
            check_resolution(changes["console_resolution"])
        command = normalise_command(changes.get("start_command"))
        if command is not None:
            await asyncio.to_thread(split_command, command)
        if changes.get("console_type") == "vnc":
            vnc_programs()

    async def _recreate(self) -> None:
        was_running = self.running
        if was_running:
            await self._stop_locked()
        if self.console_type == "vnc":
            await self._stop_vnc()
        await self._remove_container()
        if self.console_type == "vnc":
            await self._start_vnc()
        await self.create_container()
        if was_running:
            await self._start_locked()

    async def _move_console(self, requested: int | None) -> bool:
        """A new console port: connected clients are dropped, the new port is listened on at once. True when the
        container must be recreated for it (VNC: a new display server, whose socket the container mounts)."""
        if requested == self.console:
            return False
        if self.console_type == "vnc":
            self.change_console(requested)
            return True
        if self._console is not None:
            await self._console.stop()
        try:
            self.change_console(requested)
        finally:
            self._console = self._make_console()
            await self._listen(self._console, "console")
            self._set_available(self.running)
        return False

    def change_console(self, requested: int | None) -> None:
        if requested == self.console:
            return
        self.server.ports.release_tcp_port(self.console, self.project.id)
        self.console = self._reserve_console(requested, self._console_range())

    async def _change_console_type(self, console_type: str, requested: int | None) -> None:
        """Another kind of console: the port is allocated again (VNC ports come from 5900-6000)."""
        if console_type == "vnc":
            vnc_programs()
        await self._close_console()
        self.server.ports.release_tcp_port(self.console, self.project.id)
        self.console_type = console_type
        self.console = self._reserve_console(requested, self._console_range())
        if console_type != "vnc":  # the VNC display starts with the new container
            self._console = self._make_console()
            await self._listen(self._console, "console")
            self._set_available(self.running)

    async def _move_aux(self, requested: int | None) -> None:
        await self._aux.stop()
        self.server.ports.release_tcp_port(self.aux, self.project.id)
        self.aux = self._reserve_console(requested)
        self._aux.port = self.aux
        await self._listen(self._aux, "aux")
        self._aux.set_available(self.running)

    async def _resize_adapters(self, count: int) -> None:
        """Adapters can come and go while the container runs: eth<n> is created or deleted with them; the links
        of the adapters that stay are kept."""
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

    # -- NIOs ----------------------------------------------------------------------------------------------------

    def adapter(self, adapter_number: int) -> Adapter:
        if adapter_number >= len(self.adapters) or adapter_number < 0:
            raise Conflict(f"Adapter {adapter_number} doesn't exist on Docker container '{self.name}' "
                           f"(it has {len(self.adapters)}; set 'adapters' to add more)")
        return self.adapters[adapter_number]

    async def add_nio(self, adapter_number: int, port_number: int, nio: Any) -> None:
        async with self._lock:  # not while the container is being started or stopped
            await super().add_nio(adapter_number, port_number, nio)

    async def remove_nio(self, adapter_number: int, port_number: int) -> Any:
        async with self._lock:
            return await super().remove_nio(adapter_number, port_number)
