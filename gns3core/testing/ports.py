"""Free ports for tests that start programs themselves (outside the server's own port manager)."""

from __future__ import annotations

import random
import socket

_handed_out: set[int] = set()


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS considers free right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def udp_port_is_free(port: int, host: str = "0.0.0.0") -> bool:
    """Whether a UDP port can be bound as emulators bind it (any address, no SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_vpcs_udp_port(low: int = 30000, high: int = 39000) -> int:
    """A UDP port free together with port+9 (vpcs 0.5b2 binds lport+9 too), never handed out twice by this process."""
    for _ in range(1000):
        port = random.randrange(low, high)
        block = set(range(port, port + 10))
        if block & _handed_out:
            continue
        if udp_port_is_free(port) and udp_port_is_free(port + 9):
            _handed_out.update(block)
            return port
    raise RuntimeError(f"no free UDP port pair between {low} and {high}")
