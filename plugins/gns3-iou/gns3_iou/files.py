"""Files of an IOU VM directory that IOU itself reads: NETMAP, and the NVRAM the configs are imported into."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gns3_iou import nvram
from gns3core.files import atomic_write

STARTUP_CONFIG = "startup-config.cfg"
PRIVATE_CONFIG = "private-config.cfg"
NETMAP = "NETMAP"
BAYS = 16
UNITS = 4
_NVRAM_NAME = re.compile(r"^nvram_\d+$")
_VLAN_NAME = re.compile(r"^vlan\.dat-\d+$")


def peer_id(appid: int) -> int:
    """The node that stands where iouyap stood: application id + 512."""
    return appid + 512


def netmap_text(appid: int) -> str:
    """Every port of the instance (16 bays of 4 units) faces the same port of node appid+512."""
    return "".join(f"{peer_id(appid)}:{bay}/{unit}{appid:>5}:{bay}/{unit}\n"
                   for bay in range(BAYS) for unit in range(UNITS))


def nvram_path(directory: Path, appid: int) -> Path:
    return directory / f"nvram_{appid:05d}"


def vlan_path(directory: Path, appid: int) -> Path:
    return directory / f"vlan.dat-{appid:05d}"


def adopt_files(directory: Path, appid: int) -> None:
    """The NVRAM and VLAN database of an earlier application id become this id's (IOU finds them by name)."""
    for entry in directory.iterdir():
        if _NVRAM_NAME.match(entry.name) and entry.name != nvram_path(directory, appid).name:
            entry.replace(nvram_path(directory, appid))
        elif _VLAN_NAME.match(entry.name) and entry.name != vlan_path(directory, appid).name:
            entry.replace(vlan_path(directory, appid))


def write_netmap(directory: Path, appid: int) -> None:
    atomic_write(directory / NETMAP, netmap_text(appid))


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


def push_configs(directory: Path, appid: int, nvram_kb: int) -> None:
    """Import startup-config.cfg (and private-config.cfg) into the NVRAM before IOU starts. Without a startup-config
    file the NVRAM is left as IOU last wrote it; without a private-config file the NVRAM's own is kept."""
    startup_file = directory / STARTUP_CONFIG
    if not startup_file.exists():
        return
    path = nvram_path(directory, appid)
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = b""
    private_file = directory / PRIVATE_CONFIG
    if private_file.exists():
        private: bytes | None = private_file.read_bytes()
    else:
        try:
            private = nvram.export_configs(old)[1] if old else None
        except nvram.NvramError:
            private = None
    image = nvram.import_configs(old, startup_file.read_bytes(), private, nvram_kb * 1024)
    atomic_write(path, image)


def nvram_configs(directory: Path, appid: int) -> tuple[str | None, str | None] | None:
    """(startup, private) text from the NVRAM, or None when there is no NVRAM or it cannot be read."""
    try:
        data = nvram_path(directory, appid).read_bytes()
        startup, private = nvram.export_configs(data)
    except (OSError, nvram.NvramError):
        return None
    return _text(startup), _text(private)


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    return data.decode("utf-8", errors="replace").replace("\r", "")


def save_configs(directory: Path, appid: int) -> None:
    """Export the NVRAM's configs into startup-config.cfg and private-config.cfg (the released 1.5.x form: no added
    `!` line; a private config that is only `end` is not written)."""
    configs = nvram_configs(directory, appid)
    if configs is None:
        return
    startup, private = configs
    if startup:
        atomic_write(directory / STARTUP_CONFIG, startup)
    if private and private.strip() not in ("", "end"):
        atomic_write(directory / PRIVATE_CONFIG, private)


PCAP_PROTOCOLS = {"DLT_EN10MB": "ethernet", "DLT_PPP_SERIAL": "ppp", "DLT_C_HDLC": "hdlc", "DLT_FRELAY": "fr"}


def iouyap_ini(appid: int, ports: list[tuple[int, int, Any]]) -> str:
    """iouyap's configuration: the NETMAP, then one section per connected port `(bay, unit, nio)` with its tunnel,
    TAP or Ethernet device and its capture."""
    lines = ["[default]", f"netmap = {NETMAP}", "base_port = 49000", ""]
    for bay, unit, nio in ports:
        lines.append(f"[{peer_id(appid)}:{bay}/{unit}]")
        if nio.type == "nio_udp":
            lines.append(f"tunnel_udp = {nio.lport}:{nio.rhost}:{nio.rport}")
        elif nio.type == "nio_tap":
            lines.append(f"tap_dev = {nio.tap_device}")
        elif nio.type == "nio_generic_ethernet":
            lines.append(f"eth_dev = {nio.ethernet_device}")
        if nio.capture_file is not None:
            lines.append(f"pcap_file = {nio.capture_file}")
            lines.append(f"pcap_protocol = {PCAP_PROTOCOLS.get(nio.capture_dlt or '', 'ethernet')}")
            lines.append("pcap_overwrite = y")
        lines.append("")
    return "\n".join(lines)
