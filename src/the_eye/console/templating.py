"""Rendering the console's pages: Jinja2 templates with autoescaping, so nothing a sender
controls (event data, names, error payloads) is ever markup, and headers that keep pages out
of frames, caches and other origins' scripts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from the_eye import __version__
from the_eye.api.pagination import iso
from the_eye.console.auth import CSRF_FIELD, ConsoleUser

TEMPLATES = Path(__file__).parent / "templates"
SESSIONS_PATH = "/console/sessions/"

# Scripts and styles from the console's own folder only: a sender's `<script>` or
# `onerror=` that escaping missed would still not run. uPlot sizes its canvas with inline
# styles, set from script, which `style-src 'self'` allows.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
)


def pretty_json(value: Any) -> str:
    """`value` as indented JSON, for a `<pre>` (the template escapes it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def when(value: datetime | None) -> str:
    """A stored time as The Eye writes times (UTC, ISO 8601), or a dash."""
    return iso(value) or "-"


PREVIEW_CHARACTERS = 120


def data_preview(value: Any) -> str:
    """`value` as one line of JSON, cut to a table cell's width (the template escapes it)."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if len(text) <= PREVIEW_CHARACTERS:
        return text
    return text[: PREVIEW_CHARACTERS - 1] + "…"


def session_url(session_id: str, **params: str) -> str:
    """The console page of a session, with `params` in its query. The id is one path
    segment with every reserved character escaped (ids may hold `/`, `?`, `#` or `%`); the
    ids a path cannot carry (`.` and `..`, which browsers resolve away, and line breaks)
    go in the query instead."""
    if session_id in (".", "..") or "\n" in session_id:
        return f"{SESSIONS_PATH}?{urlencode({'id': session_id, **params})}"
    query = f"?{urlencode(params)}" if params else ""
    return f"{SESSIONS_PATH}{quote(session_id, safe='')}/{query}"


templates.env.filters["pretty_json"] = pretty_json
templates.env.filters["when"] = when
templates.env.filters["data_preview"] = data_preview
templates.env.globals["session_url"] = session_url
templates.env.globals["version"] = __version__
templates.env.globals["csrf_field_name"] = CSRF_FIELD


def is_htmx(request: Request) -> bool:
    """Whether htmx asked for this (it then wants a fragment, not the whole page)."""
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    user: ConsoleUser | None,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The template `name` rendered with the page's context and the signed-in `user`."""
    page = {"request": request, "user": user, **(context or {})}
    headers = {**SECURITY_HEADERS, **(headers or {})}
    return templates.TemplateResponse(request, name, page, status_code=status_code, headers=headers)
