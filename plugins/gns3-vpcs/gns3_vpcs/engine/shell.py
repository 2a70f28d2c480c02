"""The vpcs command line of a virtual PC: line editing, history, and every command, in vpcs 0.5b2's words.

How vpcs frames its output, kept here: a command line that is not empty gets a line break before its output; the
prompt is "\\n\\r<name>> " (so most commands end with a blank line); commands are matched by prefix, in vpcs's table
order (`s` lists save, set, show, sleep). Commands that finish at once run inline; those that wait on the network or
the clock (ping, trace, ip, dhcp, sleep, load) run as one task, and Ctrl+C cancels it. Keys typed meanwhile wait
for the prompt.

Commands the engine does not implement (running host programs, relays, rlogin, IPv6, packet dumps, changing the
tunnel from inside the PC) say so plainly instead of pretending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from gns3_vpcs.engine import packets as pk
from gns3_vpcs.engine import probes, texts
from gns3_vpcs.engine.pc import DEFAULT_MTU, Dhcp, VirtualPC, tick
from gns3core.errors import Conflict
from gns3core.files import atomic_write

log = logging.getLogger(__name__)

HISTORY_SIZE = 50
LINE_MAX = 512
NAME_MAX = 6  # vpcs 0.5b2's limit (0.8 allows more)
SCRIPT_DEPTH = 8
SCRIPT_NAME = "startup.vpc"
HISTORY_FILE = "vpcs.hist"

# vpcs's command table, in its order (prefix matching reports ambiguities in this order).
COMMANDS = ("?", "arp", "clear", "dhcp", "disconnect", "echo", "help", "history", "relay", "ip", "load", "neighbor",
            "ping", "quit", "tracer", "rlogin", "save", "set", "show", "version", "sleep", "zzz")
GROUPS = {"arp": "show", "dhcp": "ip"}  # shortcuts: `arp` is `show arp`, `dhcp` is `ip dhcp`
UNSUPPORTED = {"relay", "rlogin", "neighbor"}

Result = Coroutine[Any, Any, None] | None


def _digits(text: str) -> bool:
    return text.isdigit() and text.isascii()


class Shell:
    """Console input and command execution for one PC. `on_quit()` is called when the user types `quit`."""

    def __init__(self, pc: VirtualPC, write: Callable[[str], None], disconnect: Callable[[], None],
                 on_quit: Callable[[], None]) -> None:
        self.pc = pc
        self.write = write
        self.disconnect_client = disconnect
        self.on_quit = on_quit
        self.line: list[str] = []
        self.history: list[str] = []
        self.history_index = 0
        self.echo_script = False
        self.task: asyncio.Task[None] | None = None
        self.typed_ahead: list[str] = []
        self.key_wait: asyncio.Future[str] | None = None
        self._escape = ""
        self._after_cr = False
        self._leave = False
        self._closed = False
        self._depth = 0

    # -- start ----------------------------------------------------------------------------------------------------

    def boot(self, run_script: bool) -> None:
        """What vpcs prints when it starts: banner, the startup script's output, then the first prompt."""
        self._load_history()
        self.write(texts.WELCOME)
        if run_script:
            self._run(self._startup())
        else:
            self.prompt()

    async def _startup(self) -> None:
        await self._load_file(SCRIPT_NAME, startup=True)

    def _load_history(self) -> None:
        try:
            lines = (self.pc.directory / HISTORY_FILE).read_text(encoding="latin-1").splitlines()
        except OSError:
            return
        self.history = [line[:LINE_MAX] for line in lines if line.strip()][-HISTORY_SIZE:]

    def _save_history(self) -> None:
        try:
            (self.pc.directory / HISTORY_FILE).write_text("".join(f"{line}\n" for line in self.history),
                                                         encoding="latin-1")
        except OSError as exc:
            log.warning("PC %s: cannot save %s: %s", self.pc.id, HISTORY_FILE, exc)

    def prompt(self) -> None:
        self.write(f"\n\r{self.pc.name}> ")
        if self._leave:
            self._leave = False
            self.write("\nGood-bye\n")
            self.disconnect_client()

    # -- keys --------------------------------------------------------------------------------------------------------

    def feed(self, text: str) -> None:
        """Characters typed on the console."""
        for char in text:
            if self._closed:
                return
            if self.key_wait is not None:
                if not self.key_wait.done():
                    self.key_wait.set_result(char)
                continue
            if self.task is not None:
                if char == "\x03":
                    self.write("^C")
                    self.task.cancel()
                else:
                    self.typed_ahead.append(char)
                continue
            self._key(char)

    def _key(self, char: str) -> None:
        if self._escape:
            self._escape += char
            if len(self._escape) == 2 and char not in "[O":
                self._escape = ""
            elif len(self._escape) >= 3 and (char.isalpha() or char == "~"):
                sequence, self._escape = self._escape, ""
                if sequence[-1] == "A":
                    self._recall(-1)
                elif sequence[-1] == "B":
                    self._recall(1)
            return
        if self._after_cr:
            self._after_cr = False
            if char in "\n\x00":
                return
        if char in "\r\n":
            self._after_cr = char == "\r"
            line = "".join(self.line)
            self.line.clear()
            self.enter(line)
        elif char in "\x08\x7f":
            if self.line:
                self.line.pop()
                self.write("\b \b")
        elif char == "\x1b":
            self._escape = char
        elif char == "\x15":  # Ctrl+U: erase the line
            self.write("\b \b" * len(self.line))
            self.line.clear()
        elif " " <= char < "\x7f" or char >= "\xa0":
            if len(self.line) < LINE_MAX:
                self.line.append(char)
                self.write(char)

    def _recall(self, step: int) -> None:
        """Up and down arrows: walk the history, replacing the line being typed."""
        if not self.history:
            return
        index = max(0, min(len(self.history), self.history_index + step))
        if index == self.history_index and step < 0 and index == 0 and self.line:
            return
        self.history_index = index
        entry = self.history[index] if index < len(self.history) else ""
        self.write("\b \b" * len(self.line) + entry)
        self.line = list(entry)

    def enter(self, line: str) -> None:
        """Enter pressed: run the line, then prompt (now, or when its task ends)."""
        line = line.strip()
        if line:
            self.history.append(line)
            del self.history[:-HISTORY_SIZE]
        self.history_index = len(self.history)
        result = self.execute(line)
        if result is not None:
            self._run(result)
        elif not self._closed:
            self.prompt()

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        self.task = self.pc.loop.create_task(work)
        self.task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.task = None
        if not task.cancelled() and task.exception() is not None:
            log.error("PC %s: command failed", self.pc.id, exc_info=task.exception())
        if self._closed:
            return
        self.prompt()
        pending, self.typed_ahead = self.typed_ahead, []
        if pending:
            self.feed("".join(pending))

    def close(self) -> None:
        self._closed = True
        if self.key_wait is not None and not self.key_wait.done():
            self.key_wait.cancel()
        if self.task is not None:
            self.task.cancel()

    # -- parsing -----------------------------------------------------------------------------------------------------

    def execute(self, line: str, scripted: bool = False) -> Result:
        """One command line, as vpcs's parse_cmd reads it; a coroutine when the command has to wait."""
        if not line or line[0] in "#;":
            return None
        argv = line.split()[:20]
        if not argv:
            return None
        self.write("\n")
        word = argv[0]
        if "echo".startswith(word):  # vpcs prints the rest of the line as typed, spaces included
            for separator in " \t":
                if separator in line:
                    self.write(line[line.index(separator) + 1:])
                    break
            return None
        if line.startswith("!"):
            self.write(f"!: {texts.NOT_SUPPORTED} (it would run a program on the server)\n")
            return None
        matches = [name for name in COMMANDS if name.startswith(word)]
        if len(matches) > 1:
            self.write("".join(f"{name}\n" for name in matches))
            return None
        if not matches:
            self.write(f'Bad command: "{line}". Use ? for help.\n')
            return None
        name = matches[0]
        if name in GROUPS:
            argv = [GROUPS[name], name, *argv[1:]]
            name = argv[0]
        else:
            argv = [name, *argv[1:]]
        if scripted and self.echo_script and not (name in ("sleep", "zzz") and
                                                  (len(argv) != 2 or not _digits(argv[1]))):
            self.write(f"{self.pc.name}[1] {line}\n")
        if name in UNSUPPORTED:
            self.write(f"{word}: {texts.NOT_SUPPORTED}\n")
            return None
        helper = HELPS.get(name)
        if len(argv) > 1 and helper is not None and argv[-1] in ("?", "help"):
            self.write(helper(argv))
            return None
        return getattr(self, "cmd_" + {"?": "help", "tracer": "trace", "zzz": "sleep"}.get(name, name))(argv)

    # -- commands ----------------------------------------------------------------------------------------------------

    def cmd_help(self, argv: list[str]) -> Result:
        self.write(texts.HELP)
        return None

    def cmd_version(self, argv: list[str]) -> Result:
        self.write(texts.BANNER)
        return None

    def cmd_history(self, argv: list[str]) -> Result:
        self.write("".join(f"{line}\n" for line in self.history))
        return None

    def cmd_quit(self, argv: list[str]) -> Result:
        self._save_history()
        self._closed = True
        self.write("\n")
        self.on_quit()
        return None

    def cmd_disconnect(self, argv: list[str]) -> Result:
        self._leave = True
        return None

    def cmd_clear(self, argv: list[str]) -> Result:
        if len(argv) < 2 or argv[1] == "?":
            self.write(texts.HELP_CLEAR)
            return None
        what = argv[1]
        if what == "ip":
            self.pc.clear_ipv4()
            self.write("IPv4 address/mask, gateway, DNS, and DHCP cleared\n")
        elif "ipv6".startswith(what):
            self.write("IPv6 address/mask and router link-layer address cleared\n")
        elif "arp".startswith(what):
            self.pc.arp_cache.clear()
        elif "neighbor".startswith(what):
            pass
        elif "hist".startswith(what):
            self.history.clear()
        else:
            self.write("Invalid options\n")
        return None

    def cmd_sleep(self, argv: list[str]) -> Result:
        seconds, first = 0, 1
        if len(argv) >= 2 and _digits(argv[1]):
            seconds, first = int(argv[1]), 2
        if len(argv) != 1:
            self.write("".join(f"{word} " for word in argv[first:]) + "\n")
        if seconds == 0 and len(argv) == 1:
            self.write("Press any key to continue\n")
        return self._sleep(seconds)

    async def _sleep(self, seconds: int) -> None:
        if seconds:
            await asyncio.sleep(seconds)
            return
        self.key_wait = self.pc.loop.create_future()
        try:
            await self.key_wait
        finally:
            self.key_wait = None

    # -- set ---------------------------------------------------------------------------------------------------------

    def cmd_set(self, argv: list[str]) -> Result:
        if len(argv) < 2 or argv[1] == "?":
            self.write(texts.HELP_SET)
            return None
        what = argv[1]
        if "dump".startswith(what):
            if len(argv) > 2:
                self.write(f"set dump: {texts.NOT_SUPPORTED}\n")
        elif "lport".startswith(what) or "rport".startswith(what) or "rhost".startswith(what):
            if len(argv) != 3:
                self.write("Incomplete command.\n")
            else:
                self.write(f"set {what}: {texts.NOT_SUPPORTED} (the server sets the tunnel: change the link)\n")
        elif "pcname".startswith(what):
            if len(argv) != 3:
                self.write("Incomplete command.\n")
            elif len(argv[2]) > NAME_MAX:
                self.write(f"Hostname is too long. (should be less than {NAME_MAX})\n")
            else:
                self.pc.name = argv[2]
        elif "echo".startswith(what):
            if len(argv) < 3:
                self.write("Incomplete command.\n")
            elif argv[2].lower() == "on":
                self.echo_script = True
            elif argv[2].lower() == "off":
                self.echo_script = False
        else:
            self.write("Invalid command.\n")
        return None

    # -- show --------------------------------------------------------------------------------------------------------

    def cmd_show(self, argv: list[str]) -> Result:
        if len(argv) > 1:
            what = argv[1]
            if "arp".startswith(what):
                self._show_arp(argv)
            elif "dump".startswith(what):
                self.write("\ndump flags: (none)\n")
            elif what == "ip":
                self._show_ip(argv)
            elif "ipv6".startswith(what):
                self._show_ipv6(argv)
            elif "echo".startswith(what):
                self.write("\nEcho On\n" if self.echo_script else "\nEcho Off\n")
            elif "version".startswith(what):
                self.write(texts.BANNER)
            elif "history".startswith(what):
                self.cmd_history(argv)
            else:
                self.write("Invalid arguments\n")
            return None
        settings = self.pc.ipv4
        link = self.pc.link_spec
        rows = ["\n"]
        if link.get("kind") == "tap":
            rows.append(_columns([(0, "NAME"), (7, "IP/MASK"), (28, "GATEWAY"), (64, "GATEWAY")]) + "\n")
            rows.append(_columns([(0, self._table_name()), (7, f"{pk.ip_text(settings.ip)}/{settings.cidr}"),
                                  (28, pk.ip_text(settings.gateway))]) + "\n")
        else:
            rows.append(_columns([(0, "NAME"), (7, "IP/MASK"), (28, "GATEWAY"), (46, "MAC"), (65, "LPORT"),
                                  (72, "RHOST:PORT")]) + "\n")
            rows.append(_columns([(0, self._table_name()), (7, f"{pk.ip_text(settings.ip)}/{settings.cidr}"),
                                  (28, pk.ip_text(settings.gateway)), (46, pk.mac_text(self.pc.mac) + "  "),
                                  (65, str(self._lport())), (72, self._remote())]) + "\n")
        rows.append(f"       {pk.link_local6(self.pc.mac)}/64\n")
        self.write("".join(rows))
        return None

    def _table_name(self) -> str:
        return "VPCS1" if self.pc.name == "VPCS" else self.pc.name

    def _lport(self) -> int:
        return int(self.pc.link_spec.get("lport", 20000))

    def _remote(self) -> str:
        link = self.pc.link_spec
        if link.get("kind") == "udp":
            return f"{link['rhost']}:{link['rport']}"
        return "127.0.0.1:30000"

    def _other_pc(self, argv: list[str]) -> bool | None:
        """`show ... <digit>`: True for this PC (number 1), False for the empty slots 2-9 vpcs shows, None else."""
        if len(argv) == 2:
            return True
        if len(argv) == 3 and len(argv[2]) == 1 and _digits(argv[2]) and argv[2] != "0":
            return argv[2] == "1"
        return None

    def _show_ip(self, argv: list[str]) -> None:
        if len(argv) == 3 and "all".startswith(argv[2]):
            settings = self.pc.ipv4
            header = _columns([(0, "NAME"), (7, "IP/MASK"), (28, "GATEWAY"), (46, "MAC"), (65, "DNS")])
            dns = " ".join(pk.ip_text(d) for d in settings.dns[:2])
            row = _columns([(0, self._table_name()), (7, f"{pk.ip_text(settings.ip)}/{settings.cidr}"),
                            (28, pk.ip_text(settings.gateway)), (46, pk.mac_text(self.pc.mac) + "  "), (65, dns)])
            self.write(f"\n{header}\n{row}\n")
            return
        this = self._other_pc(argv)
        if this is None:
            self.write(_help_show(["show", "ip", "?"]))
            return
        if not this:
            slot = argv[2]
            self.write(f"\nNAME        : [{slot}]\nIP/MASK     : 0.0.0.0/0\nGATEWAY     : 0.0.0.0\nDNS         : \n"
                       "MAC         : 00:00:00:00:00:00\nLPORT       : 0\nRHOST:PORT  : 0.0.0.0:0\nMTU:        : 0\n")
            return
        settings = self.pc.ipv4
        lines = ["", f"NAME        : {self.pc.name}[1]", f"IP/MASK     : {pk.ip_text(settings.ip)}/{settings.cidr}",
                 f"GATEWAY     : {pk.ip_text(settings.gateway)}"]
        dns = "DNS         : "
        if settings.dns[:1]:
            dns += f"{pk.ip_text(settings.dns[0])}  "
        if settings.dns[1:2]:
            dns += pk.ip_text(settings.dns[1])
        lines.append(dns)
        lease = settings.dhcp
        if lease.server:
            left = max(lease.lease - (tick() - lease.granted_at), 0)
            lines.append(f"DHCP SERVER : {pk.ip_text(lease.server)}")
            lines.append(f"DHCP LEASE  : {left}, {lease.lease}/{lease.renew}/{lease.rebind}")
        if settings.domain or lease.domain:
            lines.append(f"DOMAIN NAME : {settings.domain or lease.domain}")
        lines += [f"MAC         : {pk.mac_text(self.pc.mac)}", f"LPORT       : {self._lport()}",
                  f"RHOST:PORT  : {self._remote()}", f"MTU:        : {settings.mtu}", ""]
        self.write("\n".join(lines))

    def _show_ipv6(self, argv: list[str]) -> None:
        self.write("\n" + "\n".join([
            f"NAME              : {self.pc.name}[1]",
            f"LINK-LOCAL SCOPE  : {pk.link_local6(self.pc.mac)}/64",
            "GLOBAL SCOPE      : ",
            "ROUTER LINK-LAYER : ",
            f"MAC               : {pk.mac_text(self.pc.mac)}",
            f"LPORT             : {self._lport()}",
            f"RHOST:PORT        : {self._remote()}",
            "MTU:              : ",
        ]) + "\n")

    def _show_arp(self, argv: list[str]) -> None:
        self.write("\n")
        if len(argv) == 3:
            if "all".startswith(argv[2]):
                self.write(f"{self.pc.name}[1]:\n")
            elif len(argv[2]) == 1 and _digits(argv[2]) and argv[2] != "0":
                if argv[2] != "1":
                    self.write(f"[{argv[2]}]:\narp table is empty\n")
                    return
            else:
                self.write("Invalid ID\n")
                return
        entries = self.pc.arp_entries()
        if not entries:
            self.write("arp table is empty\n")
            return
        self.write("".join(f"{pk.mac_text(mac)}  {pk.ip_text(ip)} expires in {left} seconds \n"
                           for ip, mac, left in entries))

    # -- ip ----------------------------------------------------------------------------------------------------------

    def cmd_ip(self, argv: list[str]) -> Result:
        if len(argv) < 2 or argv[1] == "?":
            self.write(texts.HELP_IP)
            return None
        what = argv[1]
        settings = self.pc.ipv4
        if ":" in what:
            self.write(f"IPv6 addresses: {texts.NOT_SUPPORTED}\n")
            return None
        if "dhcp".startswith(what):
            return self._dhcp(argv[2:])
        if "auto".startswith(what):
            self.write(f"ip auto (IPv6 autoconfiguration): {texts.NOT_SUPPORTED}\n")
            return None
        if "mtu".startswith(what):
            if len(argv) != 3 or not _digits(argv[2]):
                self.write(texts.HELP_IP_MTU)
            elif int(argv[2]) < 576:
                self.write("Invalid MTU, should bigger than 576\n")
            else:
                settings.mtu = int(argv[2])
            return None
        if "domain".startswith(what):
            if len(argv) != 3:
                self.write("Incomplete command.\n")
            elif len(argv[2]) > 64 or ".." in argv[2]:
                self.write("Invalid domain name.\n")
            else:
                settings.domain = argv[2].strip(".")
            return None
        if "dns".startswith(what):
            return self._dns(argv)
        return self._address(argv)

    def _dns(self, argv: list[str]) -> Result:
        settings = self.pc.ipv4
        servers = argv[2:4]
        if not servers:
            return None
        if servers[0] == "0":
            settings.dns = []
            return None
        chosen = []
        for text in servers:
            address = pk.inet_addr(text)
            if not address:
                self.write("Invalid address\n" if len(servers) == 1 else f"Invalid address: {text}\n")
                return None
            chosen.append(address)
        settings.dns = chosen
        return None

    def _address(self, argv: list[str]) -> Result:
        first = argv[1]
        cidr = 24
        args = argv[2:]
        if "/" in first:
            first, _, mask = first.partition("/")
            args = [mask, *args]
        address = pk.inet_addr(first)
        gateway = 0
        has_gateway = False
        for arg in args:
            arg = arg[1:] if arg.startswith("/") else arg
            if _digits(arg) and len(arg) < 3:
                cidr = int(arg)
            elif len(arg) > 8 and arg.startswith("255."):
                mask = pk.inet_addr(arg)
                for bits in range(33):
                    if mask is not None and pk.mask_of(bits) == mask:
                        cidr = bits
                        break
            elif 6 < len(arg) < 16:
                has_gateway = True
                parsed = pk.inet_addr(arg)
                gateway = -1 if parsed is None else parsed
            else:
                self.write("Invalid options\n")
                return None
        if cidr < 1 or cidr > 30:
            cidr = 24
        if not address or gateway == -1 or address == gateway:
            self.write("Invalid address\n")
            return None
        if has_gateway and not pk.same_net(address, gateway, cidr):
            self.write("not same subnet\n")
            return None
        return self._set_address(address, cidr, gateway if has_gateway else 0, has_gateway)

    async def _set_address(self, address: int, cidr: int, gateway: int, has_gateway: bool) -> None:
        settings = self.pc.ipv4
        settings.ip = address
        self.write("Checking for duplicate address...\n")
        holder = await probes.address_in_use(self.pc, address)
        if holder is not None:
            self.write(f"{pk.ip_text(address)} is being used by MAC {pk.mac_text(holder)}\nAddress not changed\n")
            self.pc.arp_cache.clear()
            settings.ip = settings.cidr = settings.gateway = 0
            return
        self.pc.cancel_renewal()
        settings.dynamic = False
        settings.ip, settings.gateway, settings.cidr, settings.mtu = address, gateway, cidr, DEFAULT_MTU
        settings.dhcp = Dhcp()
        line = f"PC1 : {pk.ip_text(address)} {pk.ip_text(pk.mask_of(cidr))}"
        if has_gateway:
            line += f" gateway {pk.ip_text(gateway)}"
        self.write(line + "\n")

    def _dhcp(self, options: list[str]) -> Result:
        flags = 0
        for option in options:
            if option == "-d":
                self.write(f"ip dhcp -d (packet decode): {texts.NOT_SUPPORTED}\n")
                return None
            if option == "-r":
                flags = (flags << 4) + 0x5
            elif option == "-x":
                flags = (flags << 4) + 0xA
            else:
                self.write(texts.HELP_DHCP)
                return None
        if flags == 0xA:
            probes.dhcp_release(self.pc)
            return None
        if flags == 0xA5:
            probes.dhcp_release(self.pc)
        if flags == 0x5A:
            return self._renew_then_release()
        return probes.dhcp(self.pc, self.write, renew=flags != 0)

    async def _renew_then_release(self) -> None:
        await probes.dhcp(self.pc, self.write, renew=True)
        probes.dhcp_release(self.pc)

    # -- ping, trace ------------------------------------------------------------------------------------------------

    def _target(self, text: str) -> int | None:
        address = pk.inet_addr(text)
        if address:
            return address
        if self.pc.ipv4.dns:
            self.write(f"Name resolution ({text}): {texts.NOT_SUPPORTED}\n")
        else:
            self.write(f"Cannot resolve {text}\n")
        return None

    def cmd_ping(self, argv: list[str]) -> Result:
        if len(argv) < 2 or argv[1] == "?":
            self.write(texts.HELP_PING)
            return None
        if ":" in argv[1]:
            self.write(f"IPv6 ping: {texts.NOT_SUPPORTED}\n")
            return None
        options = probes.PingOptions()
        i = 2
        while i < len(argv):
            arg = argv[i]
            i += 1
            if not arg.startswith("-"):
                continue
            value = argv[i] if i < len(argv) else None
            flag = arg[1:2]
            if flag and flag in "123":
                options.proto = {"1": pk.PROTO_ICMP, "2": pk.PROTO_UDP, "3": pk.PROTO_TCP}[flag]
            elif flag == "P":
                if value is not None:
                    i += 1
                    number = _int(value)
                    if number in (pk.PROTO_ICMP, pk.PROTO_UDP, pk.PROTO_TCP):
                        options.proto = number
            elif flag and flag in "clTspiw":
                if value is None:
                    continue
                i += 1
                number = _int(value)
                if flag == "c":
                    options.count = number
                elif flag == "l":  # never more than the MTU allows (vpcs does not fragment either)
                    options.size = max(0, min(number, (self.pc.ipv4.mtu or DEFAULT_MTU) - 28))
                elif flag == "T":
                    options.ttl = number & 0xFF
                elif flag == "s":
                    options.sport = number & 0xFFFF
                elif flag == "p":
                    options.dport = number & 0xFFFF
                elif flag == "i":
                    options.interval = (number if number >= 1 else 1000) / 1000
                else:
                    options.wait = (number if number >= 1 else 1000) / 1000
            elif flag == "t":
                options.count = -1
            elif flag == "f":
                self.write(f"ping -f (TCP flags): {texts.NOT_SUPPORTED}\n")
                return None
            elif flag and flag in "Dua":
                self.write(f"ping -{flag}: {texts.NOT_SUPPORTED}\n")
                return None
            else:
                self.write("Invalid options\n")
                return None
        dst = self._target(argv[1])
        if dst is None:
            return None
        return probes.ping(self.pc, self.write, argv[1], dst, options)

    def cmd_trace(self, argv: list[str]) -> Result:
        if len(argv) < 2 or argv[1] == "?":
            self.write(texts.HELP_TRACE)
            return None
        if ":" in argv[1]:
            self.write(f"IPv6 trace: {texts.NOT_SUPPORTED}\n")
            return None
        proto, max_ttl = pk.PROTO_UDP, 0
        i = 2
        while i < len(argv):
            arg = argv[i]
            if arg == "-P":
                if i + 1 >= len(argv):
                    self.write("Missing protocol\n")
                    return None
                if not _digits(argv[i + 1]) or int(argv[i + 1]) not in (pk.PROTO_ICMP, pk.PROTO_UDP, pk.PROTO_TCP):
                    self.write("Invalid protocol\n")
                    return None
                proto = int(argv[i + 1])
                i += 2
            elif arg == "-m" or (_digits(arg) and not max_ttl):
                text = arg
                if arg == "-m":
                    if i + 1 >= len(argv):
                        self.write("Missing TTL\n")
                        return None
                    text = argv[i + 1]
                    i += 1
                if not _digits(text) or not 0 < int(text) <= 64:
                    self.write("Invalid TTL\n")
                    return None
                max_ttl = int(text)
                i += 1
            else:
                self.write(texts.HELP_TRACE)
                return None
        dst = self._target(argv[1])
        if dst is None:
            return None
        return probes.trace(self.pc, self.write, argv[1], dst, proto, max_ttl or 8)

    # -- save, load --------------------------------------------------------------------------------------------------

    def _script_path(self, name: str) -> Path | None:
        """A file of the PC's own directory: vpcs 0.5b2 refuses names with a slash (shows the help), so do we."""
        if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
            return None
        return self.pc.directory / name

    def cmd_save(self, argv: list[str]) -> Result:
        if len(argv) > 2 or (len(argv) == 2 and argv[1] == "?"):
            self.write(texts.HELP_SAVE)
            return None
        name = argv[1] if len(argv) == 2 else SCRIPT_NAME
        if "." not in name:
            name += ".vpc"
        path = self._script_path(name)
        if path is None:
            self.write(texts.HELP_SAVE)
            return None
        lines = []
        if not self.pc.name.startswith("VPC"):
            lines.append(f"set pcname {self.pc.name}")
        settings = self.pc.ipv4
        if settings.dynamic:
            lines.append("dhcp")
        elif settings.ip:
            address = f"ip {pk.ip_text(settings.ip)}"
            if settings.gateway:
                address += f" {pk.ip_text(settings.gateway)}"
            lines.append(f"{address} {settings.cidr}")
        try:
            atomic_write(path, "".join(f"{line}\n" for line in lines))
        except Conflict as exc:
            self.write(f"failed: {exc.message}\n")
            return None
        self.write(".  done\n")
        return None

    def cmd_load(self, argv: list[str]) -> Result:
        if len(argv) > 2 or (len(argv) == 2 and argv[1] == "?"):
            self.write(texts.HELP_LOAD)
            return None
        name = argv[1] if len(argv) == 2 else SCRIPT_NAME
        if self._script_path(name) is None:
            self.write(texts.HELP_LOAD)
            return None
        return self._load_file(name)

    async def _load_file(self, name: str, startup: bool = False) -> None:
        path = self._script_path(name)
        content = None
        for candidate in (path, self._script_path(name + ".vpc") if "." not in name else None):
            if candidate is None:
                continue
            try:
                content = candidate.read_bytes()[:1024 * 1024].decode("latin-1")
                break
            except OSError:
                continue
        if content is None:
            self.write(f'Can\'t open "{name}"\n')
            return
        if self._depth >= SCRIPT_DEPTH:
            self.write(f'"{name}": scripts nested more than {SCRIPT_DEPTH} deep, not run\n')
            return
        self.write("\nExecuting the startup file\n" if startup else f'\nExecuting the file "{name}"\n')
        self._depth += 1
        try:
            for raw in content.splitlines():
                line = raw[:LINE_MAX].strip()
                if not line or line[0] in "#;":
                    continue
                work = self.execute(line, scripted=True)
                if work is not None:
                    await work
                if self._closed:
                    return
        finally:
            self._depth -= 1


# -- help dispatch -------------------------------------------------------------------------------------------------


def _help_show(argv: list[str]) -> str:
    what = argv[1] if len(argv) > 2 else ""
    if what:
        if "arp".startswith(what):
            return texts.HELP_SHOW_ARP
        if "dump".startswith(what):
            return texts.HELP_SHOW_DUMP
        if what == "ip":
            return texts.HELP_SHOW_IP
        if "ipv6".startswith(what):
            return texts.HELP_SHOW_IPV6
    return texts.HELP_SHOW


def _help_ip(argv: list[str]) -> str:
    what = argv[1] if len(argv) > 2 else ""
    if what and ":" not in what:
        if "dhcp".startswith(what):
            return texts.HELP_DHCP
        if "auto".startswith(what):
            return texts.HELP_IP
        if "mtu".startswith(what):
            return texts.HELP_IP_MTU
        if "dns".startswith(what):
            return texts.HELP_IP_DNS
    return texts.HELP_IP


def _help_set(argv: list[str]) -> str:
    what = argv[1] if len(argv) > 2 else ""
    if what:
        if "echo".startswith(what):
            return texts.HELP_SET_ECHO
        if "dump".startswith(what):
            return texts.HELP_SET_DUMP
    return texts.HELP_SET


HELPS: dict[str, Callable[[list[str]], str]] = {
    "?": lambda argv: texts.HELP_HELP,
    "help": lambda argv: texts.HELP_HELP,
    "clear": lambda argv: texts.HELP_CLEAR,
    "ip": _help_ip,
    "load": lambda argv: texts.HELP_LOAD,
    "ping": lambda argv: texts.HELP_PING,
    "tracer": lambda argv: texts.HELP_TRACE,
    "save": lambda argv: texts.HELP_SAVE,
    "set": _help_set,
    "show": _help_show,
    "sleep": lambda argv: texts.HELP_SLEEP,
    "zzz": lambda argv: texts.HELP_SLEEP,
}


# -- helpers -------------------------------------------------------------------------------------------------------


def _int(text: str) -> int:
    """C's atoi: the leading digits (with a sign), 0 when there are none."""
    digits = ""
    for index, char in enumerate(text):
        if char.isdigit() or (index == 0 and char in "+-"):
            digits += char
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0


def _columns(fields: list[tuple[int, str]]) -> str:
    """vpcs's fixed-column rows: each text written at its column over a line of spaces (a longer text runs into the
    next column, which then overwrites it); the line ends after the last text."""
    line = [" "] * 127
    end = 0
    for column, text in fields:
        for offset, char in enumerate(text):
            if column + offset < len(line):
                line[column + offset] = char
        end = column + len(text)
    return "".join(line[:end])
