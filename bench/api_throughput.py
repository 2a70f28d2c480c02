"""Throughput of `GET /v1/version` against a real `gns3server` process; prints one JSON object.

5,000 requests, 32 in flight over keep-alive connections, client on the same machine. The client is `wrk` when it is
installed (Debian package `wrk`): a Lua script stops each thread after its share of requests and times the run with
the monotonic clock. Without wrk, a multi-process raw-socket HTTP/1.1 client written here does the same job.

    python bench/api_throughput.py [--requests 5000] [--concurrency 32] [--runs 5] [--client auto|wrk|python]

`server_cpu_us_per_request` (server CPU time / requests) is printed too: other load on the machine lowers req/s a
lot but this figure only a little, so it shows whether the server itself got slower.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gns3core.testing.server import ServerProcess, write_config

PATH = "/v1/version"

WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[ struct gns3_ts { long tv_sec; long tv_nsec; }; int clock_gettime(int, struct gns3_ts *); ]]
local ts = ffi.new("struct gns3_ts")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local threads = {}
local share = tonumber(os.getenv("BENCH_SHARE"))

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  req = wrk.format("GET", nil, {["Content-Type"] = "application/json"}, "{}")
  count = 0
  errors = 0
  first = 0
  last = 0
end

function request()
  if first == 0 then first = now_us() end
  return req
end

function response(status, headers, body)
  count = count + 1
  if status ~= 200 then errors = errors + 1 end
  last = now_us()
  if count >= share then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local total, errs, t0, t1 = 0, 0, nil, 0
  for _, t in ipairs(threads) do
    total = total + t:get("count")
    errs = errs + t:get("errors")
    local f = t:get("first")
    if f > 0 and (t0 == nil or f < t0) then t0 = f end
    if t:get("last") > t1 then t1 = t:get("last") end
  end
  io.write(string.format(
    'BENCH {"requests": %d, "errors": %d, "seconds": %.6f, "p50_ms": %.4f, "p99_ms": %.4f, "socket_errors": %d}\n',
    total, errs, (t1 - t0) / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


# -- the server under test --------------------------------------------------------------------------------------------

def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server process so far (from /proc, no extra dependency)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- client 1: wrk ----------------------------------------------------------------------------------------------------

def run_wrk(port: int, requests: int, concurrency: int, workdir: Path) -> dict:
    threads = 2 if concurrency >= 2 else 1
    script = workdir / "bench.lua"
    script.write_text(WRK_SCRIPT)
    # wrk runs for a fixed duration (always waited out); the script stops every thread after its share and times the
    # real work itself. The duration leaves room for a server half as fast as upstream GNS3.
    env = {**os.environ, "BENCH_SHARE": str(-(-requests // threads))}
    duration = max(3, -(-requests // 800))
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--timeout", "10s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no result: {out.stdout}\n{out.stderr}")
    data = json.loads(line[len("BENCH "):])
    return {
        "requests": data["requests"], "errors": data["errors"] + data["socket_errors"],
        "requests_per_s": data["requests"] / data["seconds"], "p50_ms": data["p50_ms"], "p99_ms": data["p99_ms"],
    }


# -- client 2: raw sockets, several processes ------------------------------------------------------------------------

REQUEST = (f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "Content-Length: 2\r\n\r\n{}").encode()


def _response_end(buffer: bytes) -> int:
    """Index just past the first complete response in buffer, or -1 (Content-Length framing only)."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return -1
    length = 0
    for line in buffer[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    end = head_end + 4 + length
    return end if len(buffer) >= end else -1


def _client_worker(port: int, connections: int, requests: int, start_at: float, queue) -> None:
    """One process: `connections` keep-alive connections, one request in flight on each, `requests` in all."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        socks.append(sock)
    while time.time() < start_at:
        time.sleep(0.001)
    latencies: list[float] = []
    errors = 0
    sent = 0
    state: dict[socket.socket, list] = {}
    t0 = time.perf_counter()
    for sock in socks:
        if sent < requests:
            sock.sendall(REQUEST)
            state[sock] = [time.perf_counter(), b""]
            sent += 1
            sel.register(sock, selectors.EVENT_READ)
    while state:
        for key, _ in sel.select():
            sock = key.fileobj
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("server closed a keep-alive connection")
            entry = state[sock]
            entry[1] += chunk
            end = _response_end(entry[1])
            if end < 0:
                continue
            latencies.append(time.perf_counter() - entry[0])
            if not entry[1].startswith(b"HTTP/1.1 200"):
                errors += 1
            if sent < requests:
                sock.sendall(REQUEST)
                state[sock] = [time.perf_counter(), entry[1][end:]]
                sent += 1
            else:
                sel.unregister(sock)
                del state[sock]
    t1 = time.perf_counter()
    for sock in socks:
        sock.close()
    queue.put((t0, t1, latencies, errors))


def run_python_client(port: int, requests: int, concurrency: int) -> dict:
    processes = max(1, min(os.cpu_count() or 1, concurrency))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 0.5
    workers = []
    for i in range(processes):
        conns = concurrency // processes + (1 if i < concurrency % processes else 0)
        share = requests // processes + (1 if i < requests % processes else 0)
        workers.append(ctx.Process(target=_client_worker, args=(port, conns, share, start_at, queue)))
    for w in workers:
        w.start()
    results = [queue.get(timeout=300) for _ in workers]
    for w in workers:
        w.join()
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable across processes.
    start = min(r[0] for r in results)
    end = max(r[1] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    return {
        "requests": len(latencies), "errors": sum(r[3] for r in results),
        "requests_per_s": len(latencies) / (end - start),
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
    }


# -- main -------------------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5,
                        help="measure this many times against the same server (best and median are reported)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    with tempfile.TemporaryDirectory(prefix="gns3-bench-") as tmp:
        workdir = Path(tmp)
        server = ServerProcess(write_config(workdir / "gns3_server.conf", workdir)).start()
        port, pid = server.port, server.pid
        try:
            runs = []
            for _ in range(args.runs):
                cpu_before = server_cpu_seconds(pid)
                if client == "wrk":
                    run = run_wrk(port, args.requests, args.concurrency, workdir)
                else:
                    run = run_python_client(port, args.requests, args.concurrency)
                # CPU time the server spent per request: unlike req/s, barely moved by other load on the machine.
                run["server_cpu_us_per_request"] = (server_cpu_seconds(pid) - cpu_before) / run["requests"] * 1e6
                runs.append(run)
        finally:
            server.stop()
    rates = [r["requests_per_s"] for r in runs]
    best = max(runs, key=lambda r: r["requests_per_s"])
    result = {
        "benchmark": "api_throughput", "endpoint": f"GET {PATH}", "client": client,
        "requests": args.requests, "concurrency": args.concurrency, "cpu_count": os.cpu_count(),
        "requests_per_s": round(best["requests_per_s"], 1),
        "p50_ms": round(best["p50_ms"], 3), "p99_ms": round(best["p99_ms"], 3),
        "errors": sum(r["errors"] for r in runs),
        "every_run_complete": all(r["requests"] >= args.requests for r in runs),
        "runs": len(runs), "median_requests_per_s": round(statistics.median(rates), 1),
        "all_requests_per_s": [round(x, 1) for x in rates],
        "server_cpu_us_per_request": round(min(r["server_cpu_us_per_request"] for r in runs), 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
