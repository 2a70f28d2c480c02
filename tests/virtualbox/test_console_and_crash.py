"""The telnet console of a VirtualBox VM (relayed to its serial socket) and crash detection, on the stand-in."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from vbox_lab import BASE_VM, StandIn

from gns3core.testing.notifications import NotificationStream
from gns3core.testing.telnet import strip_telnet

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def state_check_interval() -> str:
    return "0.5"


def base(project_id: str) -> str:
    return f"/v1/projects/{project_id}/virtualbox/vms"


class Telnet:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.seen = reader, writer, b""

    @classmethod
    async def connect(cls, port: int) -> Telnet:
        return cls(*await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10))

    async def run(self, line: str, expect: str, timeout: float = 20.0) -> str:
        self.seen = b""
        self.writer.write(line.encode() + b"\r\n")
        return await self.expect(expect, timeout)

    async def expect(self, text: str, timeout: float = 20.0) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while text not in strip_telnet(self.seen).decode(errors="replace"):
            chunk = await asyncio.wait_for(self.reader.read(4096), max(0.01, deadline - loop.time()))
            assert chunk, f"console closed before {text!r}: {self.seen!r}"
            self.seen += chunk
        return strip_telnet(self.seen).decode(errors="replace")

    def close(self) -> None:
        self.writer.close()


async def test_remote_console_serves_several_clients(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    vm = (await api.post(base(pid), {"name": "guest-1", "vmname": BASE_VM, "linked_clone": False,
                                     "enable_remote_console": True})).json
    url = f"{base(pid)}/{vm['vm_id']}"
    assert (await api.post(f"{url}/start")).status == 204
    first, second = await Telnet.connect(vm["console"]), await Telnet.connect(vm["console"])
    try:
        out = await first.run("hostname", "guest-1:~# ")
        assert "guest-1" in out  # NameInGNS3, set by the server after the start
        await second.expect("guest-1:~# ")  # every client sees what the guest prints
        first.close()  # one client leaves; the others (and the serial connection) stay
        assert "VirtualBox VM stand-in" in await second.run("uname", "stand-in")
        third = await Telnet.connect(vm["console"])
        assert "hello" in await third.run("echo hello", "hello")
        third.close()
    finally:
        second.close()

    # the console follows the settings while the VM runs
    assert (await api.put(url, {"enable_remote_console": False})).status == 200
    with pytest.raises(OSError):
        await Telnet.connect(vm["console"])
    reply = await api.put(url, {"enable_remote_console": True, "console": vm["console"] + 1})
    assert reply.status == 200
    console = reply.json["console"]
    telnet = await Telnet.connect(console)
    assert "guest-1" in await telnet.run("hostname", "guest-1:~# ")
    assert (await api.post(f"{url}/stop")).status == 204
    # the port stays the node's while it exists: the client stays connected and is served again after a start
    assert (await api.post(f"{url}/start")).status == 204
    assert "guest-1" in await telnet.run("hostname", "guest-1:~# ")
    telnet.close()
    assert (await api.delete(url)).status == 204
    with pytest.raises(OSError):
        await Telnet.connect(console)


async def test_no_telnet_without_remote_console(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    vm = (await api.post(base(pid), {"name": "n", "vmname": BASE_VM, "linked_clone": False})).json
    assert (await api.post(f"{base(pid)}/{vm['vm_id']}/start")).status == 204
    with pytest.raises(OSError):
        await Telnet.connect(vm["console"])
    assert (await api.post(f"{base(pid)}/{vm['vm_id']}/stop")).status == 204


@pytest.mark.parametrize("remote_console", [True, False], ids=["console-socket", "slow-check"])
async def test_vm_process_killed_is_reported(api, project, standin: StandIn, remote_console: bool) -> None:
    pid = project["project_id"]
    vm = (await api.post(base(pid), {"name": "victim", "vmname": BASE_VM, "linked_clone": False, "adapters": 1,
                                     "enable_remote_console": remote_console})).json
    url = f"{base(pid)}/{vm['vm_id']}"
    lport = (await api.post(f"/v1/projects/{pid}/ports/udp")).json["udp_port"]
    nio = {"type": "nio_udp", "lport": lport, "rhost": "127.0.0.1", "rport": lport + 1}
    assert (await api.post(f"{url}/adapters/0/ports/0/nio", nio)).status == 201
    assert (await api.post(f"{url}/start")).status == 204
    async with NotificationStream(api, pid) as notifications:
        os.kill(standin.vm_pid(BASE_VM), signal.SIGKILL)
        error = await notifications.wait_for("log.error")
        stopped = await notifications.wait_for("vm.stopped")
    assert "victim" in error["event"]["message"] and "aborted" in error["event"]["message"]
    assert stopped["event"]["vm_id"] == vm["vm_id"] and stopped["event"]["status"] == "stopped"
    assert notifications.events.index(error) < notifications.events.index(stopped)
    assert (await api.get(url)).json["status"] == "stopped"
    info = standin.info(BASE_VM)
    assert info["VMState"] == "aborted" and info["uart1"] == "off" and info["nic1"] == "null"  # left tidy
    assert (await api.get(f"/v1/projects/{pid}/files")).status == 200  # the project is intact
    assert (await api.post(f"{url}/start")).status == 204  # and the VM starts again
    assert (await api.post(f"{url}/stop")).status == 204


async def test_guest_powering_off_by_itself_is_reported(api, project, standin: StandIn) -> None:
    pid = project["project_id"]
    vm = (await api.post(base(pid), {"name": "g", "vmname": BASE_VM, "linked_clone": False,
                                     "enable_remote_console": True})).json
    assert (await api.post(f"{base(pid)}/{vm['vm_id']}/start")).status == 204
    async with NotificationStream(api, pid) as notifications:
        telnet = await Telnet.connect(vm["console"])
        await telnet.run("poweroff", "going down")
        telnet.close()
        error = await notifications.wait_for("log.error")
        await notifications.wait_for("vm.stopped")
    assert "poweroff" in error["event"]["message"]
    assert standin.info(BASE_VM)["VMState"] == "poweroff"
