"""`gns3server`: parse the command line, load the configuration and plugins, serve the API."""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from gns3core import __version__
from gns3core.config import Config
from gns3core.errors import Conflict

log = logging.getLogger("gns3core")

# Command-line flag -> [Server] key it overrides (flags always win over the files, even after a reload).
FLAG_KEYS = {
    "host": "host", "port": "port", "local": "local", "allow": "allow_remote_console", "ssl": "ssl",
    "certfile": "certfile", "certkey": "certkey", "record": "record", "debug": "debug", "quiet": "quiet",
    "controller": "controller",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gns3server", description="GNS3 API v1 compatible network-emulation server")
    parser.add_argument("-v", "--version", action="store_true", help="show the version and exit")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default 8000)")
    parser.add_argument("--ssl", action="store_true", default=None, help="serve HTTPS (needs --certfile, --certkey)")
    parser.add_argument("--certfile", help="PEM certificate for --ssl")
    parser.add_argument("--certkey", help="PEM private key for --ssl")
    parser.add_argument("--config", help="use only this configuration file")
    parser.add_argument("--record", help="append a curl line for every API request to this file")
    parser.add_argument("-L", "--local", action="store_true", default=None,
                        help="local mode: allow config reload, shutdown and paths outside the projects directory")
    parser.add_argument("-A", "--allow", action="store_true", default=None,
                        help="consoles listen on every address, not only the bind address")
    parser.add_argument("-q", "--quiet", action="store_true", default=None, help="no log output on stdout")
    parser.add_argument("-d", "--debug", action="store_true", default=None, help="debug logging")
    parser.add_argument("--log", help="send logs to this file")
    parser.add_argument("--pid", help="write the process id to this file (refuse to start if it names a live one)")
    parser.add_argument("--daemon", action="store_true", help="detach from the terminal before starting")
    parser.add_argument("--controller", action="store_true", default=None,
                        help="accepted for the GNS3 1.5.4 client, which passes it to the server it starts; "
                             "only logged (API v1 has no controller)")
    parser.add_argument("--list-plugins", action="store_true",
                        help="print every plugin, whether its emulator program was found and its version, and the "
                             "API v1 kinds that are not installed, then exit")
    parser.add_argument("--plugin", action="append", default=[], metavar="PATH",
                        help="also load the plugin module in this Python file (development without packaging; "
                             "may be given more than once)")
    return parser


def build_new_plugin_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gns3server new-plugin",
                                     description="Write a new emulator plugin distribution that passes its tests")
    parser.add_argument("name", help="the emulator kind, e.g. myemu (lower case letters, digits, underscores)")
    parser.add_argument("directory", help="where to write the distribution (must not exist or be empty)")
    return parser


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    server: dict[str, str] = {}
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        server[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return {"Server": server} if server else {}


def setup_logging(args: argparse.Namespace, config: Config) -> None:
    level = logging.DEBUG if config.server.getbool("debug") else logging.INFO
    handlers: list[logging.Handler] = []
    if args.log:
        handlers.append(logging.FileHandler(args.log))
    elif not config.server.getbool("quiet"):
        handlers.append(logging.StreamHandler(sys.stdout))
    else:
        handlers.append(logging.NullHandler())
    logging.basicConfig(level=level, handlers=handlers, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def check_pid_file(path: str) -> None:
    pid_path = Path(path)
    if pid_path.exists():
        try:
            old = int(pid_path.read_text().strip())
            os.kill(old, 0)
        except (ValueError, ProcessLookupError, PermissionError, OSError):
            pass
        else:
            print(f"A server is already running with pid {old} (from {pid_path})", file=sys.stderr)
            sys.exit(1)
    pid_path.write_text(f"{os.getpid()}\n")
    atexit.register(_remove_pid_file, pid_path, os.getpid())


def _remove_pid_file(pid_path: Path, pid: int) -> None:
    """The pid file goes with the process that wrote it (a daemon's parent exits without removing it)."""
    try:
        if os.getpid() == pid and pid_path.read_text().strip() == str(pid):
            pid_path.unlink()
    except OSError:
        pass


def daemonize() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.umask(0o007)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


def list_plugins(config: Config, plugin_files: list[str] | None = None) -> int:
    from gns3core.plugins import load_plugins

    _pm, registry, report = load_plugins(plugin_files=plugin_files or ())
    installed = [name for name in report.loaded if not name.startswith("gns3core.builtin")]
    if not installed and not report.failed:
        print("No emulator plugin is installed (entry-point group gns3server.plugins); the core API alone is served")
    for name, origin in report.loaded.items():
        if name.startswith("gns3core.builtin"):
            continue
        kinds = [e for e in registry.emulators.values() if e.plugin == name]
        if not kinds:
            print(f"{name} ({origin}): no emulator kind (it adds routes only)")
        for emulator in kinds:
            status = emulator.manager.probe(config)
            state = "found" if status.found else "NOT FOUND"
            details = ", ".join(x for x in (status.path, f"version {status.version}" if status.version else None,
                                             status.message) if x)
            suffix = f" ({details})" if details else ""
            print(f"{name} ({origin}): emulator {emulator.name}: program {state}{suffix}")
    for name, reason in report.failed.items():
        print(f"{name}: FAILED to load: {reason}")
    for kind in report.missing_kinds:
        print(f"{kind.segment}: not installed ({kind.title}: install {kind.distribution})")
    return 1 if report.failed else 0


def new_plugin(argv: list[str]) -> int:
    from gns3core.scaffold import ScaffoldError, write_plugin

    args = build_new_plugin_parser().parse_args(argv)
    try:
        written = write_plugin(args.name, Path(args.directory))
    except ScaffoldError as exc:
        print(f"gns3server new-plugin: {exc}", file=sys.stderr)
        return 2
    print(f"Wrote the distribution gns3-{args.name.replace('_', '-')} in {written}.")
    print(f"Next: pip install -e '{written}' && cd '{written}' && python -m pytest")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["new-plugin"]:
        return new_plugin(argv[1:])
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"gns3core {__version__}")
        return 0
    config = Config([args.config] if args.config else None, overrides_from_args(args))
    if args.list_plugins:
        return list_plugins(config, args.plugin)
    if args.daemon:
        daemonize()
    setup_logging(args, config)
    if args.pid:
        check_pid_file(args.pid)
    return serve(config, plugin_files=args.plugin)


def use_pidfd_child_watcher() -> None:
    """Python 3.11 watches each child process with a thread of its own; a pidfd watcher needs none, which matters
    with a hundred emulators running (3.12 and later do this by default)."""
    import asyncio
    import warnings

    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return  # kernel without pidfd: keep the default watcher
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


def unprotected_bind_refusal(section: Any) -> str | None:
    """Why the server must not start: reachable from other machines with auth off (anyone there could run programs
    through it). None when it binds loopback only, has auth on, or the configuration opts out explicitly."""
    from gns3core.access import is_loopback

    host = section.get("host") or "127.0.0.1"
    if is_loopback(host) or (section.getbool("auth") and section.get("user")):
        return None
    if section.getbool("allow_remote_without_auth"):
        log.warning("Listening on %s without authentication ([Server] allow_remote_without_auth = true): anyone who "
                    "can reach this address controls the server", host)
        return None
    return (f"Refusing to listen on {host} without authentication: anyone who can reach that address could create "
            "VMs and run programs through this server. Turn auth on ([Server] auth = true, user = NAME, "
            "password = SECRET), or bind 127.0.0.1, or accept the risk explicitly with "
            "[Server] allow_remote_without_auth = true")


def serve(config: Config, extra_plugins: list[Any] | None = None, plugin_files: list[str] | None = None) -> int:
    """Run the server until SIGTERM/SIGINT or `POST /v1/server/shutdown`; `extra_plugins` are registered in-process."""
    from aiohttp import web

    from gns3core.app import SERVER_KEY, create_app
    from gns3core.emulator.process import kill_all_live

    section = config.server
    host = section.get("host") or "127.0.0.1"
    port = section.getint("port", 8000)
    refusal = unprotected_bind_refusal(section)
    if refusal is not None:
        log.critical(refusal)
        print(refusal, file=sys.stderr)
        return 1
    ssl_context = None
    if section.getbool("ssl"):
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(section.get("certfile") or "", section.get("certkey") or "")
        except (OSError, ssl.SSLError) as exc:
            log.critical("Cannot use the TLS certificate or key: %s", exc)
            return 1
    app = create_app(config, extra_plugins=extra_plugins, validate_output=section.getbool("debug"),
                     plugin_files=plugin_files or ())
    server = app[SERVER_KEY]
    server.request_stop = lambda: os.kill(os.getpid(), signal.SIGTERM)
    atexit.register(kill_all_live)
    log.info("gns3core %s (API v1 compatibility %s) listening on %s:%s, local=%s, plugins: %s", __version__,
             server.version, host, port, server.local, ", ".join(sorted(server.emulators)) or "none")
    try:
        log.info("UDP tunnels bind to %s ([Server] udp_host)", server.udp_host)
    except Conflict as exc:
        log.critical("%s", exc.message)
        print(exc.message, file=sys.stderr)
        return 1
    missing = server.plugin_report.missing_kinds
    if missing:
        log.info("Kinds not installed (their routes answer 404): %s",
                 ", ".join(f"{kind.title} ({kind.distribution})" for kind in missing))
    if section.getbool("controller"):
        log.info("Controller mode is on: API v1 has no controller API, so this changes nothing")
    use_pidfd_child_watcher()
    # What is loaded by now (modules, schemas, routes) lives as long as the server: keep it out of the cyclic garbage
    # collector's full passes, which otherwise pause the event loop for 100 ms and more on a busy machine.
    gc.freeze()
    try:
        web.run_app(app, host=host, port=port, ssl_context=ssl_context, access_log=None, print=None,
                    handle_signals=True)
    except OSError as exc:
        log.critical("Cannot listen on %s:%s: %s", host, port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
