"""The ops review page: a data-free HTML shell whose script talks to the JSON API.

The page itself loads without auth, so the server renders no PHI and no job data into
it: the reviewer's key is asked for in the browser and every record comes from /api/v1
over fetch. All script lives in one static file so a strict Content-Security-Policy
(no inline script, images only from us or blob: URLs) can hold on every response.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.extraction import FIELD_NAMES

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"

#: The only files served under /review/static/ (no directory listing, no path tricks).
STATIC_FILES = {
    "review.js": "text/javascript; charset=utf-8",
    "review.css": "text/css; charset=utf-8",
}

#: Everything from this origin only; page images arrive as blob: URLs made from fetches
#: that carry the key. No inline script or style, no framing, no plugins.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' blob:",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

_templates = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

router = APIRouter(include_in_schema=False)


def _static_url(name: str) -> str:
    """A URL that changes with the file's content, so a browser never runs stale script."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/review/static/{name}?v={digest}"


@router.get("/review", response_class=HTMLResponse)
def review_page() -> HTMLResponse:
    """The page shell: markup, field names and asset URLs only (never job data)."""
    html = _templates.get_template("review.html").render(
        field_names=FIELD_NAMES,
        script_url=_static_url("review.js"),
        style_url=_static_url("review.css"),
    )
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return HTMLResponse(html, headers=headers)


@router.get("/review/static/{name}")
def review_static(name: str) -> Response:
    """One of the page's own assets; anything else is a 404."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail="No such file.")
    body = (STATIC_DIR / name).read_bytes()
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(body, media_type=media_type, headers=headers)
