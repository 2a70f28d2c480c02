"""A stand-in for the real dynamips hypervisor, for tests that need a router that boots.

No Cisco IOS image can be obtained, so the real dynamips can never start a router here. This program speaks the
same TCP text protocol as `dynamips -H [host:]port` (same commands, same reply framing: `101 ` intermediate lines,
`100-` success, `2xx-` errors, CRLF line ends) and keeps just enough router state to exercise start/stop/suspend,
NVRAM config extraction, idle-PC proposals and CPU usage. It is NOT dynamips: it emulates no CPU and accepts any
image file. Command line: `hypervisor_standin.py [-N1] [-l log] -H [host:]port`.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shlex
import sys
import time
import uuid

PROPOSALS = ["0x60606060 [70]", "0x6080f6c4 [44]", "0x60bb2f10 [31]"]
GOOD_IDLEPC = "0x6080f6c4"  # the proposal that makes the stand-in's CPU usage drop


class Router:
    def __init__(self, name: str, instance: int, platform: str) -> None:
        self.name, self.instance, self.platform = name, instance, platform
        self.status = 0
        self.image = ""
        self.startup_file = ""
        self.private_file = ""
        self.nvram = ("", "")
        self.idlepc = "0x0"
        self.cpu = 0.0
        self.last = time.monotonic()

    def cpu_seconds(self) -> int:
        now = time.monotonic()
        if self.status == 2:
            self.cpu += (0.0 if self.idlepc == GOOD_IDLEPC else 1.0) * (now - self.last)
        self.last = now
        return int(self.cpu)


class StandIn:
    def __init__(self) -> None:
        self.workdir = os.getcwd()
        self.routers: dict[str, Router] = {}
        self.objects: set[str] = set()
        self.uuid = str(uuid.uuid4())
        self.server: asyncio.AbstractServer | None = None

    def run(self, line: str) -> tuple[list[str], str]:
        """Return (intermediate lines, final line with its code)."""
        try:
            words = shlex.split(line)
        except ValueError:
            return [], "200-Bad command line"
        if len(words) < 2:
            return [], "200-Bad command line"
        module, command, args = words[0], words[1], words[2:]
        handler = getattr(self, f"cmd_{module}", None)
        if handler is None:
            return [], f"201-Unknown module '{module}'"
        return handler(command, args)

    def cmd_hypervisor(self, command: str, args: list[str]) -> tuple[list[str], str]:
        if command == "version":
            return [], "100-0.2.14-standin"
        if command == "uuid":
            return [], f"100-{self.uuid}"
        if command == "working_dir":
            self.workdir = args[0]
            return [], "100-OK"
        if command == "stop":
            asyncio.get_running_loop().call_later(0.05, os._exit, 0)
            return [], "100-OK"
        if command in ("reset", "close"):
            return [], "100-OK"
        return [], f"202-Unknown command '{command}'"

    def _router(self, name: str) -> Router:
        if name not in self.routers:
            raise KeyError(name)
        return self.routers[name]

    def cmd_vm(self, command: str, args: list[str]) -> tuple[list[str], str]:  # noqa: C901 - one branch per command
        if command == "create":
            if args[0] in self.routers:
                return [], f"206-unable to create VM instance '{args[0]}'"
            self.routers[args[0]] = Router(args[0], int(args[1]), args[2])
            return [], f"100-VM '{args[0]}' created"
        try:
            router = self._router(args[0])
        except (KeyError, IndexError):
            return [], f"204-unable to find VM '{args[0] if args else ''}'"
        if command in ("delete", "clean_delete"):
            del self.routers[router.name]
            return [], f"100-VM '{router.name}' deleted"
        if command == "rename":
            self.routers[args[1]] = self.routers.pop(router.name)
            router.name = args[1]
            return [], f"100-VM '{args[0]}' renamed to '{args[1]}'"
        if command == "set_ios":
            router.image = args[1]
            return [], f"100-IOS image set for '{router.name}'"
        if command == "set_config":
            router.startup_file, router.private_file = args[1], args[2] if len(args) > 2 else ""
            return [], f"100-IOS config file set for '{router.name}'"
        if command == "start":
            if not router.image or not os.path.isfile(router.image):
                return [], f"209-unable to start VM instance '{router.name}'"
            router.nvram = (self._read(router.startup_file), self._read(router.private_file))
            router.status, router.last = 2, time.monotonic()
            return [], f"100-VM '{router.name}' started"
        if command == "stop":
            router.status = 0
            return [], f"100-VM '{router.name}' stopped"
        if command == "suspend":
            router.status = 3
            return [], f"100-VM '{router.name}' suspended"
        if command == "resume":
            router.status = 2
            return [], f"100-VM '{router.name}' resumed"
        if command == "get_status":
            return [], f"100-{router.status}"
        if command == "extract_config":
            if router.status == 0 and not any(router.nvram):
                return [], f"206-unable to extract config of VM '{router.name}'"
            startup, private = (base64.b64encode(t.encode()).decode() for t in router.nvram)
            return [], f"100-conf '{router.name}' \"{startup}\" \"{private}\""
        if command in ("set_idle_pc", "set_idle_pc_online"):
            router.cpu_seconds()
            router.idlepc = args[-1]
            return [], "100-OK"
        if command in ("get_idle_pc_prop", "show_idle_pc_prop"):
            if router.status != 2:
                return [], f"209-VM '{router.name}' not running"
            return [f"101 {p}" for p in PROPOSALS], "100-OK"
        if command == "cpu_usage":
            return [], f"100-{router.cpu_seconds()}"
        if command.startswith(("set_", "slot_")):
            return [], "100-OK"
        return [], f"202-Unknown command '{command}'"

    def _read(self, relative: str) -> str:
        if not relative:
            return ""
        try:
            with open(os.path.join(self.workdir, relative), encoding="utf-8") as handle:
                return handle.read()
        except OSError:
            return ""

    def _platform(self, command: str, args: list[str]) -> tuple[list[str], str]:
        if command == "get_mac_addr":
            router = self.routers.get(args[0])
            if router is None:
                return [], f"204-unable to find VM '{args[0]}'"
            return [], f"100-ca{router.instance:02x}.5354.0000"
        return [], "100-OK"

    cmd_c1700 = cmd_c2600 = cmd_c2691 = cmd_c3600 = cmd_c3725 = cmd_c3745 = cmd_c7200 = _platform

    def cmd_nio(self, command: str, args: list[str]) -> tuple[list[str], str]:
        if command.startswith("create_"):
            self.objects.add(args[0])
            return [], f"100-NIO '{args[0]}' created"
        if command == "delete":
            self.objects.discard(args[0])
            return [], f"100-NIO '{args[0]}' deleted"
        return [], "100-OK"

    async def serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            lines, final = self.run(line.decode().strip())
            writer.write("".join(f"{item}\r\n" for item in lines + [final]).encode())
            await writer.drain()
        writer.close()


async def main(argv: list[str]) -> None:
    bind = argv[argv.index("-H") + 1]
    host, _, port = bind.rpartition(":")
    standin = StandIn()
    server = await asyncio.start_server(standin.serve_client, host or "0.0.0.0", int(port))
    print(f"Hypervisor stand-in TCP control server started (port {port}).", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1:]))
    except SystemExit:
        pass
