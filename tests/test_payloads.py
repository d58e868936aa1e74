"""Hostile and malformed input over Socket.IO: every bad payload gets a clean, stable ack,
and the socket that sent it keeps working."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest
import socketio

from tests.conftest import SMALL_LIMIT, Client, Server, assert_intact

EVENTS = ["execute", "subscribe", "unsubscribe", "cancel"]
TRACE_MARKERS = ("Traceback", 'File "', " object at 0x", "<class '", "Error(")


def valid(**extra: Any) -> dict[str, Any]:
    """An ad-hoc execute of the simulator that ends at once."""
    return {
        "messages": [{"role": "user", "content": "hi"}],
        "model": "simulated/x",
        "settings": {"max_tokens": 5, "tokens_per_second": 0},
        **extra,
    }


def nested(depth: int, leaf: Any = "x") -> Any:
    out = leaf
    for _ in range(depth):
        out = {"a": out}
    return out


def assert_clean(ack: Any) -> None:
    """No stack trace and no Python repr of an exception anywhere in an ack."""
    text = json.dumps(ack, ensure_ascii=False)
    for marker in TRACE_MARKERS:
        assert marker not in text, (marker, text)


def assert_error(ack: Any, code: str) -> dict[str, Any]:
    assert isinstance(ack, dict), ack
    assert ack.get("ok") is False, ack
    error = ack["error"]
    assert error["code"] == code, ack
    assert isinstance(error["message"], str) and error["message"], ack
    assert_clean(ack)
    result: dict[str, Any] = error
    return result


def assert_invalid(ack: Any, field: str | None = None) -> list[dict[str, str]]:
    """`invalid_request` with `details.errors` a non-empty list of `{field, message}`;
    when `field` is given, one of the errors is about it (or something inside it)."""
    error = assert_error(ack, "invalid_request")
    errors = error["details"]["errors"]
    assert isinstance(errors, list) and errors, ack
    for item in errors:
        assert set(item) == {"field", "message"}, item
        assert isinstance(item["field"], str) and item["field"], item
        assert isinstance(item["message"], str) and item["message"], item
    if field is not None:
        fields = [e["field"] for e in errors]
        assert any(f == field or f.startswith(field + ".") for f in fields), (field, fields)
    result: list[dict[str, str]] = errors
    return result


async def assert_still_works(client: Client) -> None:
    """The same socket can still run a task to completion, stream intact."""
    assert client.sio.connected
    ack = await client.call("execute", valid())
    assert ack["ok"] is True, ack
    done = await client.wait_done(ack["task_id"])
    assert_intact(client, ack["task_id"])
    assert done["status"] == "completed"


# -- shapes that are not an object at all -------------------------------------------------

NOT_OBJECTS: list[Any] = [
    "execute",
    "",
    "{}",
    0,
    42,
    -1.5,
    True,
    False,
    [],
    [1, 2],
    [{"task_id": str(uuid.uuid4())}],
    b"\x00\xff binary",
    "\ud83d\ude00\u202e\u0301",
]


@pytest.mark.parametrize("event", EVENTS)
async def test_payloads_that_are_not_objects_are_invalid(server: Server, event: str) -> None:
    client = await server.client(await server.new_key())
    # No argument at all, then an explicit null (the same on the wire for this client).
    assert_invalid(await client.sio.call(event, timeout=10), "(payload)")
    assert_invalid(await client.call(event, None), "(payload)")
    for payload in NOT_OBJECTS:
        assert_invalid(await client.call(event, payload), "(payload)")
    await assert_still_works(client)


# -- execute: wrong shapes field by field ---------------------------------------------------

U = "6f1c1a52-3b6e-4a52-9a55-0c1f5d0a7e11"
SETTINGS_OK = {"max_tokens": 5, "tokens_per_second": 0}

EXECUTE_CASES: list[tuple[dict[str, Any], str]] = [
    # unknown extra fields, at every level
    ({**valid(), "extra": 1}, "extra"),
    ({**valid(), "Messages": []}, "Messages"),
    ({**valid(), "\U0001f600\u202e": "\udfff"}, "\U0001f600\u202e"),
    ({**valid(), "huge": nested(200)}, "huge"),
    ({**valid(), **{f"k{i}": i for i in range(2000)}}, "k0"),
    (valid(messages=[{"role": "user", "content": "x", "name": "bob"}]), "messages.0.name"),
    (valid(settings={**SETTINGS_OK, "temprature": 0.5}), "settings.temprature"),
    (valid(settings={**SETTINGS_OK, "max_tokens_per_second": 1}), "settings"),
    (valid(scope={"org_id": U, "team": "x"}), "scope.team"),
    # messages
    (valid(messages=None), "messages"),
    (valid(messages="hi"), "messages"),
    (valid(messages={"role": "user", "content": "hi"}), "messages"),
    (valid(messages=["hi"]), "messages.0"),
    (valid(messages=[None]), "messages.0"),
    (valid(messages=[[]]), "messages.0"),
    (valid(messages=[{"role": "user"}]), "messages.0.content"),
    (valid(messages=[{"content": "hi"}]), "messages.0.role"),
    (valid(messages=[{"role": "user", "content": None}]), "messages.0.content"),
    (valid(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
    (valid(messages=[{"role": "user", "content": ["a"]}]), "messages.0.content"),
    (valid(messages=[{"role": "user", "content": nested(300)}]), "messages.0.content"),
    (valid(messages=[{"role": "user", "content": "a\ud800b"}]), "messages.0.content"),
    # bad roles
    # a tool result names its call (docs/tools.md)
    (valid(messages=[{"role": "tool", "content": "x"}]), "messages.0.tool_call_id"),
    (valid(messages=[{"role": "USER", "content": "x"}]), "messages.0.role"),
    (valid(messages=[{"role": "", "content": "x"}]), "messages.0.role"),
    (valid(messages=[{"role": None, "content": "x"}]), "messages.0.role"),
    (valid(messages=[{"role": 1, "content": "x"}]), "messages.0.role"),
    (
        valid(messages=[{"role": "user", "content": "x"}, {"role": "root", "content": "y"}]),
        "messages.1.role",
    ),
    # model
    (valid(model="simulated"), "model"),
    (valid(model="simulated/"), "model"),
    (valid(model="/x"), "model"),
    (valid(model="Simulated/x"), "model"),
    (valid(model="simulated/x y"), "model"),
    (valid(model="simulated//x"), "model"),
    (valid(model=""), "model"),
    (valid(model=5), "model"),
    (valid(model=["simulated/x"]), "model"),
    (valid(model="simulated/" + "x" * 300), "model"),
    # settings: wrong types and out-of-range values
    (valid(settings=None), "settings"),
    (valid(settings="hot"), "settings"),
    (valid(settings=[1]), "settings"),
    (valid(settings={"temperature": "hot"}), "settings.temperature"),
    (valid(settings={"temperature": -0.1}), "settings.temperature"),
    (valid(settings={"temperature": 2.5}), "settings.temperature"),
    (valid(settings={"temperature": float("nan")}), "settings.temperature"),
    (valid(settings={"temperature": float("inf")}), "settings.temperature"),
    (valid(settings={"top_p": 1.5}), "settings.top_p"),
    (valid(settings={"max_tokens": 0}), "settings.max_tokens"),
    (valid(settings={"max_tokens": -5}), "settings.max_tokens"),
    (valid(settings={"max_tokens": 2.5}), "settings.max_tokens"),
    (valid(settings={"max_tokens": "many"}), "settings.max_tokens"),
    (valid(settings={"max_tokens": 10**7}), "settings.max_tokens"),
    (valid(settings={"tokens_per_second": -1}), "settings.tokens_per_second"),
    (valid(settings={"stop": "END"}), "settings.stop"),
    (valid(settings={"stop": [1]}), "settings.stop"),
    (valid(settings={"stop": ["s"] * 9}), "settings.stop"),
    (valid(settings={"stop": ["s" * 201]}), "settings.stop"),
    (valid(settings={"seed": "x"}), "settings.seed"),
    (valid(settings={"presence_penalty": 3}), "settings.presence_penalty"),
    (valid(settings={"frequency_penalty": -3}), "settings.frequency_penalty"),
    # ids and the other scalar fields
    (valid(prompt_id="not-a-uuid"), "prompt_id"),
    (valid(prompt_id=5), "prompt_id"),
    (valid(prompt_id=U + "0"), "prompt_id"),
    (valid(run_id="not-a-uuid"), "run_id"),
    (valid(run_id=["x"]), "run_id"),
    (valid(run_id=""), "run_id"),
    (valid(builtin=""), "builtin"),
    (valid(builtin=5), "builtin"),
    (valid(builtin="b" * 201), "builtin"),
    (valid(builtin="a\udc00"), "builtin"),
    (valid(version=0), "version"),
    (valid(version=-1), "version"),
    (valid(version="latest"), "version"),
    (valid(version=1.5), "version"),
    (valid(track_in_runs="maybe"), "track_in_runs"),
    (valid(track_in_runs=[True]), "track_in_runs"),
    (valid(track_in_runs=None), "track_in_runs"),
    (valid(request_id=""), "request_id"),
    (valid(request_id=5), "request_id"),
    (valid(request_id="r" * 201), "request_id"),
    (valid(variables=["a"]), "variables"),
    (valid(variables="a=b"), "variables"),
    (valid(variables={"a": None}), "variables.a"),
    (valid(variables={"a": {"b": 1}}), "variables.a"),
    (valid(variables={"a": [1]}), "variables.a"),
    (valid(variables={"a": nested(100)}), "variables.a"),
    (valid(variables={"k" * 201: "v"}), "variables"),
    (valid(scope="org"), "scope"),
    (valid(scope={"org_id": "not-a-uuid"}), "scope.org_id"),
    (valid(scope={"project_id": 7}), "scope.project_id"),
    (valid(broker_values=[1]), "broker_values"),
    (valid(broker_values="x"), "broker_values"),
]


async def test_malformed_execute_payloads_are_invalid(server: Server) -> None:
    client = await server.client(await server.new_key())
    for payload, field in EXECUTE_CASES:
        ack = await client.call("execute", payload)
        try:
            assert_invalid(ack, field)
        except AssertionError as exc:
            raise AssertionError(f"{field}: {ack}") from exc
    await assert_still_works(client)


async def test_each_field_error_is_listed(server: Server) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call(
        "execute",
        valid(
            messages=[{"role": "bot", "content": 1}],
            model="nope",
            settings={"top_k": 3},
            run_id="x",
            extra=True,
        ),
    )
    fields = {e["field"] for e in assert_invalid(ack)}
    assert {
        "messages.0.role",
        "messages.0.content",
        "model",
        "settings.top_k",
        "run_id",
        "extra",
    } <= fields
    assert_invalid(await client.call("subscribe", {}), "task_id")
    await assert_still_works(client)


async def test_field_errors_do_not_echo_the_input(server: Server) -> None:
    client = await server.client(await server.new_key())
    marker = "SECRET-sk-" + uuid.uuid4().hex
    for payload in (
        valid(messages=[{"role": marker, "content": "x"}]),
        valid(model=marker),
        valid(settings={"stop": marker}),
        valid(run_id=marker),
        {**valid(), "extra": marker},
    ):
        ack = await client.call("execute", payload)
        assert_invalid(ack)
        assert marker not in json.dumps(ack), ack
    for event in ("subscribe", "unsubscribe", "cancel"):
        ack = await client.call(event, {"task_id": marker})
        assert_invalid(ack, "task_id")
        assert marker not in json.dumps(ack), ack


# -- subscribe / unsubscribe / cancel: wrong shapes ----------------------------------------

TASK_REF_CASES: list[tuple[dict[str, Any], str]] = [
    ({}, "task_id"),
    ({"task_id": None}, "task_id"),
    ({"task_id": ""}, "task_id"),
    ({"task_id": "not-a-uuid"}, "task_id"),
    ({"task_id": "6f1c1a52-3b6e-4a52-9a55"}, "task_id"),
    ({"task_id": U + "ff"}, "task_id"),
    ({"task_id": "zzzzzzzz-3b6e-4a52-9a55-0c1f5d0a7e11"}, "task_id"),
    ({"task_id": "'; DROP TABLE ai_tasks; --"}, "task_id"),
    ({"task_id": 12345}, "task_id"),
    ({"task_id": 1.5}, "task_id"),
    ({"task_id": [U]}, "task_id"),
    ({"task_id": {"id": U}}, "task_id"),
    ({"task_id": nested(200)}, "task_id"),
    ({"task_id": "\U0001f4a5\u0000\u202e"}, "task_id"),
    ({"task_id": U, "extra": 1}, "extra"),
    ({"task_id": U, "after_seq_": 1}, "after_seq_"),
    ({"taskId": U}, "task_id"),
]

SUBSCRIBE_ONLY_CASES: list[tuple[dict[str, Any], str]] = [
    ({"task_id": U, "after_seq": -1}, "after_seq"),
    ({"task_id": U, "after_seq": -(2**40)}, "after_seq"),
    ({"task_id": U, "after_seq": 1.5}, "after_seq"),
    ({"task_id": U, "after_seq": "many"}, "after_seq"),
    ({"task_id": U, "after_seq": None}, "after_seq"),
    ({"task_id": U, "after_seq": [1]}, "after_seq"),
    ({"task_id": U, "after_seq": {"seq": 1}}, "after_seq"),
]


@pytest.mark.parametrize("event", ["subscribe", "unsubscribe", "cancel"])
async def test_malformed_task_refs_are_invalid(server: Server, event: str) -> None:
    client = await server.client(await server.new_key())
    cases = TASK_REF_CASES
    if event == "subscribe":
        cases = cases + SUBSCRIBE_ONLY_CASES
    else:
        # after_seq belongs to subscribe only
        cases = cases + [({"task_id": U, "after_seq": 0}, "after_seq")]
    for payload, field in cases:
        ack = await client.call(event, payload)
        try:
            assert_invalid(ack, field)
        except AssertionError as exc:
            raise AssertionError(f"{event} {field}: {ack}") from exc
    await assert_still_works(client)


# -- well-formed but pointing at nothing ----------------------------------------------------


async def test_unknown_ids_are_not_found(server: Server) -> None:
    client = await server.client(await server.new_key())
    unknown = str(uuid.uuid4())
    for payload in (
        valid(run_id=unknown),
        valid(prompt_id=unknown),
        valid(prompt_id=unknown, version=3),
        valid(builtin=unknown),
        valid(builtin="no-such-builtin"),
    ):
        assert_error(await client.call("execute", payload), "not_found")
    for event in ("subscribe", "cancel"):
        assert_error(await client.call(event, {"task_id": unknown}), "not_found")
    assert_error(await client.call("subscribe", {"task_id": unknown, "after_seq": 5}), "not_found")
    # Unsubscribing from something never watched is harmless.
    assert await client.call("unsubscribe", {"task_id": unknown}) == {"ok": True}
    await assert_still_works(client)


async def test_unknown_provider_is_invalid_and_names_the_providers(server: Server) -> None:
    client = await server.client(await server.new_key())
    for model in ("nope/model", "openai2/gpt-4o", "simulatedx/y"):
        ack = await client.call("execute", valid(model=model))
        assert_invalid(ack, "model")
        assert "simulated" in ack["error"]["message"], ack
    await assert_still_works(client)


async def test_adhoc_execute_needs_messages(server: Server) -> None:
    client = await server.client(await server.new_key())
    for payload in (
        {"model": "simulated/x"},
        {"model": "simulated/x", "messages": []},
        {"settings": SETTINGS_OK},
        {"variables": {"a": "b"}},
    ):
        assert_invalid(await client.call("execute", payload), "messages")
    await assert_still_works(client)


async def test_conflicting_prompt_and_builtin_are_invalid(server: Server) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call("execute", valid(prompt_id=str(uuid.uuid4()), builtin="summarize"))
    assert_invalid(ack)


async def test_odd_but_valid_unicode_runs(server: Server) -> None:
    """Unicode that is valid is content like any other: it runs and is kept exactly."""
    client = await server.client(await server.new_key())
    text = (
        "Z\u0351\u036b\u0343\u036a a\u0308 \u202eevil\u202c "
        "\U0001f469\u200d\U0001f4bb \u4e2d\u6587 \ufeff \U0010fffd"
    )
    ack = await client.call(
        "execute",
        valid(messages=[{"role": "user", "content": text}], request_id="\u00e9\U0001f600-id"),
    )
    assert ack["ok"] is True, ack
    done = await client.wait_done(ack["task_id"])
    assert done["status"] == "completed"
    assert_intact(client, ack["task_id"])
    conn = await asyncpg.connect(server.settings.database_url)
    try:
        request = await conn.fetchval(
            "SELECT request FROM ai_tasks WHERE task_id = $1", uuid.UUID(ack["task_id"])
        )
    finally:
        await conn.close()
    assert json.loads(request)["messages"] == [{"role": "user", "content": text}]


async def test_subscribe_past_the_end_sends_only_done(server: Server) -> None:
    key = await server.new_key()
    client = await server.client(key)
    ack = await client.call("execute", valid())
    done = await client.wait_done(ack["task_id"])
    for after_seq in (done["last_seq"], done["last_seq"] + 1, 2**63):
        late = await server.client(key)
        sub = await late.call("subscribe", {"task_id": ack["task_id"], "after_seq": after_seq})
        assert sub["ok"] is True and sub["status"] == "completed", sub
        again = await late.wait_done(ack["task_id"])
        assert again["text"] == done["text"] and again["last_seq"] == done["last_seq"]
        assert late.chunks[ack["task_id"]] == []


async def test_subscribe_past_the_end_acks_the_tasks_last_seq(server: Server) -> None:
    key = await server.new_key()
    client = await server.client(key)
    ack = await client.call("execute", valid())
    done = await client.wait_done(ack["task_id"])
    late = await server.client(key)
    sub = await late.call("subscribe", {"task_id": ack["task_id"], "after_seq": 2**63})
    assert sub == {"ok": True, "status": "completed", "last_seq": done["last_seq"]}


# -- values that pass the schema but that Postgres cannot store ---------------------------


async def test_nul_characters_are_invalid_not_internal(server: Server) -> None:
    client = await server.client(await server.new_key())
    cases = [
        (valid(messages=[{"role": "user", "content": "a\x00b"}]), "messages.0.content"),
        (valid(model="simulated/a\x00"), "model"),
        (valid(builtin="a\x00b"), "builtin"),
        (valid(request_id="a\x00b"), "request_id"),
        (valid(settings={**SETTINGS_OK, "stop": ["\x00"]}), "settings.stop"),
        (valid(broker_values={"a": "a\x00b"}), "broker_values"),
    ]
    results = [(field, await client.call("execute", payload)) for payload, field in cases]
    await assert_still_works(client)
    for field, ack in results:
        assert_invalid(ack, field)


async def test_non_finite_numbers_are_invalid_not_internal(server: Server) -> None:
    client = await server.client(await server.new_key())
    acks = [
        await client.call("execute", valid(broker_values={"a": value}))
        for value in (float("nan"), float("inf"), float("-inf"))
    ]
    await assert_still_works(client)
    for ack in acks:
        assert_invalid(ack, "broker_values")


async def test_version_out_of_range_is_not_internal(server: Server) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call("execute", valid(prompt_id=str(uuid.uuid4()), version=2**40))
    await assert_still_works(client)
    assert ack["ok"] is False and ack["error"]["code"] in ("invalid_request", "not_found"), ack


# -- payloads the Socket.IO layer sees before our handlers -------------------------------


async def test_extra_arguments_are_acked(server: Server) -> None:
    client = await server.client(await server.new_key())
    try:
        ack = await client.sio.call("execute", (valid(), {"x": 1}), timeout=2)
    finally:
        await assert_still_works(client)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", ack


class DeepJson:
    """json for one client that swaps a marker for nesting deeper than Python's json allows,
    the way a hand-written hostile client would send it."""

    DEPTH = 20_000

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, **kwargs).replace(
            '"__DEEP__"', "[" * DeepJson.DEPTH + "]" * DeepJson.DEPTH
        )

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        return json.loads(text, **kwargs)


class DeepPacket(socketio.packet.Packet):
    """A packet class of its own, so the hostile json stays with this one client."""

    json = DeepJson


async def test_nesting_too_deep_to_decode_leaves_the_socket_working(server: Server) -> None:
    """A packet python-socketio cannot decode never reaches a handler; it gets an
    `invalid_request` error ack, and neither the connection nor the server suffers."""
    key = await server.new_key()
    sio = socketio.AsyncClient(reconnection=False, serializer=DeepPacket)
    client = Client(sio)
    await sio.connect(server.url, auth={"token": key}, transports=["websocket"], wait_timeout=10)
    server.clients.append(sio)
    ack = await sio.call("execute", valid(broker_values={"d": "__DEEP__"}), timeout=10)
    assert ack == {"ok": False, "error": {"code": "invalid_request", "message": "malformed packet"}}
    await assert_still_works(client)


# -- size limits ---------------------------------------------------------------------------


def sized(payload: dict[str, Any], size: int, pad_field: str) -> dict[str, Any]:
    """`payload` with `pad_field` grown so its compact JSON is exactly `size` bytes."""
    base = len(json.dumps({**payload, pad_field: ""}, separators=(",", ":")).encode())
    out = {**payload, pad_field: "x" * (size - base)}
    assert len(json.dumps(out, separators=(",", ":")).encode()) == size
    return out


def sized_execute(size: int) -> dict[str, Any]:
    base = valid(messages=[{"role": "user", "content": ""}])
    length = len(json.dumps(base, separators=(",", ":")).encode())
    out = valid(messages=[{"role": "user", "content": "w " * ((size - length) // 2)}])
    length = len(json.dumps(out, separators=(",", ":")).encode())
    out["messages"][0]["content"] += "w" * (size - length)
    assert len(json.dumps(out, separators=(",", ":")).encode()) == size
    return out


async def test_payload_just_over_the_limit_is_too_large(small_server: Server) -> None:
    client = await small_server.client(await small_server.new_key())
    ack = await client.call("execute", sized_execute(SMALL_LIMIT + 1))
    assert_error(ack, "payload_too_large")
    # checked before the shape: an oversized malformed payload is too large, not invalid
    for event in EVENTS:
        ack = await client.call(event, sized({"task_id": U}, SMALL_LIMIT + 1, "junk"))
        assert_error(ack, "payload_too_large")
    ack = await client.call("execute", "s" * (SMALL_LIMIT + 1))
    assert_error(ack, "payload_too_large")
    at_limit = await client.call("execute", sized_execute(SMALL_LIMIT))
    assert at_limit["ok"] is True, at_limit
    await client.wait_done(at_limit["task_id"])
    await assert_still_works(client)


async def test_payload_far_over_the_limit_closes_only_that_connection(small_server: Server) -> None:
    key = await small_server.new_key()
    bystander = await small_server.client(key)
    sender = await small_server.client(key)
    closed = asyncio.Event()
    sender.sio.on("disconnect", lambda *args: closed.set())
    huge = sized_execute(SMALL_LIMIT * 2 + 64 * 1024 + 4096)
    await sender.sio.emit("execute", huge)
    await asyncio.wait_for(closed.wait(), 10)
    await assert_still_works(bystander)
    await assert_still_works(await small_server.client(key))


class Utf8Json:
    """json as browsers send it: non-ASCII characters as raw UTF-8, not \\u escapes."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, ensure_ascii=False, **kwargs)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        return json.loads(text, **kwargs)


class Utf8Packet(socketio.packet.Packet):
    json = Utf8Json


async def test_non_ascii_payload_under_the_limit_is_accepted(small_server: Server) -> None:
    key = await small_server.new_key()
    sio = socketio.AsyncClient(reconnection=False, serializer=Utf8Packet)
    client = Client(sio)
    await sio.connect(
        small_server.url, auth={"token": key}, transports=["websocket"], wait_timeout=10
    )
    small_server.clients.append(sio)
    payload = valid(messages=[{"role": "user", "content": "\u00e9" * 1400}])
    assert len(Utf8Json.dumps(payload, separators=(",", ":")).encode()) < SMALL_LIMIT * 3 // 4
    ack = await client.call("execute", payload)
    assert ack["ok"] is True, ack


# -- connecting -----------------------------------------------------------------------------

REFUSED_AUTH: list[Any] = [
    None,
    {},
    {"token": None},
    {"token": ""},
    {"token": "wrong"},
    {"token": "ps_" + "0" * 40},
    {"token": 123},
    {"token": 1.5},
    {"token": True},
    {"token": ["ps_x"]},
    {"token": {"a": 1}},
    {"token": "x" * 5000},
    {"token": "\U0001f600\x00"},
    {"key": "wrong"},
]


async def refused(
    server: Server, auth: Any = None, headers: dict[str, str] | None = None
) -> list[Any]:
    """Connect and expect a refusal; returns what the client's connect_error handler got."""
    sio = socketio.AsyncClient(reconnection=False)
    seen: list[Any] = []
    sio.on("connect_error", lambda *args: seen.append(args[0] if len(args) == 1 else args))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            server.url, auth=auth, headers=headers or {}, transports=["websocket"], wait_timeout=10
        )
    assert not sio.connected
    assert seen, "connect_error was not raised on the client"
    assert_clean(seen)
    return seen


async def test_bad_tokens_are_refused(server: Server) -> None:
    key = await server.new_key()
    for auth in REFUSED_AUTH:
        await refused(server, auth)
    for header in ("Bearer wrong", "Bearer ", "Basic " + key, key, "Bearer\t" + key + "x"):
        await refused(server, headers={"Authorization": header})
    # The same key is fine, through auth and through the header.
    client = await server.client(key)
    await assert_still_works(client)
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(
        server.url,
        headers={"Authorization": f"Bearer {key}"},
        transports=["websocket"],
        wait_timeout=10,
    )
    server.clients.append(sio)
    await assert_still_works(Client(sio))


async def test_refusal_carries_code_unauthorized(server: Server) -> None:
    for auth in (None, {"token": "wrong"}, {"token": 123}):
        (data,) = await refused(server, auth)
        assert isinstance(data, dict), data
        detail = data.get("data") if isinstance(data.get("data"), dict) else data
        assert detail.get("code") == "unauthorized", data
        assert isinstance(data.get("message"), str) and "{'" not in data["message"], data
