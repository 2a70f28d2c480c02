"""The network adapters of a running container: one veth pair each, whose host end the core's link wiring joins to
the NIO's tunnel.

The container end is created directly inside the container's network namespace as `eth<n>` and stays there for as
long as the container runs, so an address configured in the container survives links being removed and re-added;
only the bridge between the host end and the tunnel comes and goes with the NIO.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket

from gns3core.errors import EmulatorError

log = logging.getLogger(__name__)

def host_interface_name(vm_id: str, adapter_number: int) -> str:
    """`g3d<8 hex of the VM id>-<n>`: unique per container and adapter, within the kernel's 15 characters."""
    return f"g3d{vm_id.replace('-', '')[:8]}-{adapter_number}"


def interface_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


async def run_ip(args: list[str], what: str, pid: int | None = None) -> None:
    """Run `ip` (inside the network namespace of `pid` when given) from an argument list; 409 with ip's message."""
    command = ["ip", *args]
    if pid is not None:
        command = ["nsenter", "-t", str(pid), "-n", *command]
    if shutil.which(command[0]) is None:
        raise EmulatorError(f"{what}: the '{command[0]}' command is not installed (apt package "
                            f"{'iproute2' if command[0] == 'ip' else 'util-linux'})")
    proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise EmulatorError(f"{what}: {err.decode(errors='replace').strip() or f'exit status {proc.returncode}'}")


class AdapterVeth:
    """The veth pair of adapter `n` of a running container; the core's LinkWiring bridges its host end to the NIO."""

    def __init__(self, vm_id: str, adapter_number: int, pid: int) -> None:
        self.adapter_number = adapter_number
        self.pid = pid
        self.host_name = host_interface_name(vm_id, adapter_number)
        self.inner_name = f"eth{adapter_number}"

    async def create(self) -> None:
        """Create the pair with its far end born in the container's namespace as eth<n>, both ends up."""
        if interface_exists(self.host_name):  # left over by a server that died: the name embeds our VM id
            await self.destroy()
        await run_ip(["link", "add", self.host_name, "type", "veth", "peer", "name", self.inner_name,
                      "netns", str(self.pid)],
                     f"Cannot create the veth pair of adapter {self.adapter_number}")
        results = await asyncio.gather(  # both ends at once: each is a program run
            run_ip(["link", "set", "dev", self.inner_name, "up"],
                   f"Cannot bring {self.inner_name} up in the container", pid=self.pid),
            run_ip(["link", "set", "dev", self.host_name, "up"], f"Cannot bring {self.host_name} up"),
            return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            await self.destroy()
            raise failure

    async def destroy(self) -> None:
        if interface_exists(self.host_name):  # gone already when the container's namespace went away
            try:
                await run_ip(["link", "del", "dev", self.host_name], f"Cannot delete {self.host_name}")
            except EmulatorError as exc:
                log.warning("%s", exc)
