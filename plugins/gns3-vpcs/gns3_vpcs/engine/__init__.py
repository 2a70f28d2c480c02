"""The built-in VPCS engine: many virtual PCs in one worker process, beside (not instead of) the real vpcs.

Server side: `supervisor` (worker processes and their control sockets) and `vm` (the API object of a built-in PC).
Worker side: `worker` (process main loop), `pc` (one virtual PC and its IPv4 stack), `nic` (its UDP or TAP link),
`console` (its telnet console), `shell` (the vpcs commands), `probes` (ping, trace, DHCP), `packets` and `texts`.
The two sides share `protocol` (one JSON message per SOCK_SEQPACKET datagram).
"""
