"""The read-only web UI (SPEC section 15): FastAPI, Jinja2 templates, a vendored Apache ECharts.

Pages (`/`, `/rfm`, `/customer`) are HTML shells whose script fetches the JSON endpoints (`/api/...`) and
fetches them again every `refresh` seconds. Only GET and HEAD are served; every asset comes from this
package (the Content-Security-Policy forbids anything else).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from streams.ui.data import Reader

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "segmenter_ui_token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://localhost:6379/0"
    prefix: str = "segmenter"
    token: str | None = None
    basic_auth: str | None = None  # "user:password"
    refresh_seconds: float = 10.0
    scan_interval: float = 60.0
    cache_seconds: float = 2.0
    sample_size: int = 1000


def _authorised(request: Request, settings: Settings) -> bool:
    header = request.headers.get("authorization", "")
    if settings.token is not None:
        offered = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        if header.lower().startswith("bearer "):
            offered = header[7:].strip()
        return hmac.compare_digest(offered.encode(), settings.token.encode())
    if settings.basic_auth is not None:
        if not header.lower().startswith("basic "):
            return False
        try:
            offered = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(offered.encode(), settings.basic_auth.encode())
    return True


def create_app(settings: Settings, reader: Reader | None = None, background: bool = True) -> FastAPI:
    """The app. `reader`: one to use (tests); `background`: rescan the catalog every `scan_interval`."""
    if reader is None:
        client = redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_timeout=5,
                                      socket_connect_timeout=5, health_check_interval=30)
        reader = Reader(client, settings.prefix, sample_size=settings.sample_size,
                        cache_seconds=settings.cache_seconds)
    stop = threading.Event()

    def rescan() -> None:
        while True:
            try:
                reader.refresh()
            except redis.RedisError as exc:
                log.warning("cannot scan Redis: %s", exc)
            if stop.wait(settings.scan_interval):
                return

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        if background:
            threading.Thread(target=rescan, name="ui-rescan", daemon=True).start()
        else:
            reader.refresh()
        yield
        stop.set()

    app = FastAPI(title="segmenter", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.reader = reader
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method not in ("GET", "HEAD"):
            return JSONResponse({"error": "read-only: only GET"}, status_code=405,
                                headers={"Allow": "GET, HEAD"})
        if request.url.path != "/healthz" and not _authorised(request, settings):
            headers = {"WWW-Authenticate": 'Basic realm="segmenter"'} if settings.basic_auth else {}
            return JSONResponse({"error": "unauthorised"}, status_code=401, headers=headers)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if settings.token is not None and request.query_params.get("token") == settings.token:
            response.set_cookie(TOKEN_COOKIE, settings.token, httponly=True, samesite="strict")
        return response

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request, name, {"prefix": settings.prefix, "refresh": settings.refresh_seconds, **context}
        )

    @app.get("/", response_class=HTMLResponse)
    def overview_page(request: Request) -> HTMLResponse:
        return page(request, "overview.html", active="overview")

    @app.get("/rfm", response_class=HTMLResponse)
    def rfm_page(request: Request) -> HTMLResponse:
        return page(request, "rfm.html", active="rfm", sample=settings.sample_size)

    @app.get("/customer", response_class=HTMLResponse)
    def customer_page(request: Request, id: str = "") -> HTMLResponse:  # noqa: A002 - the query name
        return page(request, "customer.html", active="customer", customer_id=id.strip())

    @app.get("/api/overview")
    def api_overview(days: int = Query(30, ge=1, le=400), end: str | None = None) -> dict[str, Any]:
        try:
            return reader.overview(days, end or None)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/api/rfm")
    def api_rfm() -> dict[str, Any]:
        return reader.rfm()

    @app.get("/api/customer/{customer_id}")
    def api_customer(customer_id: str) -> dict[str, Any]:
        found = reader.customer(customer_id)
        if found is None:
            raise HTTPException(404, f"no customer {customer_id!r} under prefix '{settings.prefix}'")
        return found

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(redis.RedisError)
    async def redis_down(request: Request, exc: redis.RedisError) -> JSONResponse:
        return JSONResponse({"error": f"cannot read Redis: {exc}"}, status_code=503)

    return app
