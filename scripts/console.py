#!/usr/bin/env python3
"""Type one command on a node's telnet console and print what it answers, for scripts and walkthroughs.

    python3 scripts/console.py 127.0.0.1 5000 "ping 10.0.0.2 -c 3" --expect "bytes from 10.0.0.2"

It waits for the console's prompt (pressing Enter until one shows), sends the command, and prints the output until
the prompt comes back and the console stays quiet. With --expect it exits 1 unless that text was printed. Telnet
negotiation and terminal queries (busybox sh asks for the cursor position with ESC[6n) are removed from the output.
Interactive use is simply `telnet HOST PORT`. Needs only Python's standard library.
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
import time

IAC, SB, SE = 255, 250, 240
PROMPT = re.compile(r"(?:[>#$]) ?$")  # VPCS "PC1> ", a shell's "# " or "$ "
TERMINAL_QUERY = re.compile(r"\x1b\[[0-9;?]*[nc]")


def strip_telnet(data: bytes) -> bytes:
    """Drop telnet negotiation (IAC WILL/WONT/DO/DONT x, IAC SB ... IAC SE); IAC IAC stays one byte."""
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] != IAC:
            out.append(data[i])
            i += 1
        elif i + 1 < len(data) and data[i + 1] == SB:
            end = data.find(bytes([IAC, SE]), i + 2)
            i = len(data) if end < 0 else end + 2
        elif i + 1 < len(data) and data[i + 1] == IAC:
            out.append(IAC)
            i += 2
        else:
            i += 3 if i + 1 < len(data) and 251 <= data[i + 1] <= 254 else 2
    return bytes(out)


def readable(data: bytes) -> str:
    text = strip_telnet(data).decode(errors="replace")
    return TERMINAL_QUERY.sub("", text).replace("\r", "")


class Console:
    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection((host, port), timeout=2)
                break
            except OSError as exc:
                if time.monotonic() > self.deadline:
                    raise SystemExit(f"console {host}:{port} does not accept connections: {exc}") from None
                time.sleep(0.5)

    def read_until_prompt(self, quiet: float, expect: str | None = None, nudge: bool = False) -> str:
        """Read until the output ends with a prompt and nothing more comes for `quiet` seconds."""
        data = b""
        last_nudge = time.monotonic()
        while time.monotonic() < self.deadline:
            text = readable(data)
            done = bool(PROMPT.search(text)) or (expect is not None and expect in text and not text.endswith("\n"))
            self.sock.settimeout(quiet if done else 0.5)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                if done:
                    return text
                if nudge and time.monotonic() - last_nudge > 2:
                    self.sock.sendall(b"\r\n")  # a console shows its prompt on input only
                    last_nudge = time.monotonic()
                continue
            if not chunk:
                return readable(data)
            data += chunk
        return readable(data)

    def run(self, command: str, expect: str | None) -> str:
        self.sock.sendall(b"\r\n")
        self.read_until_prompt(quiet=1.0, nudge=True)
        self.sock.sendall(command.encode() + b"\r\n")
        return self.read_until_prompt(quiet=1.5, expect=expect)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one command on a telnet console and print its output")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("command")
    parser.add_argument("--expect", help="exit 1 unless the output contains this text")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole exchange (default 120)")
    args = parser.parse_args(argv)
    console = Console(args.host, args.port, args.timeout)
    try:
        output = console.run(args.command, args.expect)
    finally:
        console.sock.close()
    print(output.strip("\n"))
    if args.expect is not None and args.expect not in output:
        print(f"console.py: {args.expect!r} did not appear within {args.timeout:.0f} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
