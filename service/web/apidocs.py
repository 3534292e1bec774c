"""``/docs``: the OpenAPI document as one self-contained HTML page. Plain markup only, no script,
style or external resource, so the service's ``default-src 'none'`` policy holds for it too."""

from __future__ import annotations

import json
from html import escape
from typing import Any


def render(document: dict[str, Any]) -> str:
    info = document["info"]
    title = escape(f"{info['title']} {info['version']}")
    parts = [
        f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title></head><body>",
        f"<h1>{title}</h1><p>{escape(info['description'])}. Machine-readable: "
        "<a href='/openapi.json'>/openapi.json</a> (OpenAPI 3). Routes marked <em>x-api-key</em> "
        "need the service's key in the <code>x-api-key</code> header.</p>",
        "<h2>Operations</h2>",
    ]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            parts.append(_operation(path, method, operation))
    parts.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(_schema(name, schema))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _operation(path: str, method: str, operation: dict[str, Any]) -> str:
    key = " <em>x-api-key</em>" if operation.get("security") else ""
    lines = [
        f"<h3 id='{escape(method + path)}'><code>{escape(method.upper())} {escape(path)}</code>{key}</h3>",
        f"<p>{escape(operation['summary'])}</p>",
    ]
    body = operation.get("requestBody")
    if body is not None:
        for media_type, content in body["content"].items():
            lines.append(f"<p>Body <code>{escape(media_type)}</code>: {_schema_text(content['schema'])}</p>")
    rows = [
        f"<tr><td>{escape(code)}</td><td>{escape(answer['description'])}</td>"
        f"<td>{_content_text(answer.get('content'))}</td></tr>"
        for code, answer in sorted(operation["responses"].items())
    ]
    lines.append("<table border='1'><tr><th>status</th><th>when</th><th>body</th></tr>")
    lines.extend([*rows, "</table>"])
    return "\n".join(lines)


def _schema(name: str, schema: dict[str, Any]) -> str:
    required = set(schema.get("required", ()))
    rows = [
        f"<tr><td><code>{escape(field)}</code></td><td>{'yes' if field in required else ''}</td>"
        f"<td>{_schema_text(spec)}</td></tr>"
        for field, spec in schema.get("properties", {}).items()
    ]
    return "\n".join(
        [
            f"<h3 id='{escape(name)}'>{escape(name)}</h3>",
            "<table border='1'><tr><th>field</th><th>required</th><th>value</th></tr>",
            *rows,
            "</table>",
        ]
    )


def _content_text(content: dict[str, Any] | None) -> str:
    if not content:
        return ""
    return "; ".join(f"{escape(media)}: {_schema_text(item['schema'])}" for media, item in content.items())


def _schema_text(schema: dict[str, Any]) -> str:
    """One schema in a line: a link for a reference, else its type and constraints."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"<a href='#{escape(name)}'>{escape(name)}</a>"
    if schema.get("type") == "object" and "properties" in schema:
        required = set(schema.get("required", ()))
        fields = [
            f"<code>{escape(field)}</code>{'' if field in required else ' (optional)'}: {_schema_text(spec)}"
            for field, spec in schema["properties"].items()
        ]
        return "object with " + "; ".join(fields)
    text = escape(str(schema.get("type", "any")))
    constraints = {k: v for k, v in schema.items() if k not in ("type", "description")}
    if constraints:
        text += " " + escape(json.dumps(constraints))
    if "description" in schema:
        text += f" ({escape(schema['description'])})"
    return text
