"""The playground's conversation sidebar and usage chart in Debian's headless Chromium, against
the real server: a conversation is listed once started, search filters, rename and delete show
in a second tab through `runs_changed`, a click resumes a run, phone width collapses the
sidebar, and the chart draws /v1/usage's days. Screenshots kept under artifacts/."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
from playwright.async_api import Browser, Page, expect

from db.pool import connect
from tests import test_playground
from tests.conftest import Server, clear_of_midnight
from tests.test_playground import ARTIFACTS, WAIT_MS, open_page, send, wait_status

browser = test_playground.browser  # the Chromium fixture


async def api(server: Server, key: str, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.url + path, headers={"Authorization": f"Bearer {key}"}) as resp,
    ):
        return resp.status, (await resp.json() if resp.status == 200 else None)


async def connected(browser: Browser, server: Server, key: str, **context_args: Any) -> Page:
    page = await open_page(browser, f"{server.url}/#key={key}", **context_args)
    await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
    return page


def runs(page: Page) -> Any:
    return page.locator("#runs li.run")


def run_item(page: Page, title: str) -> Any:
    return runs(page).filter(has=page.locator(".run-title", has_text=title))


async def chat(page: Page, message: str) -> str:
    task_id = await send(page, message, tps="0", max_tokens="6")
    await wait_status(page, task_id, "completed")
    return task_id


def no_key_in_urls(page: Page, key: str) -> None:
    assert not [u for u in page.urls if key in u]  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]


async def test_sidebar_lists_searches_renames_resumes_and_deletes(
    server: Server, browser: Browser
) -> None:
    key = await server.new_key()
    first = await connected(browser, server, key)
    second = await connected(browser, server, key)  # another tab on the same key
    await expect(first.locator("#runs-status")).to_have_text("No conversations yet.")

    # A conversation appears in both tabs once started; the newest is on top.
    paris_task = await chat(first, "Plan my Paris trip")
    await expect(run_item(first, "Plan my Paris trip")).to_have_count(1, timeout=WAIT_MS)
    await expect(run_item(second, "Plan my Paris trip")).to_have_count(1, timeout=WAIT_MS)
    paris = (await api(server, key, f"/v1/tasks/{paris_task}"))[1]["run_id"]
    await expect(run_item(first, "Plan my Paris trip")).to_have_attribute("data-run-id", paris)
    await expect(run_item(first, "Plan my Paris trip")).to_have_class("run active")
    await first.click("#new-chat")
    bread_task = await chat(first, "Bake sourdough bread")
    bread = (await api(server, key, f"/v1/tasks/{bread_task}"))[1]["run_id"]
    for page in (first, second):
        await expect(runs(page).locator(".run-title")).to_have_text(
            ["Bake sourdough bread", "Plan my Paris trip"], timeout=WAIT_MS
        )

    # Search asks the server (title or any message) and lists only what matches.
    await first.fill("#run-search", "paris")
    await expect(runs(first).locator(".run-title")).to_have_text(["Plan my Paris trip"])
    await first.fill("#run-search", "no such words")
    await expect(runs(first)).to_have_count(0)
    await expect(first.locator("#runs-status")).to_contain_text("No conversation contains")
    await first.fill("#run-search", "")
    await expect(runs(first)).to_have_count(2)

    # Rename: the new title in this tab, in the other one (runs_changed), and on the server.
    await run_item(first, "Plan my Paris trip").get_by_role("button", name="Rename").click()
    await first.get_by_label("New title").fill("Paris in spring")
    await first.get_by_label("New title").press("Enter")
    await expect(run_item(first, "Paris in spring")).to_have_count(1, timeout=WAIT_MS)
    await expect(run_item(second, "Paris in spring")).to_have_count(1, timeout=WAIT_MS)
    await expect(run_item(second, "Plan my Paris trip")).to_have_count(0)
    listed = (await api(server, key, "/v1/runs"))[1]["items"]
    assert {r["id"]: r["title"] for r in listed}[paris] == "Paris in spring"

    # Resume in the second tab: the run's messages show, the next message continues it.
    await run_item(second, "Paris in spring").locator(".run-open").click()
    await expect(second.locator("li.turn.user .text")).to_have_text(["Plan my Paris trip"])
    status, run = await api(server, key, f"/v1/runs/{paris}")
    answer = next(m["content"] for m in run["messages"] if m["role"] == "assistant")
    await expect(second.locator("li.turn.assistant .text")).to_have_text([answer])
    await expect(second.locator("#run-line")).to_have_text(f"Run {paris}")
    again = await chat(second, "And what about Lyon?")
    assert (await api(server, key, f"/v1/tasks/{again}"))[1]["run_id"] == paris
    status, run = await api(server, key, f"/v1/runs/{paris}")
    users = [m["content"] for m in run["messages"] if m["role"] == "user"]
    assert users == ["Plan my Paris trip", "And what about Lyon?"]
    assert run["task_count"] == 2
    await expect(second.locator("li.turn.user .text")).to_have_text(
        ["Plan my Paris trip", "And what about Lyon?"]
    )
    # The continued run moves to the top (its latest task ended last).
    await expect(runs(second).locator(".run-title")).to_have_text(
        ["Paris in spring", "Bake sourdough bread"], timeout=WAIT_MS
    )
    ARTIFACTS.mkdir(exist_ok=True)
    await second.screenshot(path=str(ARTIFACTS / "playground-sidebar.png"), full_page=True)

    # Delete (after the confirmation): gone in both tabs and on the server.
    first.once("dialog", lambda dialog: dialog.accept())
    await run_item(first, "Bake sourdough bread").get_by_role("button", name="Delete").click()
    for page in (first, second):
        await expect(runs(page).locator(".run-title")).to_have_text(
            ["Paris in spring"], timeout=WAIT_MS
        )
    assert (await api(server, key, f"/v1/runs/{bread}"))[0] == 404
    # The first tab was showing the deleted conversation: it starts a new one.
    await expect(first.locator("li.turn")).to_have_count(0)
    await expect(first.locator("#run-line")).to_have_text("")

    # Dismissing the confirmation keeps the conversation.
    second.once("dialog", lambda dialog: dialog.dismiss())
    await run_item(second, "Paris in spring").get_by_role("button", name="Delete").click()
    assert (await api(server, key, f"/v1/runs/{paris}"))[0] == 200
    await expect(runs(second)).to_have_count(1)
    for page in (first, second):
        no_key_in_urls(page, key)


async def test_sidebar_archives_and_brings_back(server: Server, browser: Browser) -> None:
    key = await server.new_key()
    first = await connected(browser, server, key)
    second = await connected(browser, server, key)
    await chat(first, "Old project notes")
    await first.click("#new-chat")
    await chat(first, "Weekly plan")
    for page in (first, second):
        await expect(runs(page).locator(".run-title")).to_have_text(
            ["Weekly plan", "Old project notes"], timeout=WAIT_MS
        )

    # Archive: it leaves the list in both tabs and is archived on the server.
    await run_item(first, "Old project notes").get_by_role("button", name="Archive").click()
    for page in (first, second):
        await expect(runs(page).locator(".run-title")).to_have_text(
            ["Weekly plan"], timeout=WAIT_MS
        )
    archived = (await api(server, key, "/v1/runs?archived=true"))[1]["items"]
    assert [r["title"] for r in archived] == ["Old project notes"]

    # The toggle lists the archived ones; Unarchive brings it back to the active list.
    await second.check("#runs-archived")
    await expect(runs(second).locator(".run-title")).to_have_text(
        ["Old project notes"], timeout=WAIT_MS
    )
    await run_item(second, "Old project notes").get_by_role("button", name="Unarchive").click()
    await expect(runs(second)).to_have_count(0, timeout=WAIT_MS)
    await expect(second.locator("#runs-status")).to_have_text("No archived conversations.")
    await expect(runs(first).locator(".run-title")).to_have_text(
        ["Weekly plan", "Old project notes"], timeout=WAIT_MS
    )
    assert (await api(server, key, "/v1/runs?archived=true"))[1]["items"] == []
    await second.uncheck("#runs-archived")
    await expect(runs(second)).to_have_count(2, timeout=WAIT_MS)


async def test_sidebar_collapses_at_phone_width(server: Server, browser: Browser) -> None:
    key = await server.new_key()
    page = await connected(
        browser, server, key, viewport={"width": 375, "height": 740}, is_mobile=True
    )
    await chat(page, "Hi from a phone")
    sidebar = page.locator("#sidebar")
    toggle = page.locator("#sidebar-toggle")
    await expect(sidebar).to_be_hidden()
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await toggle.click()
    await expect(sidebar).to_be_visible()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(run_item(page, "Hi from a phone")).to_have_count(1, timeout=WAIT_MS)
    answer = await page.locator("li.turn.assistant .text").text_content() or ""
    await expect(run_item(page, "Hi from a phone").locator(".run-preview")).to_have_text(
        answer[:120], timeout=WAIT_MS
    )  # the list is reloaded once the answer ended: its preview is the answer
    await expect(page.locator("#usage rect.usage-bar")).to_have_count(1, timeout=WAIT_MS)
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0  # no sideways scrolling at phone width
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "playground-phone-sidebar.png"), full_page=True)
    # Opening a conversation (here: a new one) folds the sidebar away again.
    await page.click("#sidebar-new")
    await expect(sidebar).to_be_hidden()
    await expect(page.locator("li.turn")).to_have_count(0)
    no_key_in_urls(page, key)


UsageRow = tuple[date, str, int, int, str]  # day, model, tokens in, tokens out, cost


async def add_usage(server: Server, email: str, rows: list[UsageRow]) -> None:
    """Usage of earlier days, as the log keeps it (e.g. of deleted conversations)."""
    conn = await connect(server.settings.database_url or "")
    try:
        user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
        for day, model, tokens_in, tokens_out, cost in rows:
            await conn.execute(
                "INSERT INTO ai_usage_logs (user_id, tier, provider, model, input_tokens,"
                " output_tokens, cost_usd, status, day)"
                " VALUES ($1, 'free', 'openai', $2, $3, $4, $5::numeric, 'completed', $6)",
                user_id,
                model,
                tokens_in,
                tokens_out,
                cost,
                day,
            )
    finally:
        await conn.close()


def cost_text(value: Decimal) -> str:
    return "$" + format(value.normalize(), "f") if value else "$0"


async def test_usage_chart_draws_one_bar_per_day(server: Server, browser: Browser) -> None:
    await clear_of_midnight()
    email = f"{uuid.uuid4().hex[:8]}@test"
    key = await server.new_key(email)
    today = datetime.now(UTC).date()
    await add_usage(
        server,
        email,
        [
            (today - timedelta(days=3), "gpt-4o-mini", 120, 300, "0.0000258"),
            (today - timedelta(days=3), "gpt-4o", 40, 60, "0.0001"),
            (today - timedelta(days=1), "gpt-4o-mini", 1000, 2000, "0.0021"),
        ],
    )
    page = await connected(browser, server, key)
    await chat(page, "Count my tokens")  # today's usage, from the simulator
    _, usage = await api(server, key, "/v1/usage")
    days: dict[str, dict[str, Any]] = {}
    for row in usage["items"]:
        totals = days.setdefault(row["day"], {"tokens": 0, "cost": Decimal(0)})
        totals["tokens"] += row["input_tokens"] + row["output_tokens"]
        totals["cost"] += Decimal(row["cost_usd"])
    assert len(days) == 3 and today.isoformat() in days

    bars = page.locator("#usage svg rect.usage-bar")
    await expect(bars).to_have_count(3, timeout=WAIT_MS)
    drawn = [
        (await bar.get_attribute("data-day"), await bar.get_attribute("data-tokens"))
        for bar in await bars.all()
    ]
    assert drawn == [(day, str(figures["tokens"])) for day, figures in sorted(days.items())]
    # Bar heights follow the tokens: the day with the most is the tallest.
    heights = [float(await bar.get_attribute("height") or 0) for bar in await bars.all()]
    tallest = max(days, key=lambda d: days[d]["tokens"])
    assert heights[sorted(days).index(tallest)] == max(heights)
    for day, figures in days.items():
        row = page.locator(f'#usage tr[data-day="{day}"]')
        await expect(row.locator('[data-col="tokens"]')).to_have_text(str(figures["tokens"]))
        await expect(row.locator('[data-col="cost"]')).to_have_text(cost_text(figures["cost"]))
    total = sum(f["tokens"] for f in days.values())
    await expect(page.locator("#usage-total")).to_contain_text(f"{total} tokens")

    # Another message adds to today's bar once it ends.
    before = days[today.isoformat()]["tokens"]
    await chat(page, "And a few more")
    _, usage = await api(server, key, "/v1/usage")
    now = sum(
        r["input_tokens"] + r["output_tokens"] for r in usage["items"] if r["day"] == str(today)
    )
    assert now > before
    await expect(page.locator(f'#usage rect[data-day="{today}"]')).to_have_attribute(
        "data-tokens", str(now), timeout=WAIT_MS
    )
    await page.locator("#usage").scroll_into_view_if_needed()
    await page.screenshot(path=str(ARTIFACTS / "playground-usage.png"), full_page=True)
    no_key_in_urls(page, key)
