"""Who may talk to the server: credentials, the `Host` a request names and the web page (`Origin`) it comes from.

One check on every request, routed or not, before anything else runs. Clients that are not browsers (the GNS3
client, curl, requests) send no `Origin`; a browser always does on a cross-site request, so refusing unknown
origins is what keeps a web page from driving the server. Checking `Host` closes DNS rebinding: a page of
`evil.example` whose name is re-pointed to 127.0.0.1 still sends `Host: evil.example`.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gns3core.config import Section

AUTH_REALM = 'Basic realm="GNS3 server"'
_HOST_CACHE_SIZE = 256


def basic_auth_header(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def split_list(value: str | None) -> list[str]:
    """A configuration list: comma or whitespace separated."""
    return [item for item in (value or "").replace(",", " ").split() if item]


def host_name(header: str) -> str:
    """The host part of a `Host` header, lower case, without port or trailing dot."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header[1:]
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AccessPolicy:
    """The configuration's answer to "may this request go on?", computed once per configuration load.

    Keys of `[Server]`: `auth`/`user`/`password`, `allowed_origins` (origins whose pages may call the API, e.g.
    `http://gns3.example:8080`; `*` allows every page), `allowed_hosts` (names the server may be reached by besides
    IP addresses, `localhost` and this machine's name; `*` allows any).
    """

    def __init__(self, section: Section, bind_host: str) -> None:
        user = section.get("user") or ""
        self.auth_header = basic_auth_header(user, section.get("password") or "") if (
            section.getbool("auth") and user) else None
        self._auth_bytes = self.auth_header.encode("utf-8") if self.auth_header else b""
        origins = {o.lower().rstrip("/") for o in split_list(section.get("allowed_origins"))}
        self.any_origin = "*" in origins
        self.origins = frozenset(origins - {"*"})
        hosts = {host_name(h) for h in split_list(section.get("allowed_hosts"))}
        self.any_host = "*" in hosts
        names = {"localhost", socket.gethostname().lower()}
        bind = host_name(bind_host)
        if bind and not is_ip_literal(bind):
            names.add(bind)
        self.host_names = frozenset((hosts - {"*"}) | names)
        self._host_ok: dict[str, bool] = {}

    # -- the checks ------------------------------------------------------------------------------------------------

    def host_allowed(self, header: str | None) -> bool:
        """IP literals cannot be rebound, so they pass; names must be known to the configuration."""
        if header is None or self.any_host:
            return True
        known = self._host_ok.get(header)
        if known is not None:
            return known
        name = host_name(header)
        allowed = name in self.host_names or is_ip_literal(name)
        if len(self._host_ok) < _HOST_CACHE_SIZE:
            self._host_ok[header] = allowed
        return allowed

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """Configured origins, and the server's own pages (same origin as the `Host` asked for)."""
        if self.any_origin:
            return True
        normal = origin.lower().rstrip("/")
        if normal in self.origins:
            return True
        if host is not None:
            scheme, _, rest = normal.partition("://")
            return scheme in ("http", "https") and rest == host.strip().lower()
        return False

    def credentials_ok(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode("utf-8", errors="replace"), self._auth_bytes)

    def refuse(self, request: web.Request, route_path: str,
               headers_of: Callable[[str], dict[str, str]]) -> web.Response | None:
        """None when the request may go on; otherwise the 401 or 403 to send (`headers_of(route_path)` gives its
        headers). Cheap when it lets a request through: a few header look-ups and one dict hit."""
        if self.auth_header is not None and not self.credentials_ok(request):
            response = web.Response(status=401, headers={"WWW-Authenticate": AUTH_REALM})
            response.force_close()
            return response
        request_headers = request.headers
        host = request_headers.get("Host")
        if host is not None and not self.any_host and not self._host_ok.get(host) and not self.host_allowed(host):
            return _forbidden(f"Host {_short(host)} is not a name of this server: add it to [Server] allowed_hosts "
                              "to reach the server by that name", headers_of(route_path))
        origin = request_headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin, host):
            return _forbidden(f"Requests from web pages of {_short(origin)} are refused: add that origin to "
                              "[Server] allowed_origins to allow them", headers_of(route_path))
        return None


def _short(value: str | None, limit: int = 100) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _forbidden(message: str, headers: dict[str, str]) -> web.Response:
    from gns3core.routing import error_response

    return error_response(403, message, headers)
