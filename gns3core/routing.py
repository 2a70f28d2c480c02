"""Route declarations: each route states its path, status, input and output schema once; this module enforces them.

A handler receives an `ApiRequest` and returns JSON-able data (sent with the route's status), `None` (an empty body
with that status), or an aiohttp response it built itself (streams). It raises `ApiError`s for everything else.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jsonschema
from aiohttp import web

from gns3core.errors import ApiError, BadRequest
from gns3core.projects import check_uuid

if TYPE_CHECKING:
    from gns3core.server import Server

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
Handler = Callable[["ApiRequest"], Awaitable[Any]]

_ID_PARAMS = {"project_id": "Project", "vm_id": "VM", "device_id": "Device"}
_LOCK_PARAMS = ("vm_id", "device_id")


def dumps(data: Any) -> bytes:
    """API v1 bodies: indented by 4, keys sorted."""
    return json.dumps(data, indent=4, sort_keys=True).encode("utf-8")


class Encoded:
    """JSON data encoded once and sent many times: hot answers that change only with the configuration (version)."""

    __slots__ = ("data", "body")

    def __init__(self, data: Any) -> None:
        self.data = data
        self.body = dumps(data)


@dataclass
class Route:
    """One API endpoint. `raw` routes get the body unparsed (uploads); `description` feeds the docs."""

    method: str
    path: str
    handler: Handler
    status: int = 200
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    description: str = ""
    raw: bool = False
    plugin: str = field(default="", compare=False)


class ApiRequest:
    """What a handler sees: the path parameters, the validated body, the server and the aiohttp request."""

    __slots__ = ("raw", "match", "json", "server", "route")

    def __init__(self, raw: web.Request, match: dict[str, str], body: Any, server: Server, route: Route) -> None:
        self.raw = raw
        self.match = match
        self.json = body
        self.server = server
        self.route = route

    def int_param(self, name: str) -> int:
        return int(self.match[name])

    @property
    def project(self):
        return self.server.projects.get(self.match["project_id"])

    def headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = self.server.common_headers(self.route.path)
        if content_type:
            headers["Content-Type"] = content_type
        return headers


class VMLocks:
    """One lock per VM or device id: requests on one VM run one at a time, different VMs run in parallel."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def acquire(self, key: str) -> asyncio.Lock:
        lock, waiters = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, waiters + 1)
        await lock.acquire()
        return lock

    def release(self, key: str, lock: asyncio.Lock) -> None:
        lock.release()
        _, waiters = self._locks.get(key, (lock, 1))
        if waiters <= 1:
            self._locks.pop(key, None)
        else:
            self._locks[key] = (lock, waiters - 1)

    def __len__(self) -> int:
        return len(self._locks)


def json_response(data: Any, status: int, headers: dict[str, str]) -> web.Response:
    headers["Content-Type"] = JSON_TYPE  # exactly this: the GNS3 client compares the string
    return web.Response(body=dumps(data), status=status, headers=headers)


def empty_response(status: int, headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, headers=headers)


def error_response(status: int, message: str, headers: dict[str, str], extra: dict[str, Any] | None = None):
    body: dict[str, Any] = {"status": status, "message": message}
    if extra:
        body.update(extra)
    return json_response(body, status, headers)


def schema_error_message(validator: jsonschema.protocols.Validator, body: Any) -> str | None:
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return None
    return f"Invalid JSON: {error.message} in schema: {json.dumps(error.schema)}"


def check_auth(server: Server, request: web.Request) -> web.Response | None:
    expected = server.auth_header
    if expected is None:
        return None
    given = request.headers.get("Authorization", "")
    if hmac.compare_digest(given.encode("utf-8", errors="replace"), expected.encode("utf-8")):
        return None
    response = web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="GNS3 server"'})
    response.force_close()
    return response


def basic_auth_header(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def make_handler(route: Route, server: Server) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a route handler with auth, the per-VM lock, id checks, body parsing, validation and error mapping."""
    validator = jsonschema.Draft4Validator(route.input) if route.input is not None else None
    out_validator = jsonschema.Draft4Validator(route.output) if route.output is not None else None
    lock_param = next((p for p in _LOCK_PARAMS if "{" + p + "}" in route.path), None)
    id_params = [(p, what) for p, what in _ID_PARAMS.items() if "{" + p + "}" in route.path]
    locks = server.locks

    async def run(request: web.Request) -> web.StreamResponse:
        body: Any = {}
        try:
            if server.auth_header is not None:
                denied = check_auth(server, request)
                if denied is not None:
                    return denied
            match = request.match_info
            for param, what in id_params:
                check_uuid(match[param], what)
            if not route.raw and request.body_exists:
                data = await request.read()
                if data:
                    try:
                        body = json.loads(data.decode("utf-8"))
                    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
                        body = {"malformed_json": data.decode("utf-8", errors="replace")}
                        raise BadRequest(f"Invalid JSON {exc}") from exc
            if server.record_path is not None:
                server.record_request(request, body)
            if validator is not None:
                problem = schema_error_message(validator, body)
                if problem is not None:
                    raise BadRequest(problem)
            result = await route.handler(ApiRequest(request, match, body, server, route))
        except ApiError as exc:
            extra = {"path": route.path, "request": body} if exc.status == 400 else None
            return error_response(exc.status, exc.message, server.common_headers(route.path), extra)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except web.HTTPException as exc:  # from aiohttp itself, e.g. a body over the size limit
            if exc.status < 400:
                raise
            text = exc.text or ""
            message = text if text and not text.startswith(str(exc.status)) else f"{exc.status}: {exc.reason}"
            return error_response(exc.status, message, server.common_headers(route.path))
        except Exception as exc:
            log.exception("Unexpected error on %s %s", request.method, request.path)
            message = f"Internal server error ({type(exc).__name__}); the server log has the details"
            return error_response(500, message, server.common_headers(route.path))
        headers = server.common_headers(route.path)
        encoded = type(result) is Encoded
        if encoded and not server.validate_output:
            headers["Content-Type"] = JSON_TYPE
            return web.Response(body=result.body, status=route.status, headers=headers)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return empty_response(route.status, headers)
        data = result.data if encoded else result
        if out_validator is not None and server.validate_output:
            error = jsonschema.exceptions.best_match(out_validator.iter_errors(data))
            if error is not None:
                log.error("Output of %s does not match its schema: %s", route.path, error.message)
                return error_response(500, f"Output does not match the schema: {error.message}", headers)
        return json_response(data, route.status, headers)

    if lock_param is None:
        return run

    async def handle(request: web.Request) -> web.StreamResponse:
        key = request.match_info[lock_param]
        lock = await locks.acquire(key)
        try:
            return await run(request)
        finally:
            locks.release(key, lock)

    return handle


SERVER_HEADER_PREFIX = f"Python/{sys.version_info.major}.{sys.version_info.minor}"
