"""What a virtual PC prints, word for word as Debian's vpcs 0.5b2 prints it (recorded on this machine).

Line breaks are written as "\\n"; the console sends each as CR LF, as vpcs's terminal does. Where vpcs itself wrote
"\\r\\n" (the banner, one help line) the text keeps "\\r\\n", which reaches the client as CR CR LF like the original.
"""

from __future__ import annotations

B = "\x1b[1m"  # bold, as vpcs highlights command names
N = "\x1b[0m"

VERSION = "0.5b2"
BUILD_TIME = "Sep  6 2020 19:00:57"
NOT_SUPPORTED = "not supported by the built-in engine"


def _text(*lines: str) -> str:
    return "\n".join(lines)


BANNER = (
    "\r\n"
    f"Welcome to Virtual PC Simulator, version {VERSION}\r\n"
    "Dedicated to Daling.\r\n"
    f"Build time: {BUILD_TIME}\r\n"
    "Copyright (c) 2007-2014, Paul Meng (mirnshi@gmail.com)\r\n"
    "All rights reserved.\r\n\r\n"
    'VPCS is free software, distributed under the terms of the "BSD" licence.\r\n'
    "Source code and license can be found at vpcs.sf.net.\r\n"
    "For more information, please visit wiki.freecode.com.cn.\r\n"
)
WELCOME = BANNER + "\nPress '?' to get help.\n"

HELP = _text(
    '',
    '?                        Print help',
    "! [command [args]]       Invoke an OS command with the 'args' as its arguments",
    '<digit>                  Switch to the VPC<digit>. <digit> range 1 to 9',
    f'arp                      Shortcut for: {B}show arp{N}. Show arp table',
    'clear [arguments]        Clear IPv4/IPv6, arp/neighbor cache, command history',
    f'dhcp [-options]          Shortcut for: {B}ip dhcp{N}. Get IPv4 address via DHCP',
    'disconnect               Exit the telnet session (daemon mode)\r',
    'echo <text>              Display <text> in output',
    'help                     Print help',
    f'history                  Shortcut for: {B}show history{N}. List the command history',
    "ip [arguments]           Configure VPC's IP settings",
    'load [filename]          Load the configuration/script from the file [filename] '
    '(startup.vpc is the default filename).',
    'ping <host> [-options]   Ping the network <host> with ICMP (default) or TCP/UDP',
    'quit                     Quit program',
    'relay [arguments]        Relay packets between two UDP ports',
    'rlogin [<ip>] <port>     Telnet to host relative to HOST PC',
    'save [filename]          Save the configuration to the file [filename] '
    '(startup.vpc is the default filename).',
    'set [arguments]          Set VPC name, peer ports, dump options, echo on or off',
    f'show [arguments]         Print the information of VPCs (default). Try {B}show ?{N}',
    'sleep <seconds> [text]   Print <text> and pause the running script for <seconds>',
    'trace <host> [-options]  Print the path packets take to network <host>',
    f'version                  Shortcut for: {B}show version{N}',
    '',
    "To get command syntax help, please enter '?' as an argument of the command.",
    '',
)

HELP_IP = _text(
    '',
    f'{B}ip [arguments]{N}',
    "  Configure the current VPC's IP settings",
    '  arguments:',
    '    <address> [/<mask>] [<gateway>]',
    '    <address> [<gateway>] [/<mask>]',
    "                   Set the VPC's ip, default gateway ip and network mask",
    '                   Default IPv4 mask is /24, IPv6 is /64. In the ether mode, ',
    '                   the ip of the tapx is the maximum host ID of the subnet. ',
    f"                   {B}ip 10.1.1.70 /26 10.1.1.65{N} set the VPC's ip to 10.1.1.70, ",
    '                   the gateway to 10.1.1.65, the netmask to 255.255.255.192, ',
    '                   the tapx ip to 10.1.1.126 in the ether mode.',
    '                   </mask> may be written as /26, 26 or 255.255.255.192',
    '    auto           Attempt to obtain IPv6 address, mask and gateway using SLAAC',
    '    dhcp -[d|r|x]  Attempt to obtain IPv4 address, mask, gateway, DNS via DHCP',
    '          -d         Show DHCP packet decode',
    '          -r         Renew DHCP lease',
    '          -x         Release DHCP lease',
    "    dns <ip>       Set DNS server <ip>, delete if <ip> is '0'",
    '    domain <name>  set local domain name',
    '    mtu <value>    Set IPv4 MTU to <value>, at least 576. ',
    '',
)

HELP_PING = _text(
    '',
    f'{B}ping <host> [-options]{N}',
    '  Ping the network <host>. <host> can be an ip address or name',
    '    options:',
    '     -1             ICMP mode, default',
    '     -2             UDP mode',
    '     -3             TCP mode',
    '     -P <protocol>  Same as above, setting ip protocol',
    '                    1 - icmp, 17 - udp, 6 - tcp',
    '     -c <count>     packet count, default 5',
    '     -l <size>      data size',
    '     -T <ttl>       set TTL, default 64',
    '     -s <port>      source port',
    '     -p <port>      destination port',
    '     -f <flag>      tcp head flag, |C|E|U|A|P|R|S|F|',
    '                              bits |7 6 5 4 3 2 1 0|',
    '     -t             send packet until interrupt by Ctrl+C',
    '     -i <ms>        wait <ms> milliseconds between sending each packet',
    '     -w <ms>        wait <ms> milliseconds to receive the response',
    '',
    '  Note: 1. Using names requires DNS to be set.',
    '        2. Use Ctrl+C to stop the command.',
    '',
)

HELP_SET = _text(
    '',
    f'{B}set [lport|rport|rhost|pcname|echo|dump|]{N}',
    '  Set hostname, connection port, dump options and echo on or off',
    '    lport <port>    local port',
    '    rport <port>    remote peer port',
    '    rhost <ip>      remote peer host IPv4 address',
    '    pcname <name>   set the hostname of the current VPC',
    '    echo [on|off]   set echoing on or off during script execution',
    '    dump [options]  set the packet dump flag for this VPC. ',
    '                    Options:',
    '                      detail  print protocol',
    '                      mac     print ether address',
    '                      raw     print the first 40 bytes',
    '                      all     all the packets including incoming.',
    "                              must use [detail|mac|raw] as well as 'all'",
    '                      off     clear all the flag',
    '',
)

HELP_SHOW = _text(
    '',
    f'{B}show [arp [<digit>|all]|dump|echo|history|ip [<digit>|all]|ipv6 [<digit>|all]]{N}',
    '    arp [<digit>|all]   Show arp table for VPC <digit> or all VPCs',
    '    dump [<digit>|all]  Show dump flags for VPC <digit> or all VPCs',
    f'    echo                Show the status of the echo flag. see {B}set echo{N}',
    '    history             List the command history',
    '    ip [<digit>|all]    Show IPv4 details for VPC <digit> or all VPCs',
    '                        Shows VPC Name, IP address, mask, gateway, DNS, MAC, ',
    '                        lport, rhost:rport and MTU',
    '    ipv6 [<digit>|all]  Show IPv6 details for VPC <digit> or all VPCs',
    '                        Shows VPC Name, IPv6 addresses/mask, gateway, MAC,',
    '                        lport, rhost:rport and MTU',
    '    version             Show the version information',
    '',
    f'  Notes: if <digit> and <all> are missing, {B}arp{N}/{B}dump{N}/{B}ip{N}/{B}ipv6{N} will display',
    '         the current VPC.',
    '',
)

HELP_CLEAR = _text(
    '',
    f'{B}clear [ip|ipv6|arp|neighbor|hist]{N}',
    '  Clear ip/ipv6 address, arp/neighbor table, command history',
    '',
)

HELP_TRACE = _text(
    '',
    f'{B}trace <host> [-options]{N}',
    '  Print the path packets take to network <host>. <host> can be an ip address or name.',
    '    options:',
    '      -P <protocol>  Use IP <protocol> in trace packets',
    '                     1 - icmp, 17 - udp (default), 6 - tcp  ',
    '      -m <ttl>       maximum TTL, default 8',
    '      <ttl>          Same as -m option, compatible with the old version',
    '',
    '  Note: 1. Using names requires DNS to be set.',
    '        2. Use Ctrl+C to stop the command.',
    '',
)

HELP_SAVE = _text(
    '',
    f'{B}save [filename]{N}',
    '  Save the configuration to the file [filename] (startup.vpc is the default filename).',
    '',
)

HELP_LOAD = _text(
    '',
    f'{B}load [filename]{N}',
    '  Load the configuration/script from the file [filename] (startup.vpc is the default filename).',
    '  When the file is loaded, commands will be displayed before being executed ',
    f'  if the state of the echo flag is on. See {B}set echo{N}',
    f'  {B}sleep{N} command will ignore {B}set echo on{N}, ONLY if {B}sleep{N} misses the <text>',
    '  parameter. ',
    '',
    '  Note: Press Ctrl+C to interrupt the running script',
    '',
)

HELP_SLEEP = _text(
    '',
    f'{B}sleep [<seconds>] [text]{N}',
    '  Print <text> and pause execution of script for <seconds>.',
    '  If <seconds>=0 or missing, pause until a key is pressed. ',
    f'  See {B}load [filename]{N}',
    '',
)

HELP_SHOW_ARP = _text(
    '',
    f'{B}show arp [<digit>|all]{N}',
    '  Show arp table for VPC <digit> (default this VPC) or all VPCs',
    '',
)

HELP_DHCP = _text(
    '',
    f'{B}ip dhcp [-options]{N}',
    '  Attempt to obtain IPv4 address, mask, gateway and DNS via DHCP',
    '  options:',
    '    -d         Show DHCP packet decode',
    '    -r         Renew DHCP lease',
    '    -x         Release DHCP lease',
    '',
)

HELP_SHOW_IP = _text(
    '',
    f'{B}show ip [<digit>|all]{N}',
    '  Show IPv4 details for VPC <digit> (default this VPC) or all VPCs, including',
    '  VPC Name, IP address, mask, gateway, DNS, MAC, lport, rhost:rport and MTU.',
    '',
)

HELP_HELP = _text(
    '',
    f'{B}help{N}, Print help. Use command {B}?{N} for more help',
    '',
)

HELP_SHELL = _text(
    '',
    f'{B}! [command [args]]{N}',
    " Invoke an OS command with the 'args' as its arguments",
    '',
)

HELP_RLOGIN = _text(
    '',
    f'{B}rlogin [<ip>] <port>{N}',
    '  Telnet to <port> at <ip> (def 127.0.0.1) relative to HOST PC. ',
    '  To attach to the console of a virtual router running on port 2000 of this',
    f'  host PC, use {B}rlogin 2000{N}',
    '  To telnet to the port 2004 of a remote host 10.1.1.1, use',
    f'  {B}rlogin 10.1.1.1 2004{N}',
    '',
)

HELP_SET_ECHO = _text(
    '',
    f'{B}set echo [on|off]{N}',
    '  Sets the state of the echo flag used when loading script files.',
    f'  See {B}load [filename]{N}.',
    '',
)

HELP_IP_MTU = _text(
    '',
    f'{B}ip mtu <value>{N}',
    '  Set IPv4 MTU to <value>, at least 576.',
    '',
)

HELP_IP_DNS = _text(
    '',
    f'{B}ip dns <ip>{N}',
    "  Set DNS server <ip>, delete if <ip> is '0'",
    '',
)

HELP_SHOW_IPV6 = _text(
    '',
    f'{B}show ipv6 [<digit>|all]{N}',
    '  Show IPv6 details for VPC <digit> (default this VPC) or all VPCs, including',
    '  VPC Name, IP address, mask, gateway, DNS, MAC, lport, rhost:rport and MTU',
    '',
)

HELP_SHOW_DUMP = _text(
    '',
    f'{B}show dump [<digit>|all]{N}',
    '  Show dump flags for VPC <digit> (default this VPC) or all VPCs',
    '',
)

HELP_SET_DUMP = _text(
    '',
    f'{B}set dump [detail|mac|raw|all|off]{N}',
    '  Set the packet dump flag for this VPC',
    '    detail  print protocol',
    '    mac     print ether address',
    '    raw     print the first 40 bytes',
    '    all     all the packets including incoming',
    "            must use [detail|mac|raw] as well as 'all'",
    '    off     clear all the flags',
    '',
)

_UNREACHABLE = (
    "Destination network unreachable", "Destination host unreachable", "Destination protocol unreachable",
    "Destination port unreachable", "Fragmentation required, and DF flag set", "Source route failed",
    "Destination network unknown", "Destination host unknown", "Source host isolated",
    "Network administratively prohibited", "Host administratively prohibited", "Network unreachable for TOS",
    "Host unreachable for TOS", "Communication administratively prohibited",
)
_REDIRECT = (
    "Redirect Datagram for the Network", "Redirect Datagram for the Host", "Redirect Datagram for the TOS & network",
    "Redirect Datagram for the TOS & host",
)
_TIME_EXCEEDED = ("TTL expired in transit", "Fragment reassembly time exceeded")


def icmp_description(icmp_type: int, code: int) -> str:
    """The words vpcs prints after an ICMP error, e.g. `Destination port unreachable`."""
    table = {3: _UNREACHABLE, 5: _REDIRECT, 11: _TIME_EXCEEDED}.get(icmp_type, ())
    return table[code] if code < len(table) else "Unknown"
