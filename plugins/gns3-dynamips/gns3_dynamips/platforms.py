"""Router platforms: defaults, chassis, slots and the adapters/WICs each accepts, as API v1 documents them."""

from __future__ import annotations

from dataclasses import dataclass, field

ADAPTER_PORTS: dict[str, int] = {
    "C7200-IO-FE": 1, "C7200-IO-2FE": 2, "C7200-IO-GE-E": 1,
    "NM-1E": 1, "NM-4E": 4, "NM-1FE-TX": 1, "NM-16ESW": 16, "NM-4T": 4,
    "PA-FE-TX": 1, "PA-2FE-TX": 2, "PA-4E": 4, "PA-8E": 8, "PA-4T+": 4, "PA-8T": 8, "PA-A1": 1, "PA-GE": 1,
    "PA-POS-OC3": 1,
    # built-in mainboards (reported in slot0, never inserted by the client)
    "C1700-MB-1FE": 1, "C1700-MB-WIC1": 0, "C2600-MB-1E": 1, "C2600-MB-2E": 2, "C2600-MB-1FE": 1,
    "C2600-MB-2FE": 2, "GT96100-FE": 2, "Leopard-2FE": 2,
}
BUILTIN_ADAPTERS = frozenset({
    "C1700-MB-1FE", "C1700-MB-WIC1", "C2600-MB-1E", "C2600-MB-2E", "C2600-MB-1FE", "C2600-MB-2FE", "GT96100-FE",
    "Leopard-2FE",
})
WIC_PORTS: dict[str, int] = {"WIC-1ENET": 1, "WIC-1T": 1, "WIC-2T": 2}

C2600_MAINBOARDS = {
    "2610": "C2600-MB-1E", "2611": "C2600-MB-2E", "2620": "C2600-MB-1FE", "2621": "C2600-MB-2FE",
    "2610XM": "C2600-MB-1FE", "2611XM": "C2600-MB-2FE", "2620XM": "C2600-MB-1FE", "2621XM": "C2600-MB-2FE",
    "2650XM": "C2600-MB-1FE", "2651XM": "C2600-MB-2FE",
}
C3600_SLOTS = {"3620": 2, "3640": 4, "3660": 7}
NPES = ("npe-100", "npe-150", "npe-175", "npe-200", "npe-225", "npe-300", "npe-400", "npe-g2")


@dataclass(frozen=True)
class Platform:
    name: str
    ram: int
    nvram: int
    clock_divisor: int
    iomem: int | None
    default_chassis: str | None = None
    chassis: tuple[str, ...] = ()
    sparsemem: bool = True
    slots: int = 1
    wic_slots: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def slot_count(self, chassis: str | None) -> int:
        if self.name == "c1700":
            return 2 if chassis in ("1751", "1760") else 1
        if self.name == "c3600":
            return C3600_SLOTS.get(chassis or "3640", 4)
        return self.slots

    def builtin_slots(self, chassis: str | None, npe: str | None) -> dict[int, str]:
        """Adapters the chassis has on its own (slot number -> adapter name)."""
        if self.name == "c1700":
            found = {0: "C1700-MB-1FE"}
            if chassis in ("1751", "1760"):
                found[1] = "C1700-MB-WIC1"
            return found
        if self.name == "c2600":
            return {0: C2600_MAINBOARDS.get(chassis or "2610", "C2600-MB-1E")}
        if self.name in ("c2691", "c3725", "c3745"):
            return {0: "GT96100-FE"}
        if self.name == "c3600":
            return {0: "Leopard-2FE"} if chassis == "3660" else {}
        if self.name == "c7200":
            return {0: "C7200-IO-GE-E" if npe == "npe-g2" else "C7200-IO-FE"}
        return {}


PLATFORMS: dict[str, Platform] = {
    "c1700": Platform("c1700", 64, 32, 8, 15, "1720", ("1720", "1721", "1750", "1751", "1760"), sparsemem=False,
                      wic_slots=2),
    "c2600": Platform("c2600", 64, 128, 8, 15, "2610", tuple(C2600_MAINBOARDS), sparsemem=False, slots=2,
                      wic_slots=3),
    "c2691": Platform("c2691", 128, 112, 8, 5, slots=2, wic_slots=3),
    "c3600": Platform("c3600", 128, 128, 4, 5, "3640", tuple(C3600_SLOTS)),
    "c3725": Platform("c3725", 128, 112, 8, 5, slots=3, wic_slots=3),
    "c3745": Platform("c3745", 128, 304, 8, 5, slots=5, wic_slots=3),
    "c7200": Platform("c7200", 256, 128, 4, None, slots=7),
}


def wic_slot_count(platform: Platform, slot0: str | None) -> int:
    """WIC slots exist only when slot 0 holds a mainboard that has them."""
    if slot0 in ("C1700-MB-1FE",) or (slot0 or "").startswith("C2600-MB") or slot0 == "GT96100-FE":
        return platform.wic_slots
    return 0


def wic_port_base(wic_slot: int) -> int:
    """Ports of WIC n are numbered from 16·(n+1) on slot 0."""
    return 16 * (wic_slot + 1)
