"""Serve the browser app from ``web/``: plain ES modules, no build step.

Files are read into memory with a strong ETag (SHA-256 of the bytes) and a gzip copy, so a
browser revalidates cheaply (304) and the patient's first load stays small. Versioned vendor
folders (``vendor/preact-11.2.0/``) never change and are cached for a year. The page itself
carries one inline script, the import map that resolves the bare name ``preact`` that
``hooks.mjs`` imports; its SHA-256 is computed here at start-up and is the only inline script
the page's content security policy allows.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

IMPORT_MAP: Final = re.compile(rb'<script type="importmap">(.*?)</script>', re.DOTALL)
IMMUTABLE: Final = "public, max-age=31536000, immutable"
REVALIDATE: Final = "no-cache"
CONTENT_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
COMPRESSIBLE: Final = (".js", ".mjs", ".css", ".html", ".json", ".svg", ".txt", ".md")
# Versioned vendor folders: a new version is a new folder, so the old URL never changes content.
VERSIONED: Final = re.compile(r"^vendor/[a-z0-9-]+-\d+\.\d+\.\d+/")


def page_csp(script_hashes: list[str]) -> str:
    """The app page's policy: no unsafe-inline, no unsafe-eval; only the hashed import map inline."""
    scripts = " ".join(f"'sha256-{h}'" for h in script_hashes)
    return (
        f"default-src 'self'; script-src 'self' {scripts}; style-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self' blob:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    )


def inline_script_hashes(html: bytes) -> list[str]:
    """Base64 SHA-256 of each inline import map, as CSP source expressions want them."""
    return [base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() for m in IMPORT_MAP.finditer(html)]


@dataclass(frozen=True, slots=True)
class Asset:
    """One file as served: bytes, gzip copy when worth it, ETag and cache policy."""

    body: bytes
    gzipped: bytes | None
    etag: str
    content_type: str
    cache_control: str
    mtime_ns: int


class WebAssets:
    """The files under ``web/``, loaded lazily and reloaded when a file changes (handy in dev)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[str, Asset] = {}

    def get(self, relative: str) -> Asset | None:
        """The asset at ``relative`` (no dotfiles, no escaping the root), or None."""
        if not relative or any(part.startswith(".") or part == "" for part in relative.split("/")):
            return None
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        mtime = path.stat().st_mtime_ns
        cached = self._cache.get(relative)
        if cached is not None and cached.mtime_ns == mtime:
            return cached
        body = path.read_bytes()
        suffix = path.suffix.lower()
        content_type = CONTENT_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        gzipped = gzip.compress(body, 9, mtime=0) if suffix in COMPRESSIBLE and len(body) > 512 else None
        asset = Asset(
            body=body,
            gzipped=gzipped if gzipped is not None and len(gzipped) < len(body) else None,
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            content_type=content_type,
            cache_control=IMMUTABLE if VERSIONED.match(relative) else REVALIDATE,
            mtime_ns=mtime,
        )
        self._cache[relative] = asset
        return asset


def respond(request: web.Request, asset: Asset, *, extra_headers: dict[str, str] | None = None) -> web.Response:
    """200 with the (gzipped when accepted) bytes, or 304 when the browser's copy is current."""
    headers = {"ETag": asset.etag, "Cache-Control": asset.cache_control, "Vary": "Accept-Encoding"}
    headers.update(extra_headers or {})
    if asset.etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    response = web.Response(body=body, headers=headers)
    response.content_type = asset.content_type.split(";")[0]
    if "charset=" in asset.content_type:
        response.charset = "utf-8"
    return response


def setup(app: web.Application, root: Path) -> None:
    """Routes: ``/`` is the app shell (hash routes inside), ``/static/...`` its files."""
    assets = WebAssets(root)

    async def index(request: web.Request) -> web.Response:
        asset = assets.get("index.html")
        if asset is None:
            raise web.HTTPNotFound()
        csp = page_csp(inline_script_hashes(asset.body))
        return respond(request, asset, extra_headers={"Content-Security-Policy": csp})

    async def static(request: web.Request) -> web.Response:
        relative = request.match_info["path"]
        asset = assets.get(relative) if relative != "index.html" else None
        if asset is None:
            raise web.HTTPNotFound()
        return respond(request, asset)

    app.router.add_get("/", index)
    app.router.add_get("/static/{path:.+}", static)
