"""Host refusals surface as DataPlaneError with a message a user can act on, never a raw traceback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
from dataplane_helpers import has_net_admin, unique

from gns3core.dataplane import (
    DataPlaneError,
    EthernetEndpoint,
    TAPEndpoint,
    UDPEndpoint,
    UnixEndpoint,
    VethEndpoint,
    interface_exists,
)


@pytest.mark.asyncio
async def test_missing_interface(dataplane):
    with pytest.raises(DataPlaneError, match=r"Ethernet interface gdpmissing0 does not exist"):
        await dataplane.create_bridge("e", EthernetEndpoint("gdpmissing0"), UDPEndpoint(0, "127.0.0.1", 9))
    assert dataplane.bridges == {}


@pytest.mark.asyncio
async def test_failed_second_endpoint_releases_the_first(dataplane):
    a = UDPEndpoint(0, "127.0.0.1", 9)
    with pytest.raises(DataPlaneError, match="does not exist"):
        await dataplane.create_bridge("half", a, EthernetEndpoint("gdpmissing1"))
    assert not a.opened
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", a.lport))  # the port was given back


@pytest.mark.asyncio
async def test_port_in_use(dataplane):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("0.0.0.0", 0))
        port = busy.getsockname()[1]
        with pytest.raises(DataPlaneError, match=f"UDP port {port} is already in use"):
            await dataplane.create_bridge("p", UDPEndpoint(port, "127.0.0.1", 9), UDPEndpoint(0, "127.0.0.1", 9))


def test_bad_values():
    with pytest.raises(DataPlaneError, match="lport"):
        UDPEndpoint(70000, "127.0.0.1", 9)
    with pytest.raises(DataPlaneError, match="not valid"):
        TAPEndpoint("a/b")
    with pytest.raises(DataPlaneError, match="not valid"):
        EthernetEndpoint("x" * 20)
    with pytest.raises(DataPlaneError, match="either netns or pid"):
        VethEndpoint("gdpa", "gdpb", netns="x", pid=1)
    with pytest.raises(DataPlaneError, match="Could not resolve"):
        UDPEndpoint(0, "no-such-host.invalid", 9).open()


def test_missing_tun_device():
    with pytest.raises(DataPlaneError, match=r"/nonexistent/tun does not exist"):
        TAPEndpoint("gdptun0", device="/nonexistent/tun").open()


def test_unix_path_blocked(tmp_path):
    blocker = tmp_path / "regular-file"
    blocker.write_text("x")
    with pytest.raises(DataPlaneError, match="not a socket"):
        UnixEndpoint(str(blocker), str(tmp_path / "r")).open()
    with pytest.raises(DataPlaneError, match="Cannot bind UNIX socket"):
        UnixEndpoint(str(tmp_path / "no" / "dir" / "l"), str(tmp_path / "r")).open()


def test_veth_namespace_or_process_missing():
    with pytest.raises(DataPlaneError, match="Network namespace gdp-nosuchns does not exist"):
        VethEndpoint(unique("gdpv"), unique("gdpw"), netns="gdp-nosuchns").open()
    with pytest.raises(DataPlaneError, match="Process 999999999 does not exist"):
        VethEndpoint(unique("gdpv"), unique("gdpw"), pid=999999999).open()


def test_veth_rename_clash_cleans_up():
    if not has_net_admin():
        pytest.skip("needs CAP_NET_ADMIN to create veth pairs")
    host_name = unique("gdpv")
    # 'lo' exists everywhere, so renaming the peer to it fails after the pair was made; nothing may be left.
    with pytest.raises(DataPlaneError, match="Cannot rename"):
        VethEndpoint(host_name, unique("gdpw"), peer_rename="lo").open()
    assert not interface_exists(host_name)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (apt package util-linux)")
def test_tap_without_permission():
    """Without CAP_NET_ADMIN (dropped in a child process) creating a TAP is refused with a clear message."""
    if not has_net_admin() or not os.path.exists("/dev/net/tun"):
        pytest.skip("needs CAP_NET_ADMIN (to drop it) and /dev/net/tun")
    code = textwrap.dedent(f"""
        from gns3core.dataplane import DataPlaneError, TAPEndpoint
        try:
            TAPEndpoint({unique('gdpt')!r}).open()
        except DataPlaneError as exc:
            print("REFUSED:", exc)
    """)
    proc = subprocess.run(["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "--", sys.executable,
                           "-c", code], capture_output=True, text=True, timeout=30, check=False,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert proc.returncode == 0, proc.stderr
    assert "REFUSED:" in proc.stdout and "CAP_NET_ADMIN" in proc.stdout, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
