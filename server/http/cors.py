"""Cross-origin access for browsers: CORS on every `/v1` route, and the same rule for
Socket.IO's handshake.

Every call is authenticated by a bearer token the page attaches itself (the `Authorization`
header or Socket.IO's `auth` payload), never by a cookie, so a foreign page cannot ride on
a user's ambient credentials; `Access-Control-Allow-Credentials` is never sent (Socket.IO's
handshake included: the server is created with `cors_credentials=False`). Which
origins may read answers is `CORS_ALLOWED_ORIGINS`: `*` (the default) or a comma-separated
list of origins (`https://app.example.com,https://admin.example.com`); an empty value
allows none but the server's own pages. A preflight from an allowed origin may ask for any
request header (a request id, a client version): the headers it names are allowed back, since
no header carries an ambient credential.

A middleware rather than the aiohttp-cors library: that one registers CORS per route, so
routes added later and the errors of unmatched paths would be left out, and it would
claim OPTIONS on Socket.IO's path too; this covers every `/v1` path in one place,
including error answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import hdrs, web

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = {"authorization", "content-type", "last-event-id"}  # always allowed
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # an HTTP token (RFC 9110)
MAX_AGE_S = "600"  # browsers cache a preflight this long (Chromium caps it at 2 hours)
PREFIX = "/v1/"
# request-scoped: the headers a streamed answer adds itself
CORS_KEY = web.RequestKey("cors_headers", dict)


class OriginPolicy:
    """The parsed `CORS_ALLOWED_ORIGINS`: any origin, or these exactly."""

    def __init__(self, setting: str) -> None:
        entries = [o.strip().rstrip("/") for o in setting.split(",") if o.strip()]
        self.any = "*" in entries
        self.origins = frozenset(o.lower() for o in entries if o != "*")

    def allows(self, origin: str) -> bool:
        return self.any or origin.lower() in self.origins

    def allow_origin_header(self, origin: str) -> str:
        return "*" if self.any else origin

    def socketio_rule(self) -> str | Callable[[str | None, Mapping[str, Any]], bool]:
        """`cors_allowed_origins` for python-socketio: `*`, or a check that also lets the
        server's own pages in (the playground is same-origin)."""
        if self.any:
            return "*"

        def allowed(origin: str | None, environ: Mapping[str, Any]) -> bool:
            if origin is None or self.allows(origin):
                return True
            own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
            return origin.lower() == own.lower()

        return allowed


def _cors_headers(policy: OriginPolicy, origin: str) -> dict[str, str]:
    headers = {"Access-Control-Allow-Origin": policy.allow_origin_header(origin)}
    if not policy.any:
        headers["Vary"] = "Origin"
    return headers


def _preflight(request: web.Request, policy: OriginPolicy, origin: str) -> web.Response:
    asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
    wanted = {h.strip().lower() for h in asked.split(",") if h.strip()}
    names_ok = all(HEADER_NAME.fullmatch(h) for h in wanted)
    if not policy.allows(origin) or not names_ok:
        refused = {"code": "forbidden", "message": "cross-origin request not allowed"}
        return web.json_response({"error": refused}, status=403, headers={"Vary": "Origin"})
    headers = _cors_headers(policy, origin)
    # The answer depends on the headers asked for, so a cache keys it on them too.
    vary = [headers["Vary"]] if "Vary" in headers else []
    headers["Vary"] = ", ".join([*vary, "Access-Control-Request-Headers"])
    headers.update(
        {
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ", ".join(sorted(ALLOW_HEADERS | wanted)),
            "Access-Control-Max-Age": MAX_AGE_S,
        }
    )
    return web.Response(status=204, headers=headers)


def cors_middleware(policy: OriginPolicy) -> Any:
    """Answer preflights of `/v1` routes and add CORS headers to their answers, errors
    included (put it outermost)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or not request.path.startswith(PREFIX):
            response: web.StreamResponse = await handler(request)
            return response
        if request.method == hdrs.METH_OPTIONS and hdrs.ACCESS_CONTROL_REQUEST_METHOD in (
            request.headers
        ):
            return _preflight(request, policy, origin)
        if policy.allows(origin):
            # Before the handler runs: a streamed answer (SSE) sends its headers early.
            request[CORS_KEY] = _cors_headers(policy, origin)
        response = await handler(request)
        if policy.allows(origin) and not response.prepared:
            response.headers.update(_cors_headers(policy, origin))
        return response

    return middleware


def prepare_cors(request: web.Request, response: web.StreamResponse) -> None:
    """Give a streamed response (prepared inside its handler) the CORS headers too."""
    extra = request.get(CORS_KEY)
    if extra:
        response.headers.update(extra)
