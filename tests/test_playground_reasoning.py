"""Reasoning in the playground, in Debian's headless Chromium against the real server: the
Reasoning control asks for it (`settings.reasoning`), the reasoning streams into a folded
`<details>` above the answer and grows while it streams, never into the answer's text; a
reload mid-reasoning resumes with nothing repeated; a conversation opened again shows it."""

from __future__ import annotations

import re

from playwright.async_api import Browser, Page, expect

from tests import test_playground
from tests.conftest import Server
from tests.test_playground import ARTIFACTS, WAIT_MS, open_page, task_row, wait_status

browser = test_playground.browser  # the Chromium fixture


async def connected(browser: Browser, server: Server, key: str) -> Page:
    page = await open_page(browser, f"{server.url}/#key={key}")
    await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
    return page


async def ask(page: Page, message: str, *, effort: str, tps: str, max_tokens: str) -> str:
    before = await page.locator("li.turn.assistant").count()
    await page.get_by_label("Reasoning").select_option(effort)
    await page.fill("#tps", tps)
    await page.fill("#max-tokens", max_tokens)
    await page.fill("#message", message)
    await page.press("#message", "Enter")
    await expect(page.locator("li.turn.assistant")).to_have_count(before + 1, timeout=WAIT_MS)
    task_id = await page.locator("li.turn.assistant").last.get_attribute("data-task-id")
    assert task_id
    return task_id


async def record_reasoning_lengths(page: Page) -> None:
    await page.evaluate("""() => {
        window.__thought = [];
        new MutationObserver(() => {
            const all = document.querySelectorAll('li.turn.assistant .reasoning-text');
            if (all.length) window.__thought.push(all[all.length - 1].textContent.length);
        }).observe(document.getElementById('transcript'),
                   {subtree: true, childList: true, characterData: true});
    }""")


async def test_reasoning_streams_folded_above_the_answer(server: Server, browser: Browser) -> None:
    key = await server.new_key()
    page = await connected(browser, server, key)
    await record_reasoning_lengths(page)
    task_id = await ask(page, "Think it over", effort="high", tps="8", max_tokens="10")
    turn = page.locator(f'li[data-task-id="{task_id}"]')
    details = turn.locator("details.reasoning")
    await expect(details.locator("summary")).to_have_text("Reasoning (thinking…)", timeout=WAIT_MS)
    assert await details.get_attribute("open") is None  # folded while it streams
    await wait_status(page, task_id, "completed")
    await expect(details.locator("summary")).to_have_text("Reasoning")

    row = await task_row(server, key, task_id)
    assert row["request"]["settings"]["reasoning"] == {"effort": "high"}
    assert row["reasoning"] and len(row["reasoning"].split()) == 16
    await expect(details.locator(".reasoning-text")).to_have_text(row["reasoning"])
    await expect(turn.locator("p.text")).to_have_text(row["text"])
    assert row["reasoning"].strip() not in row["text"]
    # above the answer: the details come right before the answer's text
    order = await turn.evaluate(
        "li => [...li.children].map((e) => e.className || e.tagName.toLowerCase())"
    )
    assert order.index("reasoning") + 1 == order.index("text"), order
    lengths = await page.evaluate("window.__thought")
    assert len(set(lengths)) > 3, f"the reasoning grew piece by piece: {lengths}"
    assert lengths == sorted(lengths)
    await expect(turn.locator(".stats")).to_contain_text("(reasoning 16)")

    # opened by a click, and it stays open as later answers render
    await details.locator("summary").click()
    assert await details.get_attribute("open") == ""
    await expect(details.locator(".reasoning-text")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "playground-reasoning.png"), full_page=True)

    # Off: no reasoning asked, none shown
    plain = await ask(page, "Just answer", effort="", tps="0", max_tokens="4")
    await wait_status(page, plain, "completed")
    await expect(page.locator(f'li[data-task-id="{plain}"] details')).to_have_count(0)
    assert "reasoning" not in (await task_row(server, key, plain))["request"]["settings"]
    assert await details.get_attribute("open") == ""

    # the conversation opened again from the sidebar: the reasoning is there, folded
    await page.get_by_role("button", name="New conversation").click()
    await page.locator("#runs li button").first.click()
    again = page.locator(f'li[data-task-id="{task_id}"] details.reasoning')
    await expect(again.locator(".reasoning-text")).to_have_text(row["reasoning"])
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_reload_mid_reasoning_resumes_without_repeats(
    server: Server, browser: Browser
) -> None:
    key = await server.new_key()
    page = await connected(browser, server, key)
    task_id = await ask(page, "Think slowly", effort="high", tps="4", max_tokens="6")
    thought = page.locator(f'li[data-task-id="{task_id}"] .reasoning-text')
    await expect(thought).to_have_text(re.compile(r"^(\S+ ){4}"), timeout=WAIT_MS)  # 2 pieces in
    before = await thought.text_content()
    assert before
    await page.reload()
    await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
    await wait_status(page, task_id, "completed")
    row = await task_row(server, key, task_id)
    assert row["reasoning"].startswith(before) and len(before) < len(row["reasoning"])
    await expect(page.locator(f'li[data-task-id="{task_id}"] .reasoning-text')).to_have_text(
        row["reasoning"]
    )
    await expect(page.locator(f'li[data-task-id="{task_id}"] p.text')).to_have_text(row["text"])
    assert page.errors == []  # type: ignore[attr-defined]
