"""Is vpcs listening on its console port yet? Asked of the kernel (sock_diag), without connecting.

A connection would be accepted by vpcs as its console client and swallow the welcome banner meant for the user, and
reading /proc/net/tcp costs milliseconds once a few hundred sockets exist. A sock_diag exact lookup costs ~20 us.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
TCP_LISTEN = 10
_NO_COOKIE = 0xFFFFFFFF
_INODE_OFFSET = 16 + 4 + 48 + 16  # nlmsghdr, inet_diag_msg head, sockid, expires/rqueue/wqueue/uid


class ConsoleProbe:
    """One netlink socket, reused for every question; `listener()` returns None when the kernel cannot answer."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self.available = True
        self._seq = 0

    def _socket(self) -> socket.socket | None:
        if self._sock is None and self.available:
            try:
                self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                                           NETLINK_SOCK_DIAG)
            except OSError:
                self.available = False
        return self._sock

    def listener(self, port: int) -> int | None:
        """Inode of the socket listening on 0.0.0.0:`port` (as vpcs binds), 0 when none, None when unknown."""
        sock = self._socket()
        if sock is None:
            return None
        self._seq += 1
        sockid = struct.pack("!HH16s16s", port, 0, bytes(16), bytes(16)) + struct.pack("=III", 0, _NO_COOKIE,
                                                                                          _NO_COOKIE)
        request = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN) + sockid
        header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, self._seq, 0)
        try:
            sock.send(header + request)
            while True:
                reply = sock.recv(8192)
                _length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", reply)
                if seq == self._seq:
                    break
        except BlockingIOError:
            return None
        except OSError:
            self.close()
            self.available = False
            return None
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", reply, 16)
            return 0 if code == -errno.ENOENT else None
        _family, state = struct.unpack_from("=BB", reply, 16)
        if state != TCP_LISTEN:
            return 0
        (inode,) = struct.unpack_from("=I", reply, _INODE_OFFSET)
        return inode

    def listens(self, port: int, pid: int) -> bool | None:
        """Whether process `pid` itself listens on `port` (another program squatting the port does not count)."""
        inode = self.listener(port)
        if not inode:
            return inode if inode is None else False
        return inode in socket_inodes(pid)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets a process holds (a handful of fds for vpcs)."""
    inodes = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes
