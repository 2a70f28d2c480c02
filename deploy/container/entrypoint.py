#!/usr/bin/env python3
"""Entry point of the server's container image: one configuration file from the mounted one and the environment,
then `gns3server` on the given address with authentication on.

Environment (every one optional except the password):
  GNS3_PASSWORD  the API password (required: the container never serves without authentication)
  GNS3_USER      the API user (default: admin)
  GNS3_HOST      the address the API listens on (default: the configuration's `host`; Kubernetes passes the node's
                 address); consoles listen there too unless `allow_remote_console` is set
  GNS3_PORT      the API port (default: the configuration's `port`, else the server's 8000)
  GNS3_UDP_HOST  `[Server] udp_host` (default: all addresses)
  GNS3_MAC_BASE  `[Server] mac_base` (default: derived from the server identity kept in the data volume)
  GNS3_ENABLE_KVM  `[Qemu] enable_kvm` (true only where the container was given /dev/kvm)
  GNS3_CONFIG    the file to start from (default /etc/gns3/gns3_server.conf when it exists)
  GNS3_DATA      the data directory: projects and images live there unless the file says otherwise
                 (default /var/lib/gns3)
Arguments given to the container are passed on to gns3server (e.g. --debug).
"""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path

SERVER = "/opt/gns3/bin/gns3server"
RUNTIME_CONFIG = Path(os.environ.get("GNS3_RUNTIME_CONFIG", "/run/gns3/gns3_server.conf"))
ENVIRONMENT_KEYS = {"GNS3_HOST": "host", "GNS3_PORT": "port", "GNS3_UDP_HOST": "udp_host",
                    "GNS3_MAC_BASE": "mac_base"}


def compose(environ: dict[str, str]) -> configparser.RawConfigParser:
    """The configuration the server runs with; SystemExit with a message when something required is missing."""
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # keys keep their case, as the server reads them
    source = Path(environ.get("GNS3_CONFIG") or "/etc/gns3/gns3_server.conf")
    if source.is_file():
        parser.read(source, encoding="utf-8")
    elif environ.get("GNS3_CONFIG"):
        raise SystemExit(f"gns3-entrypoint: GNS3_CONFIG names {source}, which does not exist")
    if not parser.has_section("Server"):
        parser.add_section("Server")
    server = parser["Server"]
    for variable, key in ENVIRONMENT_KEYS.items():
        if environ.get(variable):
            server[key] = environ[variable]
    if environ.get("GNS3_ENABLE_KVM"):
        if not parser.has_section("Qemu"):
            parser.add_section("Qemu")
        parser["Qemu"]["enable_kvm"] = environ["GNS3_ENABLE_KVM"]
    password = environ.get("GNS3_PASSWORD") or server.get("password", "")
    if not password:
        raise SystemExit("gns3-entrypoint: set GNS3_PASSWORD (or [Server] password): this image always serves with "
                         "authentication on")
    server["auth"] = "true"
    server["user"] = environ.get("GNS3_USER") or server.get("user") or "admin"
    server["password"] = password
    if not server.get("host"):
        raise SystemExit("gns3-entrypoint: set GNS3_HOST (or [Server] host) to the address clients and the other "
                         "servers reach this one at")
    data = Path(environ.get("GNS3_DATA") or "/var/lib/gns3")
    server.setdefault("projects_path", str(data / "projects"))
    server.setdefault("images_path", str(data / "images"))
    return parser


def main(argv: list[str]) -> int:
    parser = compose(dict(os.environ))
    RUNTIME_CONFIG.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(RUNTIME_CONFIG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the password
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        parser.write(handle)
    for key in ("projects_path", "images_path"):
        Path(parser["Server"][key]).mkdir(parents=True, exist_ok=True)
    os.execv(SERVER, [SERVER, "--config", str(RUNTIME_CONFIG), *argv])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
