"""Entry point of the VPCS plugin (group `gns3server.plugins`, name `vpcs`): registers the `vpcs` emulator kind."""

from __future__ import annotations

from gns3_vpcs import schemas as vpcs_schemas
from gns3_vpcs.manager import VPCSManager
from gns3core import hookimpl, schemas
from gns3core.emulator import VMRoutes
from gns3core.registry import Emulator, Registry


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_emulator(Emulator(
        name="vpcs",
        manager=VPCSManager,
        vm_routes=VMRoutes(create=vpcs_schemas.CREATE, update=vpcs_schemas.UPDATE, output=vpcs_schemas.OBJECT,
                           actions=("start", "stop", "reload"), nio=schemas.NIO, capture=None,
                           start_returns_vm=True),
        schemas={"create": vpcs_schemas.CREATE, "update": vpcs_schemas.UPDATE, "object": vpcs_schemas.OBJECT},
        description="Virtual PCs run by the vpcs program (Debian's 0.5b2, or 0.6.1 / 0.8+)",
    ))
