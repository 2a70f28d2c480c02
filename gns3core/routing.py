"""Route declarations: each route states its path, status, input and output schema once; this module enforces them.

A handler receives an `ApiRequest` and returns JSON-able data (sent with the route's status), `None` (an empty body
with that status), or an aiohttp response it built itself (streams). It raises `ApiError`s for everything else.
"""

from __future__ import annotations

import asyncio
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
from gns3core.schema_errors import request_problem

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
    # Merge the query string into the body before validation, each value a string (released 1.5.x does this on
    # every route; here only routes that declare it, so a stray query string never turns into a 400 elsewhere).
    query: bool = False
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
        """Headers of a response the handler builds itself (a stream): the common ones, CORS when allowed."""
        headers = self.server.common_headers(self.route.path)
        if content_type:
            headers["Content-Type"] = content_type
        origin = self.raw.headers.get("Origin")
        if origin is not None:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Vary"] = "Origin"
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


# The largest JSON body read (uploads are streamed, not bounded by this): two 1 MiB router configurations in base64
# fit with room to spare, and ten hostile bodies at once cost tens of megabytes, not gigabytes.
MAX_JSON_BODY = 8 * 1024 * 1024
# Bodies larger than this are parsed and validated in a worker thread, so a big one never stalls other clients.
THREAD_PARSE_THRESHOLD = 64 * 1024
ECHO_STRING = 200  # characters of each string of a refused request echoed in the 400 body
ECHO_ITEMS = 50
ECHO_DEPTH = 8


def parse_json_body(data: bytes) -> Any:
    """The request body as JSON whatever its Content-Type (the GNS3 client and `curl -d` send no JSON type).

    400 for text that is not JSON, is nested too deeply to parse, or carries strings no host API takes
    (a NUL byte, a lone surrogate): those would fail later as a 500 deep inside a handler.
    """
    try:
        body = json.loads(data.decode("utf-8"))
    except RecursionError as exc:
        raise BadRequest("Invalid JSON: the body is nested too deeply") from exc
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise MalformedBody(f"Invalid JSON {exc}", data) from exc
    if b"\\u" in data:  # NUL and surrogates can only arrive as \u escapes: most bodies skip the walk
        check_strings(body)
    return body


class MalformedBody(BadRequest):
    """A body that is not JSON: echoed back as `{"malformed_json": <text>}`."""

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(message)
        text = data[: ECHO_STRING * 4].decode("utf-8", errors="replace")
        self.echo = {"malformed_json": text if len(data) <= ECHO_STRING * 4 else text + "..."}


def check_strings(body: Any) -> None:
    """400 naming the field for a string (value or key) with a NUL byte or a lone surrogate."""
    stack: list[tuple[Any, str]] = [(body, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _check_string(key, f"{where}.{key}" if where else str(key))
                stack.append((item, f"{where}.{key}" if where else str(key)))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(value))
        elif isinstance(value, str):
            _check_string(value, where or "the body")


def _check_string(value: str, where: str) -> None:
    if "\x00" in value:
        raise BadRequest(f"Invalid JSON: {where[:100]} contains a NUL character, which is not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequest(f"Invalid JSON: {where[:100]} contains a lone UTF-16 surrogate, which is not allowed") from exc


def abridged(value: Any, depth: int = 0) -> Any:
    """A refused request as echoed in the 400 body: long strings and lists cut, deep nesting elided."""
    if isinstance(value, str):
        return value if len(value) <= ECHO_STRING else value[:ECHO_STRING] + f"... ({len(value)} characters)"
    if depth >= ECHO_DEPTH and isinstance(value, (dict, list)):
        return "..."
    if isinstance(value, dict):
        items = list(value.items())
        echo = {abridged(k) if isinstance(k, str) else k: abridged(v, depth + 1) for k, v in items[:ECHO_ITEMS]}
        if len(items) > ECHO_ITEMS:
            echo["..."] = f"{len(items) - ECHO_ITEMS} more keys"
        return echo
    if isinstance(value, list):
        echo_list = [abridged(v, depth + 1) for v in value[:ECHO_ITEMS]]
        if len(value) > ECHO_ITEMS:
            echo_list.append(f"... {len(value) - ECHO_ITEMS} more items")
        return echo_list
    return value


def _parse_and_validate(data: bytes, validator: jsonschema.protocols.Validator | None) -> Any:
    body = parse_json_body(data)
    if validator is not None:
        problem = request_problem(validator, body)
        if problem is not None:
            raise InvalidBody(problem, body)
    return body


class InvalidBody(BadRequest):
    """A parsed body its schema refuses (carries the body for the 400 echo)."""

    def __init__(self, message: str, body: Any) -> None:
        super().__init__(message)
        self.body = body


def make_handler(route: Route, server: Server) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a route handler with the access check, the per-VM lock, id checks, body parsing, validation and error
    mapping."""
    validator = jsonschema.Draft4Validator(route.input) if route.input is not None else None
    out_validator = jsonschema.Draft4Validator(route.output) if route.output is not None else None
    lock_param = next((p for p in _LOCK_PARAMS if "{" + p + "}" in route.path), None)
    id_params = [(p, what) for p, what in _ID_PARAMS.items() if "{" + p + "}" in route.path]
    locks = server.locks

    async def run(request: web.Request) -> web.StreamResponse:
        body: Any = {}
        validated = False
        try:
            denied = server.access.refuse(request, route.path, server.common_headers)
            if denied is not None:
                return denied
            match = request.match_info
            for param, what in id_params:
                check_uuid(match[param], what)
            if not route.raw and request.body_exists:
                data = await request.read()
                if data:
                    if len(data) > THREAD_PARSE_THRESHOLD:
                        body = await asyncio.to_thread(_parse_and_validate, data, validator)
                        validated = True
                    else:
                        body = parse_json_body(data)
            if route.query and request.query_string:
                body, validated = merge_query(body, request), False
            if server.record_path is not None:
                server.record_request(request, body)
            if validator is not None and not validated:
                problem = request_problem(validator, body)
                if problem is not None:
                    raise BadRequest(problem)
            result = await route.handler(ApiRequest(request, match, body, server, route))
        except ApiError as exc:
            return _api_error(exc, body, route, server, request)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except web.HTTPException as exc:  # from aiohttp itself, e.g. a body over the size limit
            if exc.status < 400:
                raise
            text = exc.text or ""
            message = text if text and not text.startswith(str(exc.status)) else f"{exc.status}: {exc.reason}"
            if exc.status == 413:
                message = f"The request body is larger than the {MAX_JSON_BODY // (1024 * 1024)} MiB allowed"
            return error_response(exc.status, message, server.common_headers(route.path))
        except RecursionError:
            return _api_error(BadRequest("Invalid JSON: the request is nested too deeply"), {}, route, server,
                              request)
        except ValueError as exc:  # bad input that got past the schema (a name the OS or a codec refuses)
            log.warning("Refused %s %s: %s", request.method, request.path, exc, exc_info=True)
            return _api_error(BadRequest(f"Invalid value: {_cut(str(exc))}"), body, route, server, request)
        except OSError as exc:  # the host refused (a name too long, a full disk): the request changed nothing more
            log.warning("Host refused %s %s: %s", request.method, request.path, exc, exc_info=True)
            return error_response(409, f"The host refused the operation: {_cut(exc.strerror or str(exc))}",
                                  server.common_headers(route.path))
        except Exception as exc:
            log.exception("Unexpected error on %s %s", request.method, request.path)
            message = f"Internal server error ({type(exc).__name__}); the server log has the details"
            return error_response(500, message, server.common_headers(route.path))
        headers = server.common_headers(route.path)
        encoded = type(result) is Encoded
        if encoded and not server.validate_output:
            headers["Content-Type"] = JSON_TYPE
            return _with_cors(web.Response(body=result.body, status=route.status, headers=headers), request)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return _with_cors(empty_response(route.status, headers), request)
        data = result.data if encoded else result
        if out_validator is not None and server.validate_output:
            error = jsonschema.exceptions.best_match(out_validator.iter_errors(data))
            if error is not None:
                log.error("Output of %s does not match its schema: %s", route.path, error.message)
                return error_response(500, f"Output does not match the schema: {_cut(error.message)}", headers)
        return _with_cors(json_response(data, route.status, headers), request)

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


def merge_query(body: Any, request: web.Request) -> Any:
    """The body with every query key copied in as a string (the first value of a repeated key wins, and a query key
    overrides a body key of the same name), as released GNS3 1.5.x reads `?include_images=1`."""
    if not isinstance(body, dict):
        return body
    query = request.query
    return {**body, **{key: query.get(key) for key in query.keys()}}


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _with_cors(response: web.StreamResponse, request: web.Request) -> web.StreamResponse:
    """An allowed cross-origin request (the access check refused the others) gets its origin back."""
    origin = request.headers.get("Origin")
    if origin is not None and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


def _api_error(exc: ApiError, body: Any, route: Route, server: Server, request: web.Request) -> web.StreamResponse:
    headers = server.common_headers(route.path)
    extra = None
    if exc.status == 400:
        echo = getattr(exc, "echo", None)
        if echo is None:
            echo = abridged(getattr(exc, "body", body))
        # Released 1.5.x also names the method (additive; seed-era clients ignore it).
        extra = {"path": route.path, "request": echo, "method": request.method}
    return _with_cors(error_response(exc.status, _cut(exc.message, 1000), headers, extra), request)


SERVER_HEADER_PREFIX = f"Python/{sys.version_info.major}.{sys.version_info.minor}"
