"""MAC addresses of virtual PCs: one place that hands them out, for both backends.

A PC's MAC is 00:50:79:66:68:<m>, `m` an offset 0-254. The real vpcs takes it as `-m <m>`; the built-in engine
takes the address itself. Offsets are unique per project (the reference's rule, hence at most 255 VPCS per
project); a server-wide rule would change only this module.
"""

from __future__ import annotations

from gns3core.errors import Conflict

MAC_POOL_SIZE = 255  # offsets 0..254
MAC_PREFIX = "00:50:79:66:68"


def mac_address(mac_id: int) -> str:
    """The MAC of offset `mac_id`, as vpcs shows it."""
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
