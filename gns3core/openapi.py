"""The OpenAPI 3.1 description of every mounted route, built from the same schemas that validate the requests.

Route schemas are JSON Schema draft-04; OpenAPI 3.1 speaks JSON Schema 2020-12. The differences that matter here
are converted: `$schema` is dropped, local `definitions` move to `components/schemas` (their `$ref`s follow), and a
list-form `items` becomes `prefixItems`.
"""

from __future__ import annotations

import copy
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gns3core.routing import Route

OPENAPI_VERSION = "3.1.0"
_PARAM = re.compile(r"\{([^}:]+)(?::([^}]*))?\}")
_INTEGER_PATTERNS = {r"\d+"}
ERROR = {
    "type": "object",
    "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
    "required": ["status", "message"],
}
_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No content"}


class _Components:
    """Named schemas shared by the whole document; a name reused for different content gets a suffix."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Error": ERROR}
        self._by_content: dict[str, str] = {}

    def add(self, name: str, schema: Any) -> str:
        key = json.dumps(schema, sort_keys=True)
        if key in self._by_content:
            return self._by_content[key]
        final, index = name, 2
        while final in self.schemas:
            final, index = f"{name}_{index}", index + 1
        self.schemas[final] = schema
        self._by_content[key] = final
        return final


def convert_schema(schema: Any, components: _Components) -> Any:
    """A draft-04 route schema as JSON Schema 2020-12 for OpenAPI 3.1 (a converted copy; the input is unchanged)."""
    schema = copy.deepcopy(schema)
    renames: dict[str, str] = {}
    if isinstance(schema, dict) and "definitions" in schema:
        definitions = schema.pop("definitions")
        for name in definitions:
            renames[name] = name  # placeholder so refs between definitions can be rewritten below
        converted = {name: _convert(sub, {}) for name, sub in definitions.items()}
        for name, sub in converted.items():
            renames[name] = components.add(name, sub)
        for name in converted:
            components.schemas[renames[name]] = _rewrite_refs(components.schemas[renames[name]], renames)
    return _rewrite_refs(_convert(schema, renames), renames)


def _convert(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_convert(item, renames) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$schema", "id"):
            continue
        if key == "items" and isinstance(value, list):
            result["prefixItems"] = _convert(value, renames)
            continue
        if key in ("properties", "patternProperties", "definitions"):
            result[key] = {name: _convert(sub, renames) for name, sub in value.items()}
            continue
        result[key] = _convert(value, renames)
    return result


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#/definitions/"):
            name = value.removeprefix("#/definitions/")
            result[key] = f"#/components/schemas/{renames.get(name, name)}"
        else:
            result[key] = _rewrite_refs(value, renames)
    return result


def openapi_path(path: str) -> tuple[str, list[dict[str, Any]]]:
    """`/a/{id}/b/{n:\\d+}` -> (`/a/{id}/b/{n}`, its path parameters)."""
    parameters = []
    for match in _PARAM.finditer(path):
        name, pattern = match.group(1), match.group(2)
        if pattern in _INTEGER_PATTERNS:
            param_schema: dict[str, Any] = {"type": "integer", "minimum": 0}
        elif name.endswith("_id") or name == "id":
            param_schema = {"type": "string", "format": "uuid"}
        else:
            param_schema = {"type": "string", "minLength": 1, "maxLength": 255}
        parameters.append({"name": name, "in": "path", "required": True, "schema": param_schema})
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path), parameters


def build(routes: list[Route], version: str, title: str = "GNS3 API v1 compatible server") -> dict[str, Any]:
    """The OpenAPI document of `routes` (each method and path once, the first declaration wins as when mounted)."""
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, str]] = set()
    for route in routes:
        if (route.method, route.path) in seen:
            continue
        seen.add((route.method, route.path))
        path, parameters = openapi_path(route.path)
        operation: dict[str, Any] = {
            "operationId": f"{route.method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
            "summary": route.description or f"{route.method} {path}",
            "tags": [route.plugin.split(".")[-1] if route.plugin else "core"],
            "responses": _responses(route, components),
        }
        if parameters:
            operation["parameters"] = parameters
        if route.raw:
            operation["requestBody"] = {"content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}}
        elif route.input is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": convert_schema(route.input, components)}}}
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version,
                 "description": "Generated from the routes and JSON schemas this server validates requests with."},
        "paths": paths,
        "components": {"schemas": components.schemas},
    }


def _responses(route: Route, components: _Components) -> dict[str, Any]:
    success: dict[str, Any] = {"description": _STATUS_TEXT.get(route.status, "Success")}
    if route.output is not None:
        success["content"] = {"application/json": {"schema": convert_schema(route.output, components)}}
    error = {"description": "Error",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {str(route.status): success}
    for status in ("400", "401", "403", "404", "409"):
        responses[status] = error
    return responses
