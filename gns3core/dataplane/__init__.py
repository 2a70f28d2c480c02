"""Link data plane: joins two NIO endpoints with a bridge, with pcap capture and link impairments.

This replaces the uBridge helper GNS3 used: the server and emulator plugins create one :class:`DataPlane` and ask it
for bridges between endpoints (UDP tunnels, TAP devices, host interfaces, UNIX sockets, veth pairs into namespaces,
IOU's netio sockets).
"""

from .bridge import Bridge, DataPlane
from .capture import DLT_TYPES, PcapWriter, link_type
from .endpoints import (
    Endpoint,
    EthernetEndpoint,
    MacMappedUDPEndpoint,
    TAPEndpoint,
    UDPEndpoint,
    UnixEndpoint,
    VethEndpoint,
    interface_exists,
)
from .errors import DataPlaneError
from .impairments import Impairments
from .macmap import MacMap
from .netio import NetioEndpoint, NetioNode, netio_directory
from .worker import ProcessBridge

__all__ = [
    "DLT_TYPES",
    "Bridge",
    "DataPlane",
    "DataPlaneError",
    "Endpoint",
    "EthernetEndpoint",
    "Impairments",
    "MacMap",
    "MacMappedUDPEndpoint",
    "NetioEndpoint",
    "NetioNode",
    "PcapWriter",
    "ProcessBridge",
    "TAPEndpoint",
    "UDPEndpoint",
    "UnixEndpoint",
    "VethEndpoint",
    "interface_exists",
    "link_type",
    "netio_directory",
]
