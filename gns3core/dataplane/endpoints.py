"""Link endpoints ("NIOs") a bridge joins: UDP tunnels, TAP devices, raw Ethernet, UNIX sockets and veth pairs.

An endpoint is a description until :meth:`Endpoint.open` acquires the host resource; the bridge then reads it from
one thread (``recv_into`` blocks without polling, and returns 0 when :meth:`Endpoint.interrupt` wakes it) and writes
it from another (``send``). All host refusals become :class:`DataPlaneError` with a message a user can act on.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import stat
import struct
import subprocess
from collections.abc import Callable

from .errors import DataPlaneError
from .macmap import MacMap, parse_mac

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_IGNORE_OUTGOING = 23
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
SOCKET_BUFFER = 4 * 1024 * 1024
IFNAMSIZ = 16


def _reason(exc: OSError) -> str:
    """Short human text for an OSError (strerror without the Python noise)."""
    return exc.strerror or str(exc)


def _check_ifname(name: str, what: str = "Interface") -> None:
    """Reject names the kernel would refuse, before touching the host."""
    if not isinstance(name, str) or not name or len(name) >= IFNAMSIZ or any(c in name for c in "/ \t\n:") \
            or name in (".", ".."):
        raise DataPlaneError(f"{what} name {name!r} is not valid: use 1-15 characters without '/', ':' or spaces")


def interface_exists(name: str) -> bool:
    """True if a network interface of that name exists in this process's network namespace."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def set_link_up(name: str) -> None:
    """Bring an interface of the current namespace administratively up (ioctl, no subprocess)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", name.encode(), 0)
        try:
            result = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request)
            flags = struct.unpack("16sH22x", result)[1]
            if not flags & IFF_UP:
                fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags | IFF_UP))
        except OSError as exc:
            raise DataPlaneError(f"Cannot bring interface {name} up: {_reason(exc)}") from None


def run_ip(args: list[str], what: str, *, netns: str | None = None, pid: int | None = None) -> str:
    """Run one ``ip`` command from an argument list (never a shell string); DataPlaneError with ip's message on failure.

    ``netns`` runs it in a named namespace (``ip -n``), ``pid`` in the namespace of that process (``nsenter``).
    """
    command = ["ip"]
    if netns:
        command += ["-n", netns]
    command += args
    if pid is not None:
        command = ["nsenter", "-t", str(pid), "-n", *command]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except FileNotFoundError:
        raise DataPlaneError(f"{what}: the '{command[0]}' command is not installed "
                             "(it comes with iproute2 / util-linux)") from None
    except subprocess.TimeoutExpired:
        raise DataPlaneError(f"{what}: '{' '.join(command)}' did not finish within 20 s") from None
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
        raise DataPlaneError(f"{what}: {message} (command: {' '.join(command)})")
    return proc.stdout


class Endpoint:
    """Base class: one side of a bridge."""

    kind = "endpoint"

    def __init__(self) -> None:
        self._opened = False

    @property
    def opened(self) -> bool:
        """True between a successful open() and close()."""
        return self._opened

    def open(self) -> None:
        """Acquire the host resource; raises DataPlaneError when the host refuses."""
        raise NotImplementedError

    def recv_into(self, buf: bytearray) -> int:
        """Block until a frame arrives (returns its length) or until interrupt() (returns 0)."""
        raise NotImplementedError

    def try_recv_into(self, buf: bytearray) -> int:
        """Return a frame if one is queued, else raise BlockingIOError (lets the bridge flush captures when idle)."""
        raise NotImplementedError

    def send(self, data: bytes | memoryview) -> None:
        """Send one frame; OSError means it was not delivered (the bridge counts it)."""
        raise NotImplementedError

    def interrupt(self) -> None:
        """Wake a reader blocked in recv_into so it can notice it must stop."""

    def shutdown(self) -> None:
        """Stronger wake-up used when closing: the reader is not going to read this endpoint again."""
        self.interrupt()

    def selectable(self) -> int | None:
        """A descriptor that polls readable when a frame waits (then read with try_recv_into), or None: such an
        endpoint can be forwarded by a poller thread that serves many bridges (see poller.py)."""
        return None

    def take_over(self, old: Endpoint) -> bool:
        """Adopt ``old``'s open resource when both describe the same local resource (e.g. same UDP port).

        Lets a bridge swap a NIO whose destination changed without rebinding, which would fail (port in use)
        or lose queued frames. Returns False when the resources differ.
        """
        return False

    def close(self) -> None:
        """Release everything open() acquired; safe to call twice."""
        self._opened = False

    def describe(self) -> dict:
        """A JSON-friendly description (for logs and the API)."""
        return {"type": self.kind}

    def export(self) -> tuple[list[int], dict]:
        """The open descriptors and the state a worker process needs to drive this endpoint (see worker.py)."""
        raise DataPlaneError(f"{type(self).__name__} cannot be handed to a worker process")

    def _adopt(self, fds: list[int], state: dict) -> None:
        """Rebuild from export() in a worker process; the copy borrows the resource and never removes it."""
        raise NotImplementedError

    def init_args(self) -> dict:
        """Keyword arguments that recreate this (unopened) endpoint."""
        return {}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "type")
        return f"{type(self).__name__}({fields})"


class _PolledEndpoint(Endpoint):
    """Endpoint on a non-blocking fd whose blocking read cannot be interrupted: waits with poll() on the fd
    plus an eventfd that interrupt() signals (no timeouts, so idle endpoints cost no CPU)."""

    def __init__(self) -> None:
        super().__init__()
        self._event_fd = -1
        self._poller: select.poll | None = None

    def _setup_wait(self, fd: int) -> None:
        self._event_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)
        self._poller.register(self._event_fd, select.POLLIN)

    def _teardown_wait(self) -> None:
        if self._event_fd >= 0:
            os.close(self._event_fd)
        self._event_fd = -1
        self._poller = None

    def _move_wait(self, old: _PolledEndpoint) -> None:
        self._event_fd, self._poller = old._event_fd, old._poller
        old._event_fd, old._poller = -1, None

    def recv_into(self, buf: bytearray) -> int:
        try:
            return self.try_recv_into(buf)
        except BlockingIOError:
            pass
        poller = self._poller
        if poller is None:
            raise OSError(errno.EBADF, "endpoint is closed")
        for fd, _events in poller.poll():
            if fd == self._event_fd:
                try:
                    os.eventfd_read(self._event_fd)
                except BlockingIOError:
                    pass
        return 0

    def interrupt(self) -> None:
        if self._event_fd >= 0:
            try:
                os.eventfd_write(self._event_fd, 1)
            except OSError:
                pass


class _DatagramEndpoint(Endpoint):
    """Endpoints on one datagram socket (UDP, UNIX): a blocking reader woken by a zero-length datagram."""

    def __init__(self) -> None:
        super().__init__()
        self._sock: socket.socket | None = None

    def _use(self, sock: socket.socket) -> None:
        self._sock = sock
        self.recv_into = sock.recv_into  # bound C method: the relay's hot path skips a Python frame
        self._opened = True

    def _take_socket(self, old: _DatagramEndpoint) -> None:
        """Continue on the socket `old` has open (a swap to the same local resource cannot fail to rebind)."""
        sock, old._sock = old._sock, None
        old.__dict__.pop("recv_into", None)
        old._opened = False
        self._use(sock)

    def _adopt_socket(self, fd: int) -> None:
        sock = socket.socket(fileno=fd)
        sock.setblocking(True)
        self._use(sock)

    def recv_into(self, buf: bytearray) -> int:  # replaced by the socket's method once open
        if self._sock is None:
            raise OSError(errno.EBADF, "endpoint is closed")
        return self._sock.recv_into(buf)

    def try_recv_into(self, buf: bytearray) -> int:
        return self._sock.recv_into(buf, 0, socket.MSG_DONTWAIT)

    def selectable(self) -> int | None:
        return self._sock.fileno() if self._sock is not None else None

    def shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # unconnected sockets report ENOTCONN but the reader is woken all the same

    def _close_socket(self) -> bool:
        """Close the socket; True when there was one."""
        sock, self._sock = self._sock, None
        self.__dict__.pop("recv_into", None)
        self._opened = False
        if sock is None:
            return False
        sock.close()
        return True


class UDPEndpoint(_DatagramEndpoint):
    """UDP tunnel (``nio_udp``): bind ``lport``, send each frame as one datagram to ``rhost:rport``.

    The socket is left unconnected so it accepts frames from any sender (as emulators expect) and never reports
    ICMP errors when the peer is not up yet. ``lport=0`` picks a free port (read ``lport`` after open).
    """

    kind = "nio_udp"

    def __init__(self, lport: int, rhost: str, rport: int, laddr: str | None = None) -> None:
        super().__init__()
        for name, port in (("lport", lport), ("rport", rport)):
            if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
                raise DataPlaneError(f"UDP {name} must be an integer between 0 and 65535, got {port!r}")
        self.lport = lport
        self.rhost = rhost
        self.rport = rport
        self.laddr = laddr
        self._dest: tuple | None = None
        self._wake: tuple | None = None
        self._family = socket.AF_INET

    def _resolve(self) -> tuple[int, tuple]:
        """(family of the socket, destination): the destination's own family, or the local address's family when
        ``laddr`` is set; an IPv4 destination of an IPv6 socket (dual-stack ``::``) becomes IPv4-mapped."""
        try:
            infos = socket.getaddrinfo(self.rhost, self.rport, type=socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise DataPlaneError(f"Could not resolve UDP destination {self.rhost}: {exc}") from None
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        family, _type, _proto, _name, sockaddr = infos[0]
        if not self.laddr:
            return family, sockaddr
        try:
            local_family = socket.getaddrinfo(self.laddr, None, type=socket.SOCK_DGRAM)[0][0]
        except (socket.gaierror, UnicodeError) as exc:
            raise DataPlaneError(f"Could not resolve local UDP address {self.laddr}: {exc}") from None
        if local_family == family:
            return family, sockaddr
        if local_family == socket.AF_INET6 and family == socket.AF_INET and self.laddr == "::":
            return local_family, (f"::ffff:{sockaddr[0]}", sockaddr[1], 0, 0)
        raise DataPlaneError(f"Cannot send from local address {self.laddr} to {self.rhost} (another address family): "
                             "bind all addresses (::) or give an rhost of the local address's family")

    def open(self) -> None:
        family, dest = self._resolve()
        laddr = self.laddr or ""
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6 and laddr == "::":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 peers too, whatever the sysctl
            sock.bind((laddr, self.lport))
        except OSError as exc:
            sock.close()
            where = f"{laddr or 'any address'}"
            if exc.errno == errno.EADDRINUSE:
                raise DataPlaneError(f"UDP port {self.lport} is already in use on {where}; "
                                     "choose another lport or stop what holds it") from None
            raise DataPlaneError(f"Cannot bind UDP port {self.lport} on {where}: {_reason(exc)}") from None
        _grow_buffers(sock)
        self.lport = sock.getsockname()[1]
        if family == socket.AF_INET:
            wake_host = laddr if laddr not in ("", "0.0.0.0") else "127.0.0.1"
        elif laddr == "::":
            wake_host = "::ffff:127.0.0.1"  # dual-stack: IPv4 loopback works even where lo has no IPv6
        else:
            wake_host = laddr or "::1"
        self._dest, self._family = dest, family
        self._wake = (wake_host, self.lport)
        self._use(sock)

    def take_over(self, old: Endpoint) -> bool:
        if not (isinstance(old, UDPEndpoint) and old._sock is not None and old.lport == self.lport
                and (old.laddr or "") == (self.laddr or "")):
            return False
        family, dest = self._resolve()
        if family != old._family:
            return False
        self._dest, self._family, self._wake = dest, old._family, old._wake
        self._take_socket(old)
        return True

    def send(self, data: bytes | memoryview) -> None:
        self._sock.sendto(data, self._dest)

    def interrupt(self) -> None:
        # A zero-length datagram to ourselves wakes the blocked recv; 0 is never a valid frame length.
        if self._wake is None:
            return
        try:
            with socket.socket(self._family, socket.SOCK_DGRAM) as waker:
                waker.sendto(b"", self._wake)
        except OSError:
            pass

    def close(self) -> None:
        self._close_socket()

    def describe(self) -> dict:
        return {"type": self.kind, "lport": self.lport, "rhost": self.rhost, "rport": self.rport}

    def init_args(self) -> dict:
        return {"lport": self.lport, "rhost": self.rhost, "rport": self.rport, "laddr": self.laddr}

    def export(self) -> tuple[list[int], dict]:
        return [self._sock.fileno()], {"dest": list(self._dest), "wake": list(self._wake), "family": self._family}

    def _adopt(self, fds: list[int], state: dict) -> None:
        self._dest, self._wake, self._family = tuple(state["dest"]), tuple(state["wake"]), state["family"]
        self._adopt_socket(fds[0])



class MacMappedUDPEndpoint(UDPEndpoint):
    """The emulator's side of a relay for an emulator whose MAC address cannot be chosen (the real vpcs): a UDP tunnel
    to the emulator whose frames are translated between its own address ``inside_mac`` and the address the lab sees,
    ``outside_mac`` (see macmap.py). Frames received from the emulator leave with the outside address; frames sent
    to it get its own address back."""

    kind = "nio_udp_mac_mapped"

    def __init__(self, lport: int, rhost: str, rport: int, laddr: str | None = None, *, inside_mac: str,
                 outside_mac: str) -> None:
        super().__init__(lport, rhost, rport, laddr=laddr)
        try:
            self.mapping = MacMap(parse_mac(inside_mac), parse_mac(outside_mac))
        except ValueError as exc:
            raise DataPlaneError(f"Cannot translate MAC addresses: {exc}") from None
        self.inside_mac, self.outside_mac = inside_mac, outside_mac

    def _use(self, sock: socket.socket) -> None:
        super()._use(sock)
        receive, leaving = sock.recv_into, self.mapping.leaving

        def recv_into(buf: bytearray) -> int:
            size = receive(buf)
            if size > 0:
                _translate_in_place(buf, size, leaving)
            return size

        self.recv_into = recv_into

    def try_recv_into(self, buf: bytearray) -> int:
        size = super().try_recv_into(buf)
        if size > 0:
            _translate_in_place(buf, size, self.mapping.leaving)
        return size

    def take_over(self, old: Endpoint) -> bool:
        return isinstance(old, MacMappedUDPEndpoint) and old.mapping.inside == self.mapping.inside \
            and old.mapping.outside == self.mapping.outside and super().take_over(old)

    def send(self, data: bytes | memoryview) -> None:
        frame = bytearray(data)
        self.mapping.arriving(frame)
        self._sock.sendto(frame, self._dest)

    def describe(self) -> dict:
        return {**super().describe(), "type": self.kind, "inside_mac": self.inside_mac,
                "outside_mac": self.outside_mac}

    def init_args(self) -> dict:
        return {**super().init_args(), "inside_mac": self.inside_mac, "outside_mac": self.outside_mac}


def _translate_in_place(buf: bytearray, size: int, translate: Callable[[bytearray], None]) -> None:
    """Apply a MacMap direction to the first `size` bytes of a receive buffer."""
    frame = buf[:size]
    translate(frame)
    buf[:size] = frame


class UnixEndpoint(_DatagramEndpoint):
    """UNIX datagram socket (``nio_unix``): bound to ``local_file``, sends to ``remote_file``."""

    kind = "nio_unix"

    def __init__(self, local_file: str, remote_file: str) -> None:
        super().__init__()
        self.local_file = local_file
        self.remote_file = remote_file
        self._borrowed = False

    def open(self) -> None:
        try:
            mode = os.stat(self.local_file).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise DataPlaneError(f"Cannot use UNIX socket path {self.local_file}: {_reason(exc)}") from None
        if mode is not None:
            if not stat.S_ISSOCK(mode):
                raise DataPlaneError(f"Cannot bind UNIX socket {self.local_file}: a file that is not a socket "
                                     "is in the way")
            os.unlink(self.local_file)  # a stale socket left by a previous run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(self.local_file)
        except OSError as exc:
            sock.close()
            raise DataPlaneError(f"Cannot bind UNIX socket {self.local_file}: {_reason(exc)}") from None
        _grow_buffers(sock)
        self._use(sock)

    def take_over(self, old: Endpoint) -> bool:
        if not (isinstance(old, UnixEndpoint) and old._sock is not None and old.local_file == self.local_file):
            return False
        self._take_socket(old)
        return True

    def send(self, data: bytes | memoryview) -> None:
        # Non-blocking: a peer that stops reading loses frames like a congested link instead of stalling us.
        self._sock.sendto(data, socket.MSG_DONTWAIT, self.remote_file)

    def interrupt(self) -> None:
        if self._sock is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as waker:
                waker.sendto(b"", socket.MSG_DONTWAIT, self.local_file)
        except OSError:
            pass

    def close(self) -> None:
        if self._close_socket() and not self._borrowed:
            try:
                os.unlink(self.local_file)
            except OSError:
                pass

    def describe(self) -> dict:
        return {"type": self.kind, "local_file": self.local_file, "remote_file": self.remote_file}

    def init_args(self) -> dict:
        return {"local_file": self.local_file, "remote_file": self.remote_file}

    def export(self) -> tuple[list[int], dict]:
        return [self._sock.fileno()], {}

    def _adopt(self, fds: list[int], state: dict) -> None:
        self._borrowed = True
        self._adopt_socket(fds[0])


class TAPEndpoint(_PolledEndpoint):
    """Host TAP device (``nio_tap``) through ``/dev/net/tun`` with IFF_TAP|IFF_NO_PI.

    Attaches to an existing (persistent) tap of that name, or creates one, brings it up, and lets the kernel remove
    it when the file descriptor closes.
    """

    kind = "nio_tap"

    def __init__(self, name: str, device: str = "/dev/net/tun") -> None:
        super().__init__()
        _check_ifname(name, "TAP interface")
        self.name = name
        self.device = device
        self.created = False
        self._fd = -1

    def open(self) -> None:
        existed = interface_exists(self.name)
        try:
            fd = os.open(self.device, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise DataPlaneError(f"Cannot open TAP interface {self.name}: {self.device} does not exist "
                                 "(load the 'tun' kernel module or give the container /dev/net/tun)") from None
        except OSError as exc:
            raise DataPlaneError(f"Cannot open TAP interface {self.name}: {self.device}: {_reason(exc)} "
                                 "(needs root or CAP_NET_ADMIN)") from None
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", self.name.encode(), IFF_TAP | IFF_NO_PI))
        except OSError as exc:
            os.close(fd)
            if exc.errno == errno.EPERM:
                hint = "operation not permitted: needs root or CAP_NET_ADMIN"
            elif exc.errno == errno.EBUSY:
                hint = "it is already in use by another program"
            elif exc.errno == errno.EINVAL and existed:
                hint = "an interface of that name exists and is not a TAP device"
            else:
                hint = _reason(exc)
            raise DataPlaneError(f"Cannot attach to TAP interface {self.name}: {hint}") from None
        self.created = not existed
        try:
            if self.created:
                set_link_up(self.name)
            self._setup_wait(fd)
        except (DataPlaneError, OSError):
            os.close(fd)
            raise
        self._fd = fd
        self._opened = True

    def take_over(self, old: Endpoint) -> bool:
        if not (isinstance(old, TAPEndpoint) and old._fd >= 0 and old.name == self.name):
            return False
        self._fd, old._fd = old._fd, -1
        self.created = old.created
        self._move_wait(old)
        old._opened, self._opened = False, True
        return True

    def try_recv_into(self, buf: bytearray) -> int:
        return os.readv(self._fd, (buf,))

    def send(self, data: bytes | memoryview) -> None:
        os.write(self._fd, data)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)  # a tap we created disappears with its last descriptor
        self._teardown_wait()
        self._opened = False

    def describe(self) -> dict:
        return {"type": self.kind, "tap_device": self.name}

    def init_args(self) -> dict:
        return {"name": self.name, "device": self.device}

    def export(self) -> tuple[list[int], dict]:
        return [self._fd], {}

    def _adopt(self, fds: list[int], state: dict) -> None:
        self._fd = fds[0]
        os.set_blocking(self._fd, False)
        self._setup_wait(self._fd)
        self._opened = True


class EthernetEndpoint(_PolledEndpoint):
    """Host interface through a raw AF_PACKET socket (``nio_generic_ethernet`` / ``nio_linux_ethernet``).

    The interface is put in promiscuous mode for as long as the socket lives, and frames the host itself sends out
    of it are ignored so they are not looped back into the topology.
    """

    kind = "nio_generic_ethernet"

    def __init__(self, ifname: str) -> None:
        super().__init__()
        _check_ifname(ifname, "Ethernet interface")
        self.ifname = ifname
        self._sock: socket.socket | None = None

    def _open_socket(self) -> None:
        try:
            ifindex = socket.if_nametoindex(self.ifname)
        except OSError:
            raise DataPlaneError(f"Ethernet interface {self.ifname} does not exist") from None
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise DataPlaneError(f"Cannot open a raw socket on {self.ifname}: operation not permitted "
                                 "(needs root or CAP_NET_RAW)") from None
        except OSError as exc:
            raise DataPlaneError(f"Cannot open a raw socket on {self.ifname}: {_reason(exc)}") from None
        try:
            sock.bind((self.ifname, ETH_P_ALL))
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0,
                                                                           b""))
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:
                pass  # kernels before 4.20: host-sent frames are then bridged too
            sock.setblocking(False)
            _grow_buffers(sock)
            self._setup_wait(sock.fileno())
        except OSError as exc:
            sock.close()
            if exc.errno == errno.ENODEV:
                raise DataPlaneError(f"Ethernet interface {self.ifname} does not exist") from None
            raise DataPlaneError(f"Cannot bind a raw socket to {self.ifname}: {_reason(exc)}") from None
        self._sock = sock
        self._opened = True

    def open(self) -> None:
        self._open_socket()

    def take_over(self, old: Endpoint) -> bool:
        if not (type(old) is type(self) and old._sock is not None and old.ifname == self.ifname):
            return False
        self._sock, old._sock = old._sock, None
        self._move_wait(old)
        old._opened, self._opened = False, True
        return True

    def try_recv_into(self, buf: bytearray) -> int:
        return self._sock.recv_into(buf)

    def send(self, data: bytes | memoryview) -> None:
        self._sock.send(data)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self._teardown_wait()
        self._opened = False

    def describe(self) -> dict:
        return {"type": self.kind, "ethernet_device": self.ifname}

    def init_args(self) -> dict:
        return {"ifname": self.ifname}

    def export(self) -> tuple[list[int], dict]:
        return [self._sock.fileno()], {}

    def _adopt(self, fds: list[int], state: dict) -> None:
        self._sock = socket.socket(fileno=fds[0])
        self._sock.setblocking(False)
        self._setup_wait(self._sock.fileno())
        self._opened = True


class VethEndpoint(EthernetEndpoint):
    """A veth pair made for the link: the near end (``host_name``) is read raw here, the far end (``peer_name``)
    is moved into a network namespace (a name from ``ip netns``, or the namespace of process ``pid``, e.g. a
    container), optionally renamed there (``peer_rename``, e.g. ``eth0``) and brought up. Closing deletes the pair.
    """

    kind = "veth"

    def __init__(self, host_name: str, peer_name: str, netns: str | None = None, pid: int | None = None,
                 peer_rename: str | None = None) -> None:
        super().__init__(host_name)
        _check_ifname(peer_name, "veth peer")
        if peer_rename is not None:
            _check_ifname(peer_rename, "veth peer")
        if netns is not None and pid is not None:
            raise DataPlaneError("Give either netns or pid for a veth peer, not both")
        if netns is not None and (not netns or "/" in netns or netns in (".", "..")):
            raise DataPlaneError(f"Network namespace name {netns!r} is not valid")
        if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0):
            raise DataPlaneError(f"Process id {pid!r} is not valid")
        self.host_name = host_name
        self.peer_name = peer_name
        self.netns = netns
        self.pid = pid
        self.peer_rename = peer_rename
        self._created = False

    def open(self) -> None:
        if self.netns is not None and not os.path.exists(os.path.join("/run/netns", self.netns)):
            raise DataPlaneError(f"Network namespace {self.netns} does not exist (see 'ip netns list')")
        if self.pid is not None and not os.path.exists(f"/proc/{self.pid}/ns/net"):
            raise DataPlaneError(f"Process {self.pid} does not exist, so its network namespace cannot be used")
        if interface_exists(self.host_name):
            raise DataPlaneError(f"Cannot create veth {self.host_name}: an interface of that name already exists")
        if (self.netns is None and self.pid is None) and interface_exists(self.peer_name):
            raise DataPlaneError(f"Cannot create veth peer {self.peer_name}: an interface of that name already exists")
        what = f"Cannot create veth pair {self.host_name}/{self.peer_name}"
        run_ip(["link", "add", self.host_name, "type", "veth", "peer", "name", self.peer_name], what)
        self._created = True
        try:
            final = self.peer_rename or self.peer_name
            if self.netns is not None or self.pid is not None:
                target = self.netns if self.netns is not None else str(self.pid)
                run_ip(["link", "set", "dev", self.peer_name, "netns", target],
                       f"Cannot move {self.peer_name} into network namespace {target}")
            if self.peer_rename and self.peer_rename != self.peer_name:
                run_ip(["link", "set", "dev", self.peer_name, "name", self.peer_rename],
                       f"Cannot rename {self.peer_name} to {self.peer_rename}", netns=self.netns, pid=self.pid)
            run_ip(["link", "set", "dev", final, "up"], f"Cannot bring {final} up", netns=self.netns, pid=self.pid)
            set_link_up(self.host_name)
            self._open_socket()
        except DataPlaneError:
            self._delete()
            raise

    def _delete(self) -> None:
        if self._created:
            self._created = False
            try:
                run_ip(["link", "del", "dev", self.host_name], f"Cannot delete veth {self.host_name}")
            except DataPlaneError:
                pass  # already gone, e.g. the container holding the peer exited

    def take_over(self, old: Endpoint) -> bool:
        if not (isinstance(old, VethEndpoint) and old._sock is not None and old.describe() == self.describe()):
            return False
        if super().take_over(old):
            self._created, old._created = old._created, False
            return True
        return False

    def close(self) -> None:
        super().close()
        self._delete()

    def describe(self) -> dict:
        return {"type": self.kind, "host_name": self.host_name, "peer_name": self.peer_name, "netns": self.netns,
                "pid": self.pid, "peer_rename": self.peer_rename}

    def init_args(self) -> dict:
        return {"host_name": self.host_name, "peer_name": self.peer_name, "netns": self.netns, "pid": self.pid,
                "peer_rename": self.peer_rename}


def _grow_buffers(sock: socket.socket) -> None:
    """Large socket buffers absorb bursts while the relay thread waits for the GIL (best effort)."""
    for force, plain in ((getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF),
                         (getattr(socket, "SO_SNDBUFFORCE", 32), socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
        except OSError:
            try:
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
            except OSError:
                pass
