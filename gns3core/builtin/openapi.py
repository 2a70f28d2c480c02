"""GET /v1/openapi.json and a page that renders it (self-contained: it fetches nothing, not even the JSON)."""

from __future__ import annotations

import html
import json

from aiohttp import web

from gns3core import openapi
from gns3core.hookspecs import hookimpl
from gns3core.registry import Registry
from gns3core.routing import ApiRequest, Encoded, Route

# The page loads nothing from anywhere: its only script and style are inline.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.1em; margin-top: 2em; border-bottom: 1px solid #ccc; }}
details {{ margin: .3em 0; border: 1px solid #ddd; border-radius: 4px; padding: .3em .6em; }}
summary {{ cursor: pointer; }} code {{ font-size: .95em; }}
.m {{ display: inline-block; width: 4.5em; font-weight: bold; }}
.get {{ color: #1565c0; }} .post {{ color: #2e7d32; }} .put {{ color: #ef6c00; }} .delete {{ color: #c62828; }}
pre {{ background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: .85em; }}
</style></head>
<body><h1>{title}</h1><p>{description} The raw document: <a href="openapi.json">openapi.json</a>.</p>
<div id="api"></div>
<script id="spec" type="application/json">{spec}</script>
<script>
const spec = JSON.parse(document.getElementById("spec").textContent);
const root = document.getElementById("api");
function el(tag, attrs, ...children) {{
  const node = document.createElement(tag);
  Object.assign(node, attrs || {{}});
  for (const child of children) node.append(child);
  return node;
}}
const byTag = {{}};
for (const [path, methods] of Object.entries(spec.paths)) {{
  for (const [method, op] of Object.entries(methods)) {{
    (byTag[op.tags[0]] = byTag[op.tags[0]] || []).push([path, method, op]);
  }}
}}
for (const tag of Object.keys(byTag).sort()) {{
  root.append(el("h2", {{textContent: tag}}));
  for (const [path, method, op] of byTag[tag]) {{
    const body = op.requestBody && op.requestBody.content;
    const parts = [el("p", {{textContent: op.summary}})];
    if (body) parts.push(el("p", {{textContent: "Request body:"}}),
                         el("pre", {{textContent: JSON.stringify(Object.values(body)[0].schema, null, 2)}}));
    for (const [status, response] of Object.entries(op.responses)) {{
      const content = response.content && response.content["application/json"];
      if (content && status < 400) parts.push(el("p", {{textContent: "Response " + status + ":"}}),
                                             el("pre", {{textContent: JSON.stringify(content.schema, null, 2)}}));
    }}
    root.append(el("details", {{}}, el("summary", {{}}, el("span", {{className: "m " + method,
      textContent: method.toUpperCase()}}), el("code", {{textContent: path}})), ...parts));
  }}
}}
</script></body></html>
"""


def document(request: ApiRequest) -> Encoded:
    """Built once per server from the mounted routes (plugins included)."""
    server = request.server
    cached = server.openapi_document
    if cached is None:
        cached = Encoded(openapi.build(server.registry.routes, server.version))
        server.openapi_document = cached
    return cached


async def openapi_json(request: ApiRequest) -> Encoded:
    return document(request)


async def openapi_page(request: ApiRequest) -> web.Response:
    spec = document(request).data
    # Inside <script>, "</" would end the element early: escape it in the embedded JSON.
    embedded = json.dumps(spec, separators=(",", ":")).replace("</", "<\\/")
    info = spec["info"]
    body = PAGE.format(title=html.escape(info["title"]), description=html.escape(info["description"]), spec=embedded)
    headers = request.headers()
    headers["Content-Security-Policy"] = CSP
    return web.Response(text=body, content_type="text/html", headers=headers)


@hookimpl
def gns3_register(registry: Registry) -> None:
    registry.add_routes([
        Route("GET", "/v1/openapi.json", openapi_json, 200, output={"type": "object", "required": ["openapi"]},
              description="This API as an OpenAPI 3.1 document, generated from the schemas requests are checked with"),
        Route("GET", "/v1/openapi", openapi_page, 200, description="A page that renders the OpenAPI document"),
    ])
