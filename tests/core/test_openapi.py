"""GET /v1/openapi.json is generated from the routes and schemas that validate requests; /v1/openapi renders it."""

from __future__ import annotations

import json
import re

from gns3core import openapi, schemas
from gns3core.routing import Route


async def test_document_lists_every_route_with_its_schemas(api, gns3_server) -> None:
    reply = await api.get("/v1/openapi.json")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/json"
    doc = reply.json
    assert doc["openapi"].startswith("3.1")
    mounted = {(r.method.lower(), openapi.openapi_path(r.path)[0]) for r in gns3_server.registry.routes}
    listed = {(method, path) for path, methods in doc["paths"].items() for method in methods}
    assert mounted == listed
    create = doc["paths"]["/v1/projects"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["name"]["maxLength"] == schemas.NAME_LENGTH  # the very schema that validates
    assert "$schema" not in json.dumps(doc) and "#/definitions/" not in json.dumps(doc)
    nio = doc["paths"]["/v1/projects/{project_id}/example/vms/{vm_id}/adapters/{adapter_number}/ports/"
                       "{port_number}/nio"]
    parameters = {p["name"]: p["schema"] for p in nio["post"]["parameters"]}
    assert parameters["adapter_number"]["type"] == "integer" and parameters["vm_id"]["format"] == "uuid"
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs and refs <= set(doc["components"]["schemas"])


async def test_page_renders_without_the_internet(api) -> None:
    reply = await api.get("/v1/openapi")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
    page = reply.body.decode()
    assert "default-src 'none'" in reply.headers["Content-Security-Policy"]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from elsewhere
    embedded = re.search(r'<script id="spec" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert json.loads(embedded.replace("<\\/", "</"))["paths"]


def test_draft4_conversion() -> None:
    components = openapi._Components()
    converted = openapi.convert_schema({
        "$schema": schemas.DRAFT4, "definitions": {"A": {"type": "string", "maxLength": 3}},
        "oneOf": [{"$ref": "#/definitions/A"}], "properties": {"t": {"type": "array", "items": [{"type": "integer"}]}},
    }, components)
    assert converted == {"oneOf": [{"$ref": "#/components/schemas/A"}],
                         "properties": {"t": {"type": "array", "prefixItems": [{"type": "integer"}]}}}
    assert components.schemas["A"] == {"type": "string", "maxLength": 3}


def test_path_parameters() -> None:
    path, parameters = openapi.openapi_path("/v1/qemu/vms/{path:.+}")
    assert path == "/v1/qemu/vms/{path}" and parameters[0]["schema"]["type"] == "string"
    doc = openapi.build([Route("GET", "/v1/x/{n:\\d+}", lambda r: None)], "1")
    assert doc["paths"]["/v1/x/{n}"]["get"]["parameters"][0]["schema"] == {"type": "integer", "minimum": 0}
