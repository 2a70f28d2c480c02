"""The server object: configuration, ports, projects, emulator managers and locks, shared by every handler."""

from __future__ import annotations

import inspect
import json
import logging
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gns3core import __version__
from gns3core.access import AccessPolicy
from gns3core.config import DEFAULT_COMPAT_VERSION, DEFAULT_MAX_PROJECTS, Config
from gns3core.emulator.process import kill_all_live
from gns3core.errors import Conflict
from gns3core.hostload import HostLoad
from gns3core.macs import MacBase, resolve_mac_base
from gns3core.ports import PortManager, PortRange
from gns3core.projects import ProjectManager
from gns3core.routing import SERVER_HEADER_PREFIX, VMLocks
from gns3core.tunnels import default_udp_host, parse_udp_host

if TYPE_CHECKING:
    import pluggy

    from gns3core.plugins import PluginReport
    from gns3core.registry import Registry

log = logging.getLogger(__name__)


class Server:
    def __init__(self, config: Config, registry: Registry, pm: pluggy.PluginManager, report: PluginReport,
                 validate_output: bool = False) -> None:
        self.config = config
        self.registry = registry
        self.pm = pm
        self.plugin_report = report
        self.validate_output = validate_output
        self.locks = VMLocks()
        self._udp_host: str | Conflict = default_udp_host()
        self._mac_base: tuple[tuple[str, str], MacBase] | None = None
        self.ports = PortManager(self.console_host, *self._port_ranges())
        self.projects = ProjectManager(self)
        self.emulators = {name: emu.manager(self, name) for name, emu in registry.emulators.items()}
        offsets: set[int] = set()
        for manager in self.emulators.values():
            offsets.update(getattr(manager, "udp_companion_offsets", ()))
        self.ports.udp_companion_offsets = tuple(sorted(offsets))
        self._dataplane: Any = None
        # How `POST /v1/server/shutdown` stops the process; the command line sets it, tests may replace it.
        self.request_stop: Callable[[], None] | None = None
        self.version_reply: Any = None  # GET /v1/version body, encoded once (see builtin/version.py)
        self.openapi_document: Any = None  # GET /v1/openapi.json, built on first use (see builtin/openapi.py)
        self.stopping = False  # set when the server stops: endless streams end on their own
        self.host_load = HostLoad()  # CPU and memory figures of the notification ping
        self.apply_config()

    # -- configuration-derived values ------------------------------------------------------------------------------

    def _port_ranges(self) -> tuple[PortRange, PortRange]:
        section = self.config.server
        return (
            PortRange(section.getint("console_start_port_range", 2001), section.getint("console_end_port_range", 7000)),
            PortRange(section.getint("udp_start_port_range", 10000), section.getint("udp_end_port_range", 20000)),
        )

    def apply_config(self) -> None:
        """Recompute what handlers read on every request, so the hot path does no parsing.

        New port ranges and console host apply to ports handed out from now on; ports already held stay held.
        """
        section = self.config.server
        try:
            self._udp_host = parse_udp_host(section.get("udp_host"))
        except Conflict as exc:
            log.error("%s", exc.message)
            self._udp_host = exc
        ports = getattr(self, "ports", None)
        if ports is not None:
            ports.console_range, ports.udp_range = self._port_ranges()
            ports.console_host = self.console_host
            ports.udp_host = self._udp_host if isinstance(self._udp_host, str) else default_udp_host()
        self.version = section.get("compatibility_version") or DEFAULT_COMPAT_VERSION
        self.local = section.getbool("local")
        self.host = section.get("host") or "127.0.0.1"
        self.access = AccessPolicy(section, self.host)
        self.max_projects = section.getint("max_projects", DEFAULT_MAX_PROJECTS)
        self._server_header = f"{SERVER_HEADER_PREFIX} GNS3/{self.version} gns3core/{__version__}"
        self.record_path = section.getpath("record")

    def record_request(self, request: Any, body: Any) -> None:
        """`--record`: append each API request as a curl command line, to replay a client's session by hand."""
        command = ["curl", "-i", "-X", request.method, str(request.url)]
        if body:
            command += ["-d", json.dumps(body, sort_keys=True)]
        try:
            with open(self.record_path, "a", encoding="utf-8") as handle:  # type: ignore[arg-type]
                handle.write(shlex.join(command) + "\n")
        except OSError as exc:
            log.warning("Cannot record the request in %s: %s", self.record_path, exc)

    def reload_config(self) -> None:
        self.config.reload()
        self.apply_config()

    @property
    def console_host(self) -> str:
        section = self.config.server
        host = section.get("host") or "127.0.0.1"
        if section.getbool("allow_remote_console"):
            return "::" if ":" in host else "0.0.0.0"
        return host

    @property
    def udp_host(self) -> str:
        """`[Server] udp_host`: the address every UDP tunnel binds (default all addresses); 409 when invalid."""
        if isinstance(self._udp_host, Conflict):
            raise Conflict(self._udp_host.message)
        return self._udp_host

    @property
    def mac_base(self) -> MacBase:
        """`[Server] mac_base`: the base of the MAC addresses this server hands out (see gns3core.macs); the
        identity file behind the default is read (or created) on first use only. 409 when the value is invalid."""
        key = (self.config.server.get("mac_base") or "", str(self.projects.location))
        cached = self._mac_base
        if cached is None or cached[0] != key:
            base = resolve_mac_base(key[0], self.projects.location)
            log.info("MAC addresses are drawn from base %s (%s)", base, base.origin)
            cached = self._mac_base = (key, base)
        return cached[1]

    @property
    def auth_header(self) -> str | None:
        return self.access.auth_header

    def common_headers(self, route_path: str) -> dict[str, str]:
        return {"X-Route": route_path, "Server": self._server_header}

    # -- shared services -------------------------------------------------------------------------------------------

    @property
    def dataplane(self) -> Any:
        """The packet bridge service, created on first use (plugins that need no bridge never pay for it)."""
        if self._dataplane is None:
            from gns3core.dataplane import DataPlane

            self._dataplane = DataPlane()
        return self._dataplane

    async def call_hook(self, name: str, **kwargs: Any) -> None:
        for result in getattr(self.pm.hook, name)(**kwargs):
            if inspect.isawaitable(result):
                try:
                    await result
                except Exception:
                    log.exception("Hook %s failed", name)

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every VM and close every project; no emulator process outlives the server."""
        await self.projects.close_all()
        for manager in self.emulators.values():
            try:
                await manager.unload()
            except Exception:
                log.exception("Could not unload %s", manager.kind)
        await self.call_hook("gns3_server_stopping", server=self)
        if self._dataplane is not None:
            await self._dataplane.close()
        kill_all_live()
