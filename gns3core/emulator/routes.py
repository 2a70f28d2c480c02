"""The standard endpoints of an emulator kind, generated from a few declarations (API v1's shared pattern)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from gns3core import schemas
from gns3core.emulator.manager import VMManager
from gns3core.emulator.vm import BaseVM
from gns3core.files import contained_path
from gns3core.routing import ApiRequest, Route

ACTIONS = ("start", "stop", "reload", "suspend", "resume")


def manager_of(request: ApiRequest, kind: str) -> VMManager:
    return request.server.emulators[kind]


def vm_of(request: ApiRequest, kind: str, id_param: str | None = None) -> BaseVM:
    """The VM named by the path; `id_param` is the path parameter holding its id (default: the manager's
    `id_field`), so one kind can be served under two URL families (Docker's `{id}` and `{vm_id}`)."""
    manager = manager_of(request, kind)
    request.project  # noqa: B018 - 404 for an unknown project comes first
    return manager.get_vm(request.match[id_param or manager.id_field], request.match["project_id"])


def vm_routes(
    kind: str,
    *,
    create: dict[str, Any],
    update: dict[str, Any] | None,
    output: dict[str, Any],
    actions: Iterable[str] = ("start", "stop", "reload"),
    nio: dict[str, Any] | None = schemas.NIO,
    capture: dict[str, Any] | None = None,
    collection: str = "vms",
    id_param: str = "vm_id",
    adapters: bool = True,
    segment: str | None = None,
    start_returns_vm: bool = False,
) -> list[Route]:
    """Routes for `/v1/projects/{project_id}/<segment>/<collection>/...` (`segment` defaults to the kind's name).

    `segment` lets two kinds share a URL prefix (Dynamips routers at `/dynamips/vms`, devices at `/dynamips/devices`).

    `adapters=False` gives the device form `.../ports/{port_number}/nio` (Dynamips switches and hubs).
    `capture` is the start_capture input schema, or None when the kind cannot capture.
    `start_returns_vm`: `start` answers 200 with the VM object, as the released 1.5.x line does for VPCS, Qemu and
    IOU (the 1.5.4 client reads `command_line` from it); otherwise 204 with no body.
    """
    base = f"/v1/projects/{{project_id}}/{segment or kind}/{collection}"
    item = f"{base}/{{{id_param}}}"
    port = (item + "/adapters/{adapter_number:\\d+}/ports/{port_number:\\d+}") if adapters else (
        item + "/ports/{port_number:\\d+}")

    async def create_vm(request: ApiRequest) -> dict[str, Any]:
        project = request.project
        vm = await manager_of(request, kind).create_vm(project, request.json)
        return vm.as_json()

    async def get_vm(request: ApiRequest) -> dict[str, Any]:
        return vm_of(request, kind, id_param).as_json()

    async def update_vm(request: ApiRequest) -> dict[str, Any]:
        vm = vm_of(request, kind, id_param)
        await vm.update(request.json)
        return vm.as_json()

    async def delete_vm(request: ApiRequest) -> None:
        vm = vm_of(request, kind, id_param)
        await manager_of(request, kind).delete_vm(vm)

    def action_handler(action: str):
        async def run_action(request: ApiRequest) -> dict[str, Any] | None:
            vm = vm_of(request, kind, id_param)
            await getattr(vm, action)()
            return vm.as_json() if action == "start" and start_returns_vm else None

        run_action.__name__ = f"{kind}_{action}"
        return run_action

    def port_numbers(request: ApiRequest) -> tuple[int, int]:
        adapter = request.int_param("adapter_number") if adapters else 0
        return adapter, request.int_param("port_number")

    async def add_nio(request: ApiRequest) -> dict[str, Any]:
        vm = vm_of(request, kind, id_param)
        adapter, port_number = port_numbers(request)
        vm.check_port(adapter, port_number)
        nio = manager_of(request, kind).create_nio(vm, request.json)
        await vm.add_nio(adapter, port_number, nio)
        return nio.as_json()

    async def remove_nio(request: ApiRequest) -> None:
        vm = vm_of(request, kind, id_param)
        adapter, port_number = port_numbers(request)
        await vm.remove_nio(adapter, port_number)

    async def start_capture(request: ApiRequest) -> dict[str, Any]:
        vm = vm_of(request, kind, id_param)
        adapter, port_number = port_numbers(request)
        path = contained_path(vm.project.captures_dir, request.json["capture_file_name"], "capture file name")
        await vm.start_capture(adapter, port_number, path, request.json.get("data_link_type", "DLT_EN10MB"))
        return {"pcap_file_path": str(path)}

    async def stop_capture(request: ApiRequest) -> None:
        vm = vm_of(request, kind, id_param)
        adapter, port_number = port_numbers(request)
        await vm.stop_capture(adapter, port_number)

    noun = "device" if id_param == "device_id" else "VM"
    routes = [
        Route("POST", base, create_vm, 201, input=create, output=output, description=f"Create a {kind} {noun}"),
        Route("GET", item, get_vm, 200, output=output, description=f"Get a {kind} {noun}"),
        Route("DELETE", item, delete_vm, 204, description=f"Delete a {kind} {noun}"),
    ]
    if update is not None:
        routes.append(Route("PUT", item, update_vm, 200, input=update, output=output,
                            description=f"Update a {kind} {noun}"))
    for action in actions:
        if action not in ACTIONS:
            raise ValueError(f"Unknown action {action!r}")
        returns_vm = action == "start" and start_returns_vm
        routes.append(Route("POST", f"{item}/{action}", action_handler(action), 200 if returns_vm else 204,
                            output=output if returns_vm else None,
                            description=f"{action.capitalize()} a {kind} {noun}"))
    if nio is not None:
        routes.append(Route("POST", port + "/nio", add_nio, 201, input=nio, output=nio,
                            description=f"Add a NIO to a {kind} {noun}"))
        routes.append(Route("DELETE", port + "/nio", remove_nio, 204, description=f"Remove a NIO from a {kind} {noun}"))
    if capture is not None:
        routes.append(Route("POST", port + "/start_capture", start_capture, 200, input=capture,
                            output=schemas.CAPTURE_RESULT, description=f"Start a packet capture on a {kind} {noun}"))
        routes.append(Route("POST", port + "/stop_capture", stop_capture, 204,
                            description=f"Stop a packet capture on a {kind} {noun}"))
    return routes


@dataclass(frozen=True)
class VMRoutes:
    """The standard endpoints of a kind, declared without its name (the arguments of `vm_routes`).

    `Emulator(name="myemu", manager=..., vm_routes=VMRoutes(create=..., output=...))` builds them for the kind it
    declares, so a plugin writes its kind's name once.
    """

    create: dict[str, Any]
    update: dict[str, Any] | None
    output: dict[str, Any]
    actions: tuple[str, ...] = ("start", "stop", "reload")
    nio: dict[str, Any] | None = field(default_factory=lambda: schemas.NIO)
    capture: dict[str, Any] | None = None
    collection: str = "vms"
    id_param: str = "vm_id"
    adapters: bool = True
    segment: str | None = None
    start_returns_vm: bool = False

    def build(self, kind: str) -> list[Route]:
        """The routes of kind `kind`."""
        return vm_routes(kind, **{f.name: getattr(self, f.name) for f in fields(self)})

