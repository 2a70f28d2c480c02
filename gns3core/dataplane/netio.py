"""IOU's "netio" frame transport: UNIX datagram sockets in ``/tmp/netio<uid>/`` carrying an 8-byte header.

An IOU instance with application id ``N`` binds ``/tmp/netio<uid>/N`` and sends every frame of its port
``<bay>/<unit>`` to the node its NETMAP names for that port. GNS3 1.5 pointed every port at iouyap (node ``N+512``),
which translated between this framing and the port's NIO. Here :class:`NetioNode` plays that node: it binds the
node's socket once and hands out one :class:`NetioEndpoint` per port, which a bridge joins to the port's NIO like any
other endpoint. Frames arriving on the node's socket are sorted by destination port into the endpoints; frames a
bridge sends out of an endpoint get the header and go to the peer node's socket.

Header (all fields big-endian): destination node (2 bytes: id in bits 0-10, sub-id in bits 11-14, "sub-id present"
in bit 15), source node (same layout), destination port and source port (1 byte each: bay in bits 0-3, unit in bits
4-7), message type (1 = data), channel (0). Nothing here is IOU-specific beyond the framing, so any plugin whose
program speaks it (a VMware or Qemu helper, another IOU) can use it.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import struct
import threading
from pathlib import Path

from .endpoints import Endpoint, _grow_buffers, _reason
from .errors import DataPlaneError

log = logging.getLogger(__name__)

HEADER = struct.Struct(">HHBBBB")
HEADER_SIZE = HEADER.size  # 8
MAX_FRAME = 4096  # the largest frame IOU exchanges
MESSAGE_DATA = 1
NODE_ID_MASK = 0x07FF  # bits 0-10
MAX_NODE_ID = NODE_ID_MASK
MAX_BAY = 15
MAX_UNIT = 15
_RECEIVE_BUFFER = HEADER_SIZE + 65536


def netio_directory(uid: int | None = None) -> Path:
    """Where IOU and its peers keep their sockets: ``/tmp/netio<uid>`` for the user the processes run as."""
    return Path(f"/tmp/netio{os.geteuid() if uid is None else uid}")


def port_byte(bay: int, unit: int) -> int:
    """A port as the header writes it: bay in the low nibble, unit in the high nibble."""
    if not (0 <= bay <= MAX_BAY and 0 <= unit <= MAX_UNIT):
        raise DataPlaneError(f"netio port {bay}/{unit} is out of range (bays and units are 0-15)")
    return bay | (unit << 4)


def split_port(value: int) -> tuple[int, int]:
    """(bay, unit) of a header port byte."""
    return value & 0x0F, value >> 4


def pack_header(dst_node: int, dst_port: tuple[int, int], src_node: int, src_port: tuple[int, int],
                message: int = MESSAGE_DATA) -> bytes:
    """The 8 bytes that precede a data frame (no sub-ids: IOU's own nodes never use them)."""
    for node in (dst_node, src_node):
        if not 0 <= node <= MAX_NODE_ID:
            raise DataPlaneError(f"netio node id {node} is out of range (0-{MAX_NODE_ID})")
    return HEADER.pack(dst_node, src_node, port_byte(*dst_port), port_byte(*src_port), message, 0)


def unpack_header(data: bytes | bytearray | memoryview) -> tuple[int, tuple[int, int], int, tuple[int, int], int]:
    """(destination node id, destination port, source node id, source port, message type) of a datagram."""
    dst, src, dst_port, src_port, message, _channel = HEADER.unpack_from(data)
    return dst & NODE_ID_MASK, split_port(dst_port), src & NODE_ID_MASK, split_port(src_port), message


def prepare_directory(directory: Path) -> None:
    """Create the socket directory, or check that an existing one is really ours.

    ``/tmp`` is writable by everybody: a directory (or symlink) planted there by another user could receive our
    sockets, so anything that is not a plain directory owned by us and closed to others is refused.
    """
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise DataPlaneError(f"Cannot create the netio directory {directory}: {_reason(exc)}") from None
    try:
        info = os.lstat(directory)
    except OSError as exc:
        raise DataPlaneError(f"Cannot use the netio directory {directory}: {_reason(exc)}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise DataPlaneError(f"Cannot use the netio directory {directory}: it is not a directory (a symlink or a "
                             "file is in the way; remove it)")
    if info.st_uid != os.geteuid():
        raise DataPlaneError(f"Cannot use the netio directory {directory}: it belongs to user id {info.st_uid}, "
                             f"not to this server's user id {os.geteuid()}")
    if info.st_mode & 0o022:
        raise DataPlaneError(f"Cannot use the netio directory {directory}: others may write into it "
                             f"(mode {stat.S_IMODE(info.st_mode):o}); make it 0700")


def socket_in_use(path: Path | str) -> bool:
    """True when a process is bound to the datagram socket at ``path`` (a stale file left by a dead one is not)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_datagram_socket(path: Path | str) -> socket.socket:
    """Bind a UNIX datagram socket at ``path``, replacing a stale socket file but never a live one or a file."""
    path = str(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise DataPlaneError(f"Cannot use socket path {path}: {_reason(exc)}") from None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise DataPlaneError(f"Cannot bind socket {path}: a file that is not a socket is in the way")
        if socket_in_use(path):
            raise DataPlaneError(f"Cannot bind socket {path}: another program is bound to it")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise DataPlaneError(f"Cannot bind socket {path}: {_reason(exc)}") from None
    return sock


class NetioNode:
    """One netio node: the socket ``<directory>/<node_id>`` facing the program whose node id is ``peer_id``.

    Open it before the program starts (so its first frames are not lost) and close it after the program stopped.
    Frames for ports without an open endpoint, for another node, or no longer than the header are dropped.
    """

    def __init__(self, node_id: int, peer_id: int, directory: Path | str | None = None) -> None:
        for what, value in (("node id", node_id), ("peer node id", peer_id)):
            if not isinstance(value, int) or not 0 < value <= MAX_NODE_ID:
                raise DataPlaneError(f"netio {what} {value!r} is out of range (1-{MAX_NODE_ID})")
        self.node_id = node_id
        self.peer_id = peer_id
        self.directory = Path(directory) if directory is not None else netio_directory()
        self.path = self.directory / str(node_id)
        self.peer_path = str(self.directory / str(peer_id))
        self._sock: socket.socket | None = None
        self._inboxes: dict[int, socket.socket] = {}  # port byte -> write end of that port's endpoint
        self._thread: threading.Thread | None = None
        self._running = False
        self.frames_in = 0
        self.dropped = 0

    @property
    def opened(self) -> bool:
        return self._sock is not None

    def open(self) -> None:
        """Bind the node's socket and start sorting incoming frames; DataPlaneError when the host refuses."""
        if self._sock is not None:
            return
        prepare_directory(self.directory)
        sock = bind_datagram_socket(self.path)
        _grow_buffers(sock)
        self._sock = sock
        self._running = True
        self._thread = threading.Thread(target=self._sort_frames, name=f"netio-{self.node_id}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop sorting frames and remove the socket; endpoints still open stop receiving."""
        sock = self._sock
        if sock is None:
            return
        self._running = False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as waker:
                waker.sendto(b"", socket.MSG_DONTWAIT, str(self.path))
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5.0)
        self._thread = None
        self._sock = None
        sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def endpoint(self, bay: int, unit: int, peer_bay: int | None = None, peer_unit: int | None = None
                 ) -> NetioEndpoint:
        """A new (unopened) endpoint for local port ``bay/unit``, facing the peer's port of the same number unless
        another is given."""
        return NetioEndpoint(self, bay, unit, peer_bay, peer_unit)

    # -- used by the endpoints ---------------------------------------------------------------------------------------

    def _attach(self, port: int, inbox: socket.socket) -> None:
        if self._sock is None:
            raise DataPlaneError(f"netio node {self.node_id} is not open")
        if port in self._inboxes:
            bay, unit = split_port(port)
            raise DataPlaneError(f"netio port {bay}/{unit} of node {self.node_id} is already in use")
        self._inboxes[port] = inbox

    def _detach(self, port: int, inbox: socket.socket) -> None:
        if self._inboxes.get(port) is inbox:
            del self._inboxes[port]

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise OSError(errno.EBADF, f"netio node {self.node_id} is closed")
        return self._sock

    # -- the sorting thread ------------------------------------------------------------------------------------------

    def _sort_frames(self) -> None:
        sock = self._sock
        buf = bytearray(_RECEIVE_BUFFER)
        view = memoryview(buf)
        node_id = self.node_id
        inboxes = self._inboxes
        while self._running:
            try:
                size = sock.recv_into(buf)
            except OSError as exc:
                if not self._running:
                    break
                log.warning("netio node %s: receive error: %s", node_id, exc)
                continue
            if size <= HEADER_SIZE:
                continue
            if (buf[0] << 8 | buf[1]) & NODE_ID_MASK != node_id or buf[6] != MESSAGE_DATA:
                self.dropped += 1
                continue
            inbox = inboxes.get(buf[4])
            if inbox is None:
                self.dropped += 1
                continue
            try:
                inbox.send(view[HEADER_SIZE:size], socket.MSG_DONTWAIT)
                self.frames_in += 1
            except OSError:
                self.dropped += 1  # the port's bridge is not keeping up, or the endpoint just closed


class NetioEndpoint(Endpoint):
    """One port of a :class:`NetioNode`: bare frames in and out, as a bridge wants them."""

    kind = "netio"

    def __init__(self, node: NetioNode | None, bay: int, unit: int, peer_bay: int | None = None,
                 peer_unit: int | None = None) -> None:
        super().__init__()
        self.node = node
        self.bay = bay
        self.unit = unit
        self.peer_bay = bay if peer_bay is None else peer_bay
        self.peer_unit = unit if peer_unit is None else peer_unit
        self.port = port_byte(bay, unit)
        port_byte(self.peer_bay, self.peer_unit)
        self._header = b""
        self._peer_path = ""
        self._out: socket.socket | None = None  # the node's socket (frames leave from the node's address)
        self._inbox: socket.socket | None = None  # write end, fed by the node's sorting thread
        self._read: socket.socket | None = None  # read end, read by the bridge
        if node is not None:
            self._header = pack_header(node.peer_id, (self.peer_bay, self.peer_unit), node.node_id, (bay, unit))
            self._peer_path = node.peer_path

    def open(self) -> None:
        if self.node is None:
            raise DataPlaneError("A netio endpoint needs its node")
        read, inbox = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            _grow_buffers(read)
            self.node._attach(self.port, inbox)
            self._out = self.node._socket()
        except (DataPlaneError, OSError) as exc:
            read.close()
            inbox.close()
            if isinstance(exc, DataPlaneError):
                raise
            raise DataPlaneError(f"netio port {self.bay}/{self.unit}: {_reason(exc)}") from None
        self._use(read, inbox)

    def _use(self, read: socket.socket, inbox: socket.socket | None) -> None:
        self._read, self._inbox = read, inbox
        self.recv_into = read.recv_into  # bound C method on the relay's hot path
        self._opened = True

    def recv_into(self, buf: bytearray) -> int:  # replaced by the socket's method once open
        if self._read is None:
            raise OSError(errno.EBADF, "endpoint is closed")
        return self._read.recv_into(buf)

    def try_recv_into(self, buf: bytearray) -> int:
        return self._read.recv_into(buf, 0, socket.MSG_DONTWAIT)

    def send(self, data: bytes | memoryview) -> None:
        if len(data) > MAX_FRAME:
            raise OSError(errno.EMSGSIZE, f"frame of {len(data)} bytes is larger than netio's {MAX_FRAME}")
        # The program may be restarting or slow: never block the bridge, lose the frame like a congested link.
        self._out.sendmsg([self._header, data], [], socket.MSG_DONTWAIT, self._peer_path)

    def interrupt(self) -> None:
        inbox = self._inbox
        if inbox is not None:
            try:
                inbox.send(b"", socket.MSG_DONTWAIT)  # a zero-length datagram: recv_into returns 0
            except OSError:
                pass

    def shutdown(self) -> None:
        if self._read is not None:
            try:
                self._read.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.interrupt()

    def take_over(self, old: Endpoint) -> bool:
        if not (isinstance(old, NetioEndpoint) and old._read is not None and old.node is self.node
                and old.port == self.port and old._header == self._header):
            return False
        read, inbox, out = old._read, old._inbox, old._out
        old._read = old._inbox = old._out = None
        old.__dict__.pop("recv_into", None)
        old._opened = False
        self._out = out
        self._use(read, inbox)
        return True

    def close(self) -> None:
        read, inbox = self._read, self._inbox
        self._read = self._inbox = self._out = None
        self.__dict__.pop("recv_into", None)
        self._opened = False
        if inbox is not None and self.node is not None:
            self.node._detach(self.port, inbox)
        for sock in (inbox, read):
            if sock is not None:
                sock.close()

    def describe(self) -> dict:
        node = self.node
        return {"type": self.kind, "node": node.node_id if node else None, "peer": node.peer_id if node else None,
                "port": f"{self.bay}/{self.unit}"}

    def init_args(self) -> dict:
        return {"node": None, "bay": self.bay, "unit": self.unit, "peer_bay": self.peer_bay,
                "peer_unit": self.peer_unit}

    def export(self) -> tuple[list[int], dict]:
        # A worker process reads the port's frames from the read end and sends from a duplicate of the node's
        # socket; the node itself (and its sorting thread) stays in the server, feeding the same inbox.
        fds = [self._read.fileno(), self._out.fileno(), self._inbox.fileno()]
        return fds, {"header": self._header.hex(), "peer": self._peer_path}

    def _adopt(self, fds: list[int], state: dict) -> None:
        self._header = bytes.fromhex(state["header"])
        self._peer_path = state["peer"]
        self._out = socket.socket(fileno=fds[1])
        read = socket.socket(fileno=fds[0])
        read.setblocking(True)
        self._use(read, socket.socket(fileno=fds[2]))  # the write end only serves to wake the reader
