"""Long conversations: the pure trimming of a history to the context budget, the budget
from the model's window and the server's limit, and a run continued past its budget over a
real server (the system prompt and the newest messages are sent, the rest is recorded as a
task event, and the run itself keeps every message)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from engine.settings import Settings
from engine.tasks.context import (
    DEFAULT_OUTPUT_RESERVE,
    fit_messages,
    input_budget,
    known_window,
    message_tokens,
)
from tests.conftest import start_server, stop_server
from tests.fakes.openai_server import FakeOpenAI


def msg(role: str, text: str) -> dict[str, str]:
    return {"role": role, "content": text}


SYSTEM = msg("system", "You are terse.")
HISTORY = [
    SYSTEM,
    msg("user", "a" * 40),
    msg("assistant", "b" * 40),
    msg("user", "c" * 40),
    msg("assistant", "d" * 40),
]
NEW = [msg("user", "e" * 40)]
EACH = message_tokens(HISTORY[1])  # 10 + 4 per 40-character message


def test_everything_fits_nothing_dropped() -> None:
    fitted = fit_messages(HISTORY, NEW, 10_000)
    assert fitted.messages == HISTORY + NEW
    assert not fitted.trimmed and fitted.dropped_tokens == 0 and not fitted.over_budget


def test_keeps_system_and_newest_that_fit() -> None:
    fixed = message_tokens(SYSTEM) + message_tokens(NEW[0])
    fitted = fit_messages(HISTORY, NEW, fixed + 2 * EACH + EACH - 1)  # room for two
    assert fitted.messages == [SYSTEM, HISTORY[3], HISTORY[4], *NEW]
    assert (fitted.dropped_messages, fitted.dropped_tokens) == (2, 2 * EACH)
    assert fitted.trimmed and not fitted.over_budget


def test_no_gaps_an_older_small_message_is_not_kept_after_a_dropped_one() -> None:
    history = [SYSTEM, msg("user", "x"), msg("assistant", "y" * 400), msg("user", "z" * 40)]
    fixed = message_tokens(SYSTEM) + message_tokens(NEW[0])
    fitted = fit_messages(history, NEW, fixed + EACH + message_tokens(history[1]))
    assert fitted.messages == [SYSTEM, history[3], *NEW]  # "x" would fit, but not after a gap


def test_system_messages_anywhere_are_kept_in_order() -> None:
    history = [SYSTEM, msg("user", "a" * 400), msg("system", "Now in French."), msg("user", "b")]
    fitted = fit_messages(history, NEW, 60)
    assert fitted.messages == [SYSTEM, history[2], history[3], *NEW]


def test_new_messages_too_long_sends_them_without_history() -> None:
    fitted = fit_messages(HISTORY, [msg("user", "q" * 4000)], 100)
    assert fitted.messages == [SYSTEM, msg("user", "q" * 4000)]
    assert fitted.over_budget and fitted.dropped_messages == 4


def test_budget_from_window_limit_and_answer_room() -> None:
    assert input_budget(None, None, None) is None
    assert input_budget(128_000, None, 1000) == int(128_000 * 0.9) - 1000
    assert input_budget(128_000, 10_000, 500) == 9000 - 500  # the smaller limit wins
    assert input_budget(None, 10_000, None) == 9000 - DEFAULT_OUTPUT_RESERVE
    assert input_budget(None, 200, None) == 180 - 50  # a quarter at most for the answer
    assert input_budget(None, 100, 1_000_000) == 0


def test_known_windows_from_the_catalog() -> None:
    assert known_window("openai", "gpt-4o-mini") == 128_000
    assert known_window("simulated", "anything") is None
    assert known_window("openai", "no-such-model-xyz") is None


async def test_continuing_a_long_run_trims_what_is_sent(settings: Settings) -> None:
    server = await start_server(settings.model_copy(update={"max_context_tokens": 200}))
    try:
        key = await server.new_key()
        client = await server.client(key)
        fast = {"max_tokens": 20, "tokens_per_second": 0}
        first: dict[str, Any] = {"messages": [SYSTEM, msg("user", "first " + "f" * 200)]}
        ack = await client.call("execute", first | {"model": "simulated/long", "settings": fast})
        assert ack["ok"], ack
        await client.wait_done(ack["task_id"])
        run_id, first_task = ack["run_id"], ack["task_id"]
        for n in range(4):
            turn = {"messages": [msg("user", f"turn {n} " + "t" * 150)], "run_id": run_id}
            ack = await client.call("execute", turn | {"model": "simulated/long", "settings": fast})
            assert ack["ok"], ack
            done = await client.wait_done(ack["task_id"])
            assert done["status"] == "completed", done
        async with aiohttp.ClientSession(
            server.url, headers={"Authorization": f"Bearer {key}"}
        ) as http:
            last = await _get(http, f"/v1/tasks/{ack['task_id']}")
            events = (await _get(http, f"/v1/tasks/{ack['task_id']}/events"))["items"]
            first_events = (await _get(http, f"/v1/tasks/{first_task}/events"))["items"]
            run = await _get(http, f"/v1/runs/{run_id}")
        sent = last["request"]["messages"]
        assert sent[0] == SYSTEM and sent[-1]["content"].startswith("turn 3 ")
        assert sum(message_tokens(m) for m in sent) <= int(200 * 0.9) - 20
        trimmed = [e for e in events if e["kind"] == "context_trimmed"]
        assert len(trimmed) == 1, events
        assert len(run["messages"]) == 3 + 4 * 2  # the run keeps everything
        data = trimmed[0]["data"]
        assert data["dropped_messages"] + data["kept_messages"] == len(run["messages"]) - 1
        assert data["kept_messages"] == len(sent)
        assert data["budget_tokens"] == int(200 * 0.9) - 20 and data["over_budget"] is False
        assert not [e for e in first_events if e["kind"] == "context_trimmed"]
    finally:
        await stop_server(server)


async def _get(http: aiohttp.ClientSession, path: str) -> Any:
    async with http.get(path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


@pytest.mark.parametrize("budget", [0, 1, 5])
def test_tiny_budgets_never_drop_new_messages(budget: int) -> None:
    fitted = fit_messages(HISTORY, NEW, budget)
    assert fitted.messages[-1] == NEW[0] and fitted.messages[0] == SYSTEM


def test_message_count_limit_keeps_the_newest() -> None:
    fitted = fit_messages(HISTORY, NEW, None, max_messages=4)
    assert fitted.messages == [SYSTEM, HISTORY[3], HISTORY[4], *NEW]
    assert fitted.budget_tokens is None and fitted.dropped_messages == 2
    assert fit_messages(HISTORY, NEW, None).messages == HISTORY + NEW


async def test_long_run_on_a_real_sdk_never_gets_a_context_error(settings: Settings) -> None:
    """Against the fake OpenAI with a 300-token window: an untrimmed history would be refused
    with `context_length_exceeded`; trimmed, every turn completes."""
    async with FakeOpenAI() as fake:
        update = {
            "openai_api_key": SecretStr("test-key"),
            "openai_base_url": fake.base_url,
            "max_context_tokens": 300,
        }
        server = await start_server(settings.model_copy(update=update))
        try:
            client = await server.client(await server.new_key())
            model = "openai/fake:tokens=5:context=300"
            too_long = {"messages": [msg("user", "x" * 1300)], "model": model}
            refused = await client.call("execute", too_long)  # the fake does enforce it
            done = await client.wait_done(refused["task_id"])
            assert done["status"] == "failed" and done["error"]["code"] == "provider_error"
            run_id = None
            for n in range(8):  # about 8 x 90 tokens of history: far beyond the window
                turn: dict[str, Any] = {"messages": [msg("user", f"{n} " + "w" * 300)]}
                turn |= {"model": model, "settings": {"max_tokens": 5}}
                if run_id is not None:
                    turn["run_id"] = run_id
                ack = await client.call("execute", turn)
                assert ack["ok"], ack
                run_id = ack["run_id"]
                done = await client.wait_done(ack["task_id"])
                assert done["status"] == "completed", (n, done)
            sent = fake.requests[-1]["messages"]
            assert sum(len(m["content"]) for m in sent) / 4 <= 300
            assert sent[-1]["content"].startswith("7 ")
        finally:
            await stop_server(server)


def test_an_answer_whose_question_was_dropped_is_dropped_too() -> None:
    history = [SYSTEM, msg("user", "q" * 400), msg("assistant", "a"), msg("user", "b")]
    fixed = message_tokens(SYSTEM) + message_tokens(NEW[0])
    room = message_tokens(history[2]) + message_tokens(history[3])
    fitted = fit_messages(history, NEW, fixed + room)  # room for the answer, not its question
    assert fitted.messages == [SYSTEM, history[3], *NEW]
    assert fitted.dropped_messages == 2
    assert fit_messages(history, NEW, None, max_messages=3).messages == [SYSTEM, history[3], *NEW]
    opening = [msg("assistant", "Hello!"), msg("user", "hi")]  # nothing dropped: kept as it is
    assert fit_messages(opening, NEW, None).messages == opening + NEW
