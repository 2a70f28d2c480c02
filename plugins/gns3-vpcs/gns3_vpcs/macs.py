"""MAC addresses of virtual PCs: one place that hands them out, for both backends.

A PC gets a MAC offset `m` (0-254) unique in its project (the reference's rule, hence at most 255 VPCS per
project); its address is the server's VPCS address for that offset (`[Server] mac_base`, gns3core.macs):
`<base>:00:00:<m>` by default, GNS3's `00:50:79:66:68:<m>` with `mac_base = gns3`. The built-in engine takes the
address itself. The real vpcs only knows `-m <m>` and always uses `00:50:79:66:68:<m>`: when the server's address
differs, the plugin puts a translating relay between vpcs and its link (gns3_vpcs.relay).
"""

from __future__ import annotations

from gns3core.errors import Conflict
from gns3core.macs import GNS3_VPCS_PREFIX, MacBase

MAC_POOL_SIZE = 255  # offsets 0..254
MAC_PREFIX = GNS3_VPCS_PREFIX  # what vpcs itself uses


def mac_address(base: MacBase, mac_id: int) -> str:
    """The MAC of offset `mac_id` on a server whose MAC base is `base`."""
    return base.vpcs(mac_id)


def vpcs_own_address(mac_id: int) -> str:
    """The address the real vpcs gives itself for `-m <mac_id>`."""
    return f"{MAC_PREFIX}:{mac_id:02x}"


class MacPool:
    """Free and used offsets, per project."""

    def __init__(self) -> None:
        self._used: dict[str, set[int]] = {}

    def allocate(self, project_id: str) -> int:
        """The lowest free offset of the project; 409 when all 255 are taken."""
        used = self._used.setdefault(project_id, set())
        for mac_id in range(MAC_POOL_SIZE):
            if mac_id not in used:
                used.add(mac_id)
                return mac_id
        raise Conflict(f"Cannot create a new VPCS VM (limit of {MAC_POOL_SIZE} VMs reached on this host)")

    def release(self, project_id: str, mac_id: int) -> None:
        used = self._used.get(project_id)
        if used is not None:
            used.discard(mac_id)
            if not used:
                self._used.pop(project_id, None)

    def forget(self, project_id: str) -> None:
        """The project closed: all its offsets are free again."""
        self._used.pop(project_id, None)
