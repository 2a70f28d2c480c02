"""netio endpoints: IOU's 8-byte framing on UNIX datagram sockets, bridged to UDP (thread and process bridges)."""

from __future__ import annotations

import os
import socket

import pytest

from gns3core.dataplane import DataPlaneError, NetioNode, UDPEndpoint
from gns3core.dataplane.netio import pack_header, prepare_directory, unpack_header


class FakeIOU:
    """The program side of a netio node: bound at <dir>/<appid>, framing as IOU does."""

    def __init__(self, directory, appid: int) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(directory / str(appid)))
        self.sock.settimeout(5)
        self.directory = directory
        self.appid = appid

    def send(self, node: int, bay: int, unit: int, frame: bytes, dst: int | None = None) -> None:
        header = pack_header(node if dst is None else dst, (bay, unit), self.appid, (bay, unit))
        self.sock.sendto(header + frame, str(self.directory / str(node)))

    def recv(self) -> bytes:
        return self.sock.recv(65536)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def netio_dir(tmp_path):
    directory = tmp_path / "netio"
    prepare_directory(directory)
    return directory


def test_header_layout():
    header = pack_header(513, (2, 3), 1, (2, 3))
    assert header == bytes([0x02, 0x01, 0x00, 0x01, 0x32, 0x32, 0x01, 0x00])
    assert unpack_header(header) == (513, (2, 3), 1, (2, 3), 1)
    assert unpack_header(bytes([0x82, 0x01, 0, 1, 0x0F, 0, 1, 0]))[0] == 513  # a sub-id flag is not the id
    with pytest.raises(DataPlaneError):
        pack_header(513, (16, 0), 1, (0, 0))


@pytest.mark.asyncio
@pytest.mark.parametrize("process", [False, True])
async def test_netio_port_bridged_to_udp(dataplane, netio_dir, process):
    node = NetioNode(513, 1, netio_dir)
    node.open()
    iou = FakeIOU(netio_dir, 1)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    try:
        udp = UDPEndpoint(0, "127.0.0.1", peer.getsockname()[1])
        bridge = await dataplane.create_bridge("iou-0-1", node.endpoint(0, 1), udp, process=process)
        iou.send(513, 0, 1, b"frame from IOU")
        assert peer.recv(2048) == b"frame from IOU"  # the header is gone
        peer.sendto(b"frame to IOU", ("127.0.0.1", udp.lport))
        datagram = iou.recv()
        assert unpack_header(datagram) == (1, (0, 1), 513, (0, 1), 1) and datagram[8:] == b"frame to IOU"
        # Ignored: another port without a bridge, another destination node, a bare header.
        iou.send(513, 0, 2, b"no bridge here")
        iou.send(513, 0, 1, b"not for this node", dst=600)
        iou.sock.sendto(pack_header(513, (0, 1), 1, (0, 1)), str(netio_dir / "513"))
        iou.send(513, 0, 1, b"second")
        assert peer.recv(2048) == b"second"
        assert node.dropped == 2
        await dataplane.remove_bridge(bridge.name)
        assert node._inboxes == {}
    finally:
        peer.close()
        iou.close()
        node.close()
    assert not (netio_dir / "513").exists()


def test_node_refuses_a_live_socket_and_a_bad_directory(netio_dir, tmp_path):
    iou = FakeIOU(netio_dir, 513)  # someone else is node 513
    try:
        with pytest.raises(DataPlaneError, match="another program is bound"):
            NetioNode(513, 1, netio_dir).open()
    finally:
        iou.close()
    stale = NetioNode(513, 1, netio_dir)
    stale.open()  # the file left behind is a stale socket: replaced
    stale.close()
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o777)
    os.chmod(open_dir, 0o777)
    with pytest.raises(DataPlaneError, match="others may write"):
        NetioNode(513, 1, open_dir).open()
    link = tmp_path / "link"
    link.symlink_to(netio_dir)
    with pytest.raises(DataPlaneError, match="not a directory"):
        NetioNode(513, 1, link).open()


def test_endpoint_needs_an_open_node(netio_dir):
    node = NetioNode(513, 1, netio_dir)
    with pytest.raises(DataPlaneError, match="is not open"):
        node.endpoint(0, 0).open()
    node.open()
    try:
        first = node.endpoint(0, 0)
        first.open()
        with pytest.raises(DataPlaneError, match="already in use"):
            node.endpoint(0, 0).open()
        first.close()
    finally:
        node.close()
