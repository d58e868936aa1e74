"""The browser playground (static files at `/`) and the protocol's JSON Schema."""

from __future__ import annotations

from pathlib import Path

from aiohttp import hdrs, web

from engine.prompts.catalog import builtin_summaries
from server.auth import authenticate, token_from
from server.protocol.contract import protocol_schema
from server.state import POOL
from server.web.assets import INSTALL_HINT, VENDOR_DIR

WEB_DIR = Path(__file__).resolve().parent
PAGE_FILES = {
    "app.js": "text/javascript",
    "view.js": "text/javascript",
    "sidebar.js": "text/javascript",
    "usage.js": "text/javascript",
    "catalog.js": "text/javascript",
    "library.js": "text/javascript",
    "tools.js": "text/javascript",
    "images.js": "text/javascript",
    "style.css": "text/css",
}
# The JavaScript client package (clients/typescript/src), which the page is built on: in a
# source checkout from there, in an installed wheel from the copy packaged beside the page.
CLIENT_FILES = {"index.js", "client.js", "task.js", "errors.js", "redux.js", "library.js"}
_CHECKOUT_CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript" / "src"
CLIENT_DIR = _CHECKOUT_CLIENT if _CHECKOUT_CLIENT.is_dir() else WEB_DIR / "client"
# The page holds no secrets, but must not be framed or sniffed; scripts only from here.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
routes = web.RouteTableDef()


def _page_file(path: Path, content_type: str) -> web.Response:
    return web.Response(
        body=path.read_bytes(), content_type=content_type, charset="utf-8", headers=PAGE_HEADERS
    )


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return _page_file(WEB_DIR / "index.html", "text/html")


@routes.get("/playground/{name}")
async def page_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in PAGE_FILES:
        raise web.HTTPNotFound()
    return _page_file(WEB_DIR / name, PAGE_FILES[name])


@routes.get("/client/{name}")
async def client_file(request: web.Request) -> web.Response:
    """promptrelay-client's modules for pages: `import ... from "/client/index.js"`."""
    name = request.match_info["name"]
    if name not in CLIENT_FILES:
        raise web.HTTPNotFound()
    return _page_file(CLIENT_DIR / name, "text/javascript")


@routes.get("/playground/vendor/socket.io.min.js")
async def socketio_bundle(request: web.Request) -> web.StreamResponse:
    bundle = VENDOR_DIR / "socket.io.min.js"
    if not bundle.exists():
        # The page checks for the global `io` and explains; this says the same to a curl.
        return web.Response(
            status=404,
            text=f"// socket.io-client is not installed: run `{INSTALL_HINT}`\n",
            content_type="text/javascript",
        )
    return web.FileResponse(
        bundle, headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"}
    )


@routes.get("/v1/protocol.json")
async def protocol_json(request: web.Request) -> web.Response:
    return web.json_response(protocol_schema(), headers={"Cache-Control": "no-cache"})


async def list_builtins(request: web.Request) -> web.Response:
    """`GET /v1/builtins` of docs/protocol.md, for as long as no prompt-library route serves it."""
    await authenticate(request.app[POOL], token_from(None, request.headers))
    return web.json_response({"items": await builtin_summaries(request.app[POOL])})


def add_web_routes(app: web.Application) -> None:
    """Register the playground; call it after every other route table is added."""
    app.add_routes(routes)
    taken = any(
        route.method == hdrs.METH_GET
        and route.resource is not None
        and route.resource.canonical == "/v1/builtins"
        for route in app.router.routes()
    )
    if not taken:
        app.router.add_get("/v1/builtins", list_builtins)
