from __future__ import annotations

import re

from starlette.testclient import TestClient

from service.web.settings import Settings
from tests.conftest import make_client


def test_root_points_to_the_docs_without_a_key(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert body["weights"] == "random-init"
    assert "README" in body["readme"]
    for name in ("docs", "openapi", "health"):
        assert client.get(body[name]).status_code == 200, name
    assert "POST /api/voice-detection" in body["detect"]


def test_docs_page_renders_every_operation_status_and_schema(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    spec = client.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            heading = re.search(rf"<h3[^>]*><code>{method.upper()} {re.escape(path)}</code>(.*?)</h3>", page)
            assert heading is not None, (method, path)
            assert ("x-api-key" in heading.group(1)) == ("security" in operation)
            section = page[heading.end() : page.find("</table>", heading.end())]
            assert all(f"<td>{code}</td>" in section for code in operation["responses"]), (method, path)
    for name, schema in spec["components"]["schemas"].items():
        assert f"<h3 id='{name}'>{name}</h3>" in page
        assert all(f"<code>{field}</code>" in page for field in schema["properties"])


def test_docs_page_loads_nothing_from_anywhere(client: TestClient) -> None:
    response = client.get("/docs")
    page = response.text.lower()
    assert "<script" not in page
    assert "<link" not in page
    assert "<style" not in page
    assert re.search(r"(src|href)=['\"]?(https?:)?//", page) is None
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_docs_page_escapes_what_the_settings_put_in_the_document(settings: Settings) -> None:
    with make_client(settings, languages=("English", "<script>x</script>")) as client:
        page = client.get("/docs").text
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


def test_front_door_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/"]) == {"get"}
    assert set(paths["/docs"]) == {"get"}
    assert "security" not in paths["/"]["get"]
    assert "security" not in paths["/docs"]["get"]
