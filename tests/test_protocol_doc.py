"""docs/protocol.md names everything the server offers: every Socket.IO event it registers
and sends, every HTTP route on its router and every error code it can answer, each code
with its HTTP status. Read from the real app built by `create_app`, never from a list here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from engine import errors
from engine.protocol import responses
from engine.settings import Settings
from server.app import create_app
from server.drain import DRAINING_EVENT
from server.protocol import contract
from server.state import SIO

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DOCUMENTED_ROUTE = re.compile(r"\b(" + "|".join(METHODS) + r") (/[^\s`?)]*)")


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


@pytest.fixture(scope="module")
def app() -> web.Application:
    return create_app(Settings(_env_file=None))  # type: ignore[call-arg]


def _error_classes() -> list[type[errors.PromptrelayError]]:
    found: list[type[errors.PromptrelayError]] = []
    todo = [errors.PromptrelayError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _code_row(doc: str, code: str) -> str | None:
    for line in doc.splitlines():
        if line.startswith(f"| `{code}` |"):
            return line
    return None


def test_every_socketio_event_is_documented(app: web.Application, doc: str) -> None:
    handled = set(app[SIO].handlers["/"])
    assert {"connect", "execute", "subscribe", "cancel"} <= handled  # the app was read
    sent = set(contract.SERVER_EVENTS) | {DRAINING_EVENT}
    missing = sorted(e for e in handled | sent if f"`{e}`" not in doc)
    assert missing == [], f"events the server has but docs/protocol.md does not name: {missing}"
    headed = sorted(e for e in set(contract.CLIENT_EVENTS) | sent if f"### `{e}`" not in doc)
    assert headed == [], f"events without a section of their own: {headed}"


def _documented_routes(doc: str) -> set[tuple[str, str]]:
    return {(method, path) for method, path in DOCUMENTED_ROUTE.findall(doc)}


async def _resolve(app: web.Application, method: str, path: str) -> web.AbstractRoute | None:
    concrete = re.sub(r"\{[^}]+\}", "x1", path)
    match = await app.router.resolve(make_mocked_request(method, concrete, app=app))
    if match.http_exception is not None:
        return None
    return match.route


async def test_every_http_route_is_documented(app: web.Application, doc: str) -> None:
    registered = [r for r in app.router.routes() if r.method in METHODS]
    assert len(registered) > 40  # the app was read
    covered: set[web.AbstractRoute] = set()
    for method, path in _documented_routes(doc):
        route = await _resolve(app, method, path)
        if route is not None:
            covered.add(route)
    missing = sorted(
        f"{r.method} {r.resource.canonical if r.resource else '?'}"
        for r in registered
        if r not in covered
    )
    assert missing == [], f"routes the server has but docs/protocol.md does not name: {missing}"


async def test_every_documented_route_exists(app: web.Application, doc: str) -> None:
    unknown = []
    for method, path in sorted(_documented_routes(doc)):
        if await _resolve(app, method, path) is None:
            unknown.append(f"{method} {path}")
    assert unknown == [], f"docs/protocol.md names routes the server does not have: {unknown}"


async def test_every_api_route_has_its_models_in_the_protocol_map(app: web.Application) -> None:
    """`GET /v1/protocol.json` (and the TypeScript types) describe every API route's body and
    answer: each route under /v1/ is in HTTP_ROUTES (the schema document itself aside)."""
    covered: set[web.AbstractRoute] = set()
    for key in contract.HTTP_ROUTES:
        method, path = key.split(" ", 1)
        route = await _resolve(app, method, path)
        assert route is not None, f"HTTP_ROUTES names a route the server does not have: {key}"
        covered.add(route)
    missing = sorted(
        f"{r.method} {r.resource.canonical}"
        for r in app.router.routes()
        if r.method in METHODS
        and r.resource is not None
        and r.resource.canonical.startswith("/v1/")
        and r.resource.canonical != "/v1/protocol.json"
        and r not in covered
    )
    assert missing == [], f"API routes without their models in HTTP_ROUTES: {missing}"


def test_every_error_code_has_its_status_in_the_table(doc: str) -> None:
    classes = _error_classes()
    assert len(classes) > 10
    wrong = []
    for cls in classes:
        row = _code_row(doc, cls.code)
        if row is None or not re.search(rf"\b{cls.http_status}\b", row.split("|")[2]):
            wrong.append(f"{cls.__name__}: `{cls.code}` {cls.http_status}")
    assert wrong == [], f"error codes missing from the table, or with another status: {wrong}"


def test_every_code_of_the_error_schema_is_in_the_table(doc: str) -> None:
    codes = get_args(responses.ErrorCode)
    assert "not_found" in codes
    missing = [code for code in codes if _code_row(doc, code) is None]
    assert missing == [], f"codes of the protocol schema missing from the table: {missing}"
