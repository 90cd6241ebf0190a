"""Serving the browser app: the hashed import map under a strict CSP, ETags, gzip, cache policy."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from aiohttp.test_utils import TestClient

WEB = Path(__file__).resolve().parents[2] / "web"


async def test_page_csp_allows_only_the_import_map_by_its_sha256(client: TestClient) -> None:
    response = await client.get("/")
    html = await response.text()
    csp = response.headers["Content-Security-Policy"]
    inline = re.findall(r"<script type=\"importmap\">(.*?)</script>", html, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    # The only other scripts are external modules.
    assert re.findall(r"<script(?![^>]*importmap)[^>]*>", html) == ['<script type="module" src="/static/app/main.js">']


async def test_static_files_revalidate_by_etag_and_are_gzipped(client: TestClient) -> None:
    first = await client.get("/static/app/main.js", headers={"Accept-Encoding": "gzip"})
    assert first.status == 200 and first.headers["Content-Encoding"] == "gzip"
    assert first.headers["Cache-Control"] == "no-cache" and first.content_type == "text/javascript"
    etag = first.headers["ETag"]
    again = await client.get("/static/app/main.js", headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""


async def test_versioned_vendor_files_are_cached_for_a_year(client: TestClient) -> None:
    response = await client.get("/static/vendor/preact-11.2.0/preact.mjs")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert await response.read() == (WEB / "vendor" / "preact-11.2.0" / "preact.mjs").read_bytes()


async def test_no_file_outside_web_and_no_dotfile_is_served(client: TestClient) -> None:
    for path in ("/static/../pyproject.toml", "/static/%2e%2e/pyproject.toml", "/static/.gitignore", "/static/nope.js"):
        assert (await client.get(path)).status == 404, path


def test_the_app_writes_no_inline_style_or_script() -> None:
    """The CSP would block them: only classes, and only the one hashed import map."""
    for path in WEB.rglob("*"):
        if path.suffix in (".js", ".html") and "vendor" not in path.parts:
            text = path.read_text()
            assert "style=" not in text, path
            assert "innerHTML" not in text and "eval(" not in text and "new Function" not in text, path
