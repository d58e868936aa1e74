"""The playground as a chat product's test bench, in Debian's headless Chromium against the
real server: tools defined in the page, their calls streamed and answered, the continuation
shown; a template of another user found in the gallery, forked and run; an agent picked and
run; a refusal shown apart. Screenshots kept under artifacts/."""

from __future__ import annotations

from typing import Any

import aiohttp
from playwright.async_api import Browser, Page, expect

from tests import test_playground
from tests.conftest import Server
from tests.library_helpers import api_for, prompt_body
from tests.test_agents import TEMPLATE
from tests.test_playground import (
    ARTIFACTS,
    WAIT_MS,
    last_answer,
    open_page,
    send,
    task_row,
    wait_status,
)
from tests.test_team_prompts import join

browser = test_playground.browser  # the Chromium fixture


async def connected(browser: Browser, server: Server, key: str, **context_args: Any) -> Page:
    page = await open_page(browser, f"{server.url}/#key={key}", **context_args)
    await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
    return page


async def no_sideways_scroll(page: Page) -> None:
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0


async def test_tool_calls_stream_take_results_and_continue(
    server: Server, browser: Browser
) -> None:
    key = await server.new_key()
    page = await connected(browser, server, key)

    # The editor comes with an example; a mistake in it is named by the server's field.
    await page.get_by_label("Offer tools to the model").check()
    tools = page.get_by_label("Tools (JSON", exact=False)
    await expect(tools).to_be_visible()
    example = await tools.input_value()
    assert '"weather"' in example and '"local_time"' in example
    await tools.fill('[{"name": "not a name!"}]')
    await page.fill("#message", "Weather?")
    await page.click("#send")
    await expect(page.locator("#error")).to_contain_text("tools.0.name", timeout=WAIT_MS)
    await tools.fill("[{")
    await page.click("#send")
    await expect(page.locator("#error")).to_contain_text("not valid JSON")
    await tools.fill(example)

    # Two calls at once: each shown with its name and arguments as they stream.
    await page.fill("#sim-calls", "2")
    await page.fill("#tps", "20")
    await page.fill("#max-tokens", "12")
    await page.fill("#message", "Weather in Oslo, and the time there?")
    await page.press("#message", "Enter")
    # The step that asks, then (once it ends) its continuation, waiting for the results.
    await expect(page.locator("li.turn.assistant")).to_have_count(2, timeout=WAIT_MS)
    step = await page.locator("li.turn.assistant").first.get_attribute("data-task-id")
    assert step
    await wait_status(page, step, "completed")
    calls = page.locator(f'li[data-task-id="{step}"] .tool-call')
    await expect(calls).to_have_count(2)
    row = await task_row(server, key, step)
    assert row["finish_reason"] == "tool_calls" and row["next_task_id"]
    for n, call in enumerate(row["tool_calls"]):
        shown = calls.nth(n)
        await expect(shown.locator(".tool-name")).to_contain_text(call["name"])
        await expect(shown.locator(".tool-name")).to_contain_text(call["id"])
        await expect(shown.locator(".tool-args")).to_contain_text(call["arguments"]["input"])
    await expect(last_answer(page).locator(".stats")).to_contain_text("streaming")
    continuation = row["next_task_id"]
    await expect(last_answer(page)).to_have_attribute("data-task-id", continuation)

    # A result typed per call, sent one by one (Enter sends); then the answer streams.
    first, second = row["tool_calls"]
    await page.get_by_role("textbox", name=f"Result of {first['name']}").fill('{"temp_c": 4}')
    await page.get_by_role("button", name=f"Send result of {first['name']}").click()
    await expect(calls.nth(0).locator(".tool-result")).to_contain_text('{"temp_c": 4}')
    # Focus moved to the next call's field: keyboard only from here.
    await expect(page.get_by_role("textbox", name=f"Result of {second['name']}")).to_be_focused()
    await page.keyboard.type("14:05")
    await page.keyboard.press("Enter")
    await wait_status(page, continuation, "completed")
    done = await task_row(server, key, continuation)
    assert done["text"] and done["parent_task_id"] == step
    answer = page.locator(f'li[data-task-id="{continuation}"]')
    await expect(answer.locator(".text")).to_have_text(done["text"])
    await expect(answer.locator(".who")).to_contain_text("after the tool results")
    asked = await task_row(server, key, step)
    assert asked["tool_results"] == {first["id"]: '{"temp_c": 4}', second["id"]: "14:05"}

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "playground-tools.png"), full_page=True)
    await page.set_viewport_size({"width": 375, "height": 740})
    await no_sideways_scroll(page)
    await page.screenshot(path=str(ARTIFACTS / "playground-tools-phone.png"), full_page=True)

    # After a reload the conversation, its calls and their results are still there.
    await page.reload()
    await expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
    await expect(calls.nth(1).locator(".tool-result")).to_contain_text("14:05")
    await expect(answer.locator(".text")).to_have_text(done["text"])
    # Opened from the sidebar (the server's record of the run): the same steps.
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.locator("#runs li.run .run-open").first.click()
    await expect(calls).to_have_count(2)
    await expect(calls.nth(0).locator(".tool-result")).to_contain_text('{"temp_c": 4}')
    await expect(answer.locator(".text")).to_have_text(done["text"], timeout=WAIT_MS)
    await expect(answer.locator(".who")).to_contain_text("after the tool results")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_template_forked_and_agent_run_from_the_library(
    server: Server, browser: Browser, http: aiohttp.ClientSession
) -> None:
    author, reader, org_admin = [await api_for(http, server) for _ in range(3)]
    made = await author.call(
        "POST", "/v1/prompts", prompt_body(name="Gallery explainer"), expect=201
    )
    await author.call("POST", f"/v1/prompts/{made['id']}/versions/1/template", {}, expect=200)
    await reader.call("POST", "/v1/prompts", prompt_body(name="My own"), expect=201)
    org = (await org_admin.call("POST", "/v1/orgs", {"name": "Acme"}, expect=201))["id"]
    await join(org_admin, reader, "org", org)
    await org_admin.call(
        "POST", "/v1/prompts", prompt_body(name="Team notes", org_id=org), expect=201
    )
    template = await reader.call("POST", "/v1/agent-templates", TEMPLATE, expect=201)
    agent_body = {"template_id": template["id"], "name": "Ada", "variables": {"persona": "Ada"}}
    agent = await reader.call("POST", "/v1/agents", agent_body, expect=201)

    page = await connected(browser, server, reader.key)
    library = page.locator("#library-list")
    await expect(library.locator(".library-title")).to_have_text(["My own"], timeout=WAIT_MS)
    await page.get_by_label("My teams'").check()
    await expect(library.locator(".library-title")).to_have_text(["Team notes"])

    # The gallery, searched: the other user's template is there; Fork copies it to mine.
    await page.get_by_label("Public templates").check()
    await page.fill("#library-search", "gallery")
    await expect(library.locator(".library-title")).to_have_text(["Gallery explainer"])
    await page.fill("#library-search", "no such thing")
    await expect(page.locator("#library-status")).to_contain_text("Nothing matches")
    await page.fill("#library-search", "explainer")
    await page.get_by_role("button", name="Fork Gallery explainer into my library").click()
    await expect(page.locator("#library-status")).to_contain_text("Forked")
    forks = (await reader.call("GET", "/v1/prompts?owner=me", expect=200))["items"]
    fork = next(p for p in forks if p["forked_from"])
    assert fork["forked_from"]["prompt_id"] == made["id"]
    # The fork is what Send runs now, its variables a form.
    await expect(page.locator("#source")).to_have_value(f"prompt:{fork['id']}")
    await page.get_by_label("topic (required)").fill("tides")
    task_id = await send(page, "", tps="0", max_tokens="6")
    await wait_status(page, task_id, "completed")
    row = await task_row(server, reader.key, task_id)
    assert row["prompt_id"] == fork["id"]
    assert "Explain tides in English." in [m["content"] for m in row["request"]["messages"]]

    # An agent, picked from the library and run in the conversation view (a new one: a run
    # continued keeps the system message of its first turn).
    await page.click("#new-chat")
    await page.get_by_label("Agents").check()
    await page.get_by_role("button", name="Run Ada").click()
    await expect(page.locator("#source")).to_have_value(f"agent:{agent['id']}")
    await expect(page.locator("#message")).to_be_focused()
    await page.get_by_label("company (required)").fill("Acme")
    task_id = await send(page, "Where is my parcel?", tps="0", max_tokens="6")
    await wait_status(page, task_id, "completed")
    row = await task_row(server, reader.key, task_id)
    assert "You are Ada for Acme." in [m["content"] for m in row["request"]["messages"]]
    await expect(page.locator("li.turn.assistant")).to_have_count(1)

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "playground-library.png"), full_page=True)
    await page.set_viewport_size({"width": 375, "height": 740})
    await no_sideways_scroll(page)
    await page.screenshot(path=str(ARTIFACTS / "playground-library-phone.png"), full_page=True)
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_refusal_is_shown_apart(server: Server, browser: Browser) -> None:
    # No offline model refuses: the page's own renderer is given task_done as a provider's
    # refusal makes it (finish_reason content_filter, refusal set).
    key = await server.new_key()
    page = await connected(browser, server, key)
    html = await page.evaluate("""async () => {
        const { renderTurn } = await import('/playground/view.js');
        const done = { status: 'completed', finish_reason: 'content_filter', text: '',
                       refusal: 'I cannot help with that.', usage: null, error: null };
        const li = renderTurn({ role: 'assistant', task_id: 't', text: '', done });
        document.getElementById('transcript').append(li);
        return li.querySelector('.stats').textContent;
    }""")
    assert "completed (content_filter)" in html
    await expect(page.locator("#transcript .refusal")).to_have_text(
        "RefusedI cannot help with that."
    )


async def test_tool_call_pieces_show_as_they_come(server: Server, browser: Browser) -> None:
    # Whether pieces reach the browser one by one is up to the network (the simulator writes
    # them at once, before the execute ack even): the page's renderer is fed them in turn.
    key = await server.new_key()
    page = await connected(browser, server, key)
    shown = await page.evaluate("""async () => {
        const { addToolPiece, renderToolCalls } = await import('/playground/tools.js');
        const turn = { role: 'assistant', task_id: 't', text: '', done: null };
        const texts = [];
        for (const delta of ['{"city"', ': "Os', 'lo"}']) {
            addToolPiece(turn, { callId: 'c1', index: 0, name: 'weather', delta });
            texts.push(renderToolCalls(turn, null).querySelector('.tool-args').textContent);
        }
        const box = renderToolCalls(turn, null);
        return { texts, head: box.querySelector('.tool-name').textContent,
                 form: box.querySelector('form') !== null };
    }""")
    assert shown["texts"] == ['{"city"', '{"city": "Os', '{"city": "Oslo"}']
    assert shown["head"] == "Tool call weather c1"
    assert not shown["form"]  # no result field before the step has ended asking
