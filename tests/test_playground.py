"""The browser playground in Debian's headless Chromium (Playwright for Python), against the
real server: stream, cancel, continue a run, builtins with a generated form, reload
mid-stream and resume intact, phone width; screenshots kept under artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from server.web.assets import BUNDLE, AssetError, install
from tests.conftest import Server, require

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_FLAGS = [
    # This machine has no internet: nothing may try to phone home.
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-sync",
    "--no-default-browser-check",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
]
WAIT_MS = 20_000

try:
    from playwright.async_api import Browser, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    require(async_playwright is not None, "playwright is not installed")
    executable = chromium_path()
    require(executable is not None, "chromium not found (apt-get install chromium)")
    if not BUNDLE.exists():
        try:
            install()
        except AssetError as exc:
            require(False, f"socket.io-client bundle missing: {exc}")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_page(browser: Browser, url: str, **context_args: Any) -> Page:
    context = await browser.new_context(**context_args)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.urls = urls  # type: ignore[attr-defined]
    await page.goto(url)
    return page


async def task_row(server: Server, key: str, task_id: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.url}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
        ) as resp,
    ):
        assert resp.status == 200
        data: dict[str, Any] = await resp.json()
        return data


def last_answer(page: Page) -> Any:
    return page.locator("li.turn.assistant").last


async def send(page: Page, message: str, *, tps: str, max_tokens: str) -> str:
    """Type and press Enter; returns the new task's id once its turn appears."""
    before = await page.locator("li.turn.assistant").count()
    await page.fill("#tps", tps)
    await page.fill("#max-tokens", max_tokens)
    await page.fill("#message", message)
    await page.press("#message", "Enter")
    await expect(page.locator("li.turn.assistant")).to_have_count(before + 1, timeout=WAIT_MS)
    task_id = await last_answer(page).get_attribute("data-task-id")
    assert task_id
    return task_id


async def record_text_lengths(page: Page) -> None:
    """Record every length the transcript's last answer has, as the DOM changes."""
    await page.evaluate("""() => {
        window.__lengths = [];
        new MutationObserver(() => {
            const turns = document.querySelectorAll('li.turn.assistant .text');
            if (turns.length) window.__lengths.push(turns[turns.length - 1].textContent.length);
        }).observe(document.getElementById('transcript'),
                   {subtree: true, childList: true, characterData: true});
    }""")


async def wait_status(page: Page, task_id: str, status: str) -> None:
    await expect(page.locator(f'li[data-task-id="{task_id}"]')).to_have_attribute(
        "data-status", status, timeout=WAIT_MS
    )


async def test_stream_cancel_continue_and_builtin(server: Server, browser: Browser) -> None:
    key = await server.new_key()
    page = await open_page(browser, f"{server.url}/#key={key}")
    await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
    assert "key=" not in page.url  # the fragment is dropped once read
    assert not [u for u in page.urls if key in u]  # type: ignore[attr-defined]

    # Streams: the answer grows chunk by chunk, not all at once at the end.
    await record_text_lengths(page)
    first = await send(page, "Hello there", tps="40", max_tokens="40")
    await wait_status(page, first, "completed")
    lengths = await page.evaluate("window.__lengths")
    growing = sorted({n for n in lengths if n > 0})
    assert len(growing) >= 4, lengths
    row = await task_row(server, key, first)
    answer = last_answer(page)
    await expect(answer.locator(".text")).to_have_text(row["text"])
    stats = answer.locator(".stats")
    await expect(stats).to_contain_text(f"completed ({row['finish_reason']})")
    await expect(stats).to_contain_text(f"out {row['usage']['output_tokens']}")
    await expect(stats).to_contain_text(f"First token{row['ttft_ms']} ms")
    await expect(stats).to_contain_text(f"Latency{row['latency_ms']} ms")
    await expect(stats).to_contain_text("Cost$0")
    await expect(stats).to_contain_text("Validationskipped")

    # Continue the same run.
    run_line = await page.locator("#run-line").text_content()
    second = await send(page, "And more?", tps="0", max_tokens="5")
    await wait_status(page, second, "completed")
    assert (await task_row(server, key, second))["run_id"] == row["run_id"]
    await expect(page.locator("#run-line")).to_have_text(run_line or "")

    # Cancel one mid-stream: the partial text stays and matches the record.
    third = await send(page, "Tell me a long story", tps="20", max_tokens="400")
    await expect(last_answer(page).locator(".text")).not_to_have_text("", timeout=WAIT_MS)
    await page.click("#cancel")
    await wait_status(page, third, "cancelled")
    cancelled = await task_row(server, key, third)
    assert cancelled["status"] == "cancelled" and cancelled["text"]
    await expect(last_answer(page).locator(".text")).to_have_text(cancelled["text"])

    # A builtin: its variables become a form; a missing one is named.
    await page.select_option("#source", "builtin:translate")
    await expect(page.locator("#variables")).to_be_visible()
    await expect(page.get_by_label("text (required)")).to_be_visible()
    await page.fill("#message", "")
    await page.click("#send")
    await expect(page.locator("#error")).to_contain_text("missing_variables")
    await page.get_by_label("text (required)").fill("Guten Morgen")
    await page.get_by_label("language (required)").fill("English")
    await page.click("#new-chat")
    fourth = await send(page, "", tps="0", max_tokens="8")
    await wait_status(page, fourth, "completed")
    built = await task_row(server, key, fourth)
    assert built["builtin"] == "translate"
    assert "Guten Morgen" in built["request"]["messages"][-1]["content"]
    assert built["run_id"] != row["run_id"]

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)
    assert page.errors == []  # type: ignore[attr-defined]
    # The page runs on promptrelay-client, the package applications use.
    assert any(u.endswith("/client/client.js") for u in page.urls)  # type: ignore[attr-defined]
    # The key travelled in Socket.IO's handshake and Authorization headers, never in a URL.
    assert len(page.urls) > 3  # type: ignore[attr-defined]
    assert not [u for u in page.urls if key in u]  # type: ignore[attr-defined]


async def test_reload_mid_stream_resumes_without_gap_or_repeat(
    server: Server, browser: Browser
) -> None:
    key = await server.new_key()
    page = await open_page(browser, f"{server.url}/#key={key}")
    await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
    task_id = await send(page, "Keep talking", tps="25", max_tokens="120")
    text = last_answer(page).locator(".text")
    await expect(text).not_to_have_text("", timeout=WAIT_MS)
    before = await text.text_content() or ""

    await page.reload()
    answer = page.locator(f'li[data-task-id="{task_id}"]')
    # The text from before the reload is kept, the task is resubscribed after its last seq.
    await expect(answer.locator(".stats")).to_contain_text("resumed after chunk", timeout=WAIT_MS)
    await wait_status(page, task_id, "completed")
    row = await task_row(server, key, task_id)
    final = await answer.locator(".text").text_content() or ""
    assert final == row["text"]  # no gap, no repeat
    assert final.startswith(before) and len(final) > len(before)
    assert row["last_seq"] > 1
    await page.screenshot(path=str(ARTIFACTS / "playground-resumed.png"), full_page=True)
    assert page.errors == []  # type: ignore[attr-defined]


async def test_network_drop_mid_stream_resumes_intact(server: Server, browser: Browser) -> None:
    key = await server.new_key()
    page = await open_page(browser, f"{server.url}/#key={key}")
    await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
    task_id = await send(page, "Keep talking", tps="25", max_tokens="100")
    text = last_answer(page).locator(".text")
    await expect(text).not_to_have_text("", timeout=WAIT_MS)

    await page.context.set_offline(True)
    await expect(page.locator("#conn")).to_contain_text("reconnecting", timeout=WAIT_MS)
    during = await text.text_content() or ""
    await page.context.set_offline(False)
    await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
    await wait_status(page, task_id, "completed")
    row = await task_row(server, key, task_id)
    final = await text.text_content() or ""
    assert final == row["text"]  # no gap, no repeat
    assert final.startswith(during)
    assert page.errors == []  # type: ignore[attr-defined]


async def test_phone_width_and_refused_key(server: Server, browser: Browser) -> None:
    page = await open_page(
        browser,
        f"{server.url}/#key=ps_not_a_key",
        viewport={"width": 375, "height": 740},
        is_mobile=True,
    )
    await expect(page.locator("#conn")).to_have_text("API key refused", timeout=WAIT_MS)
    await expect(page.locator("#error")).to_contain_text("refused")
    key = await server.new_key()
    await page.fill("#api-key", key)
    await page.press("#api-key", "Enter")
    await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
    task_id = await send(page, "Hi from a phone", tps="0", max_tokens="12")
    await wait_status(page, task_id, "completed")
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0  # no sideways scrolling at phone width
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "playground-phone.png"), full_page=True)


async def test_page_and_assets_are_served(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/") as resp:
            assert resp.status == 200
            assert "promptrelay playground" in await resp.text()
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        for name in (
            "app.js",
            "view.js",
            "sidebar.js",
            "usage.js",
            "catalog.js",
            "library.js",
            "tools.js",
            "images.js",
            "style.css",
        ):
            path = f"/playground/{name}"
            async with http.get(server.url + path) as resp:
                assert resp.status == 200, path
        # The page is built on the client package, served as importable modules.
        for path in (
            "/client/index.js",
            "/client/client.js",
            "/client/library.js",
            "/client/redux.js",
        ):
            async with http.get(server.url + path) as resp:
                assert resp.status == 200, path
                assert resp.content_type == "text/javascript"
        async with http.get(server.url + "/client/package.json") as resp:
            assert resp.status == 404
        async with http.get(server.url + "/playground/../sql/001_schema.sql") as resp:
            assert resp.status == 404
        async with http.get(server.url + "/playground/index.py") as resp:
            assert resp.status == 404


async def test_page_explains_a_missing_socketio_client(server: Server, browser: Browser) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    # As when the server could not fetch the bundle (offline): the route answers 404.
    await page.route(
        "**/playground/vendor/socket.io.min.js",
        lambda route: route.fulfill(status=404, body="// missing"),
    )
    await page.goto(f"{server.url}/#key=ps_whatever")
    await expect(page.locator("#missing-client")).to_be_visible()
    await expect(page.locator("#missing-client")).to_contain_text("python -m server.web.assets")
    await expect(page.locator("#conn")).to_have_text("Socket.IO client missing")


async def test_builtins_are_listed_for_the_page(server: Server) -> None:
    key = await server.new_key()
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/v1/builtins") as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "unauthorized"
        async with http.get(
            server.url + "/v1/builtins", headers={"Authorization": f"Bearer {key}"}
        ) as resp:
            assert resp.status == 200
            items = (await resp.json())["items"]
    by_name = {item["name"]: item for item in items}
    assert {"summarize", "translate", "code-review"} <= set(by_name)
    assert set(by_name["summarize"]) == {"id", "name", "description", "variables"}
    sentences = next(v for v in by_name["summarize"]["variables"] if v["name"] == "sentences")
    assert sentences == {"name": "sentences", "type": "number", "default": 3}
