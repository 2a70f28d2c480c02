"""The IOU stand-in started by the server: console, NVRAM, links between two instances, crash handling."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from iou_helpers import ROUTER_CONFIG, Console, create_iou, vm_url

from gns3core.dataplane import netio_directory


async def test_start_console_and_stop(api, project, standin_image, gns3_server):
    pid = project["project_id"]
    vm = await create_iou(api, pid, standin_image, name="R1",
                          startup_config_content=ROUTER_CONFIG.format(address="10.11.0.1"))
    reply = await api.post(vm_url(pid, vm["vm_id"]) + "/start", {})
    assert reply.status == 200, reply
    assert reply.json["status"] == "started"
    assert reply.json["command_line"].endswith(" -L 1") or " -L " in reply.json["command_line"]
    console = await Console.open(vm["console"])
    await console.read_until("Escape character is '^^'")
    output = await console.command("show running-config", until="R1#")
    assert "ip address 10.11.0.1 255.255.255.0" in output
    await console.close()
    reply = await api.post(vm_url(pid, vm["vm_id"]) + "/stop")
    assert reply.status == 204
    assert (await api.get(vm_url(pid, vm["vm_id"]))).json["status"] == "stopped"


async def test_console_serves_several_clients_and_survives_vanishing_ones(api, project, standin_image):
    pid = project["project_id"]
    vm = await create_iou(api, pid, standin_image, name="R1")
    await api.post(vm_url(pid, vm["vm_id"]) + "/start", {})
    first, second = await Console.open(vm["console"]), await Console.open(vm["console"])
    for console in (first, second):
        await console.read_until("Escape character is '^^'")
    # A client that vanishes mid-session (reset, no goodbye) disturbs nobody.
    vanishing = await Console.open(vm["console"])
    vanishing.writer.transport.abort()
    output = await first.command("show version", until="Router#")
    assert "IOU stand-in" in output
    assert "IOU stand-in" in await second.read_until("Router#")  # every client sees the output
    # ^^ ? shows help, ^^ q leaves; the other client stays.
    second.writer.write(b"\x1e?")
    await second.read_until("disconnects")
    second.writer.write(b"\x1eq")
    await second.read_until("[disconnected]")
    assert "IOU stand-in" in await first.command("show version", until="Router#")
    await first.close()
    await second.close()
    reply = await api.post(vm_url(pid, vm["vm_id"]) + "/stop")
    assert reply.status == 204
    # The console goes away with the VM.
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", vm["console"])
    except OSError:
        pass
    else:
        writer.close()
        raise AssertionError("the console still listens after stop")


async def test_configs_written_on_the_console_are_saved_from_nvram(api, project, standin_image):
    pid = project["project_id"]
    vm = await create_iou(api, pid, standin_image, name="R7",
                          startup_config_content=ROUTER_CONFIG.format(address="10.31.0.1"),
                          private_config_content="private line\nend\n")
    url = vm_url(pid, vm["vm_id"])
    assert (await api.get(url)).json["startup_config"] == "startup-config.cfg"
    await api.post(url + "/start", {})
    console = await Console.open(vm["console"])
    await console.read_until("'^^'")
    await console.command("configure terminal", until="(config)#")
    await console.command("hostname EDGE", until="(config)#")
    await console.command("end", until="EDGE#")
    assert "[OK]" in await console.command("write memory", until="EDGE#")
    await console.close()
    configs = (await api.get(url + "/configs")).json
    assert "hostname EDGE" in configs["startup_config_content"]
    assert configs["private_config_content"] == "private line\nend\n"
    assert (await api.post(url + "/configs/save")).status == 200
    directory = Path(vm["vm_directory"])
    saved = (directory / "startup-config.cfg").read_text()
    assert "hostname EDGE" in saved and "ip address 10.31.0.1 255.255.255.0" in saved
    assert not saved.startswith("!")  # the released line's form: no line added at each save
    await api.post(url + "/stop")
    # Started again, the stand-in boots from the NVRAM the server imported the saved config into.
    await api.post(url + "/start", {})
    console = await Console.open(vm["console"])
    await console.read_until("'^^'")
    console.writer.write(b"\r")
    await console.read_until("EDGE#")
    await console.close()
    await api.post(url + "/stop")


async def test_killed_from_outside_reports_and_restarts(api, project, standin_image, notifications, gns3_server):
    pid = project["project_id"]
    vm = await create_iou(api, pid, standin_image, name="R9")
    url = vm_url(pid, vm["vm_id"])
    await api.post(url + "/start", {})
    live = gns3_server.emulators["iou"].vms[vm["vm_id"]]
    appid = live.application_id
    os.kill(live._process.pid, signal.SIGKILL)
    error = await notifications.wait_for("log.error")
    assert "return code: -9" in error["event"]["message"]
    assert "IOU stand-in (gns3core tests)" in error["event"]["message"]  # the end of iou.log
    stopped = await notifications.wait_for("vm.stopped")
    assert notifications.actions().index("log.error") < notifications.events.index(stopped)
    assert (await api.get(url)).json["status"] == "stopped"
    # Everything of the VM went: console, netio node; the project is intact and the VM starts again.
    assert not (netio_directory() / str(appid + 512)).exists()
    assert (await api.get(f"/v1/projects/{pid}")).status == 200
    reply = await api.post(url + "/start", {})
    assert reply.status == 200 and reply.json["status"] == "started"
    assert (await api.post(url + "/stop")).status == 204
