"""The isolation matrix: user B against user A's tasks, runs, prompts and keys, through
every Socket.IO event and every HTTP route. Each answer is exactly the answer for an id that
does not exist (`not_found`, nothing confirmed), A's work is untouched, and B's sockets get
no event of A's.

To cover a new route or event, add a row to SOCKET_CASES or HTTP_CASES; the coverage test
fails for any route of the app that has no row (or is not listed in NO_FOREIGN_IDS).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from db.pool import connect
from tests.conftest import Client, Server

SLOW = {"max_tokens": 300, "tokens_per_second": 100}


@dataclass(frozen=True)
class Objects:
    """Ids of A's objects (or, for the control, ids that do not exist)."""

    task: str
    run: str
    prompt: str
    key: str
    org: str
    project: str
    agent: str
    agent_template: str

    def fill(self, template: Any) -> Any:
        text = json.dumps(template)
        names = ("task", "run", "prompt", "key", "org", "project", "agent_template", "agent")
        for name in names:
            text = text.replace("{" + name + "}", getattr(self, name))
        return json.loads(text)


def _execute(**extra: Any) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "hi"}],
        "model": "simulated/iso",
        "settings": {"max_tokens": 2, "tokens_per_second": 0},
        **extra,
    }


# (event, payload template)
SOCKET_CASES: list[tuple[str, Any]] = [
    ("subscribe", {"task_id": "{task}", "after_seq": 0}),
    ("unsubscribe", {"task_id": "{task}"}),
    ("cancel", {"task_id": "{task}"}),
    ("execute", _execute(run_id="{run}")),
    ("execute", {"prompt_id": "{prompt}", "variables": {"topic": "x"}}),
    ("execute", {"agent_id": "{agent}"}),
]

# (method, path template, JSON body template or None)
HTTP_CASES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/tasks/{task}", None),
    ("GET", "/v1/tasks/{task}/events", None),
    ("GET", "/v1/tasks/{task}/stream?after_seq=0", None),
    ("POST", "/v1/tasks/{task}/cancel", None),
    ("POST", "/v1/tasks/{task}/tool_results", {"call_id": "call_1", "output": "x"}),
    ("GET", "/v1/runs/{run}", None),
    ("PATCH", "/v1/runs/{run}", {"title": "B was here", "archived": True}),
    ("DELETE", "/v1/runs/{run}", None),
    ("GET", "/v1/prompts/{prompt}/stats", None),
    ("GET", "/v1/prompts/{prompt}/stats?from=2000-01-01", None),
    ("DELETE", "/v1/keys/{key}", None),
    ("POST", "/v1/executions", _execute(run_id="{run}")),
    ("POST", "/v1/executions", {"prompt_id": "{prompt}", "variables": {"topic": "x"}}),
    # the prompt library
    ("GET", "/v1/prompts/{prompt}", None),
    ("PATCH", "/v1/prompts/{prompt}", {"name": "taken", "change_log": "B was here"}),
    ("GET", "/v1/prompts/{prompt}/versions", None),
    ("GET", "/v1/prompts/{prompt}/versions/1", None),
    ("POST", "/v1/prompts/{prompt}/versions/1/publish", None),
    ("POST", "/v1/prompts/{prompt}/archive", None),
    ("DELETE", "/v1/prompts/{prompt}", None),
    # public templates: A's prompt is not one (and its template is A's to change)
    ("POST", "/v1/prompts/{prompt}/versions/1/template", {"category": "b"}),
    ("GET", "/v1/prompts/{prompt}/template", None),
    ("DELETE", "/v1/prompts/{prompt}/template", None),
    ("GET", "/v1/templates/{prompt}", None),
    ("POST", "/v1/templates/{prompt}/fork", {}),
    # agents and agent templates
    ("GET", "/v1/agents/{agent}", None),
    ("PATCH", "/v1/agents/{agent}", {"name": "B was here"}),
    ("DELETE", "/v1/agents/{agent}", None),
    ("GET", "/v1/agents/{agent}/executions", None),
    ("POST", "/v1/agents/{agent}/run", {}),
    ("GET", "/v1/agent-templates/{agent_template}", None),
    ("POST", "/v1/agents", {"template_id": "{agent_template}", "name": "B's"}),
    # organizations, projects and their variables (B is not a member)
    ("POST", "/v1/orgs/{org}/members", {"user_id": "{key}", "role": "admin"}),
    ("GET", "/v1/orgs/{org}/projects", None),
    ("GET", "/v1/orgs/{org}/members", None),
    ("GET", "/v1/orgs/{org}/invitations", None),
    ("POST", "/v1/orgs/{org}/projects", {"name": "B's project"}),
    ("POST", "/v1/projects/{project}/members", {"user_id": "{key}", "role": "admin"}),
    ("DELETE", "/v1/orgs/{org}/members/{key}", None),
    ("DELETE", "/v1/projects/{project}/members/{key}", None),
    ("POST", "/v1/invitations/{key}/accept", None),
    ("GET", "/v1/orgs/{org}/variables", None),
    ("PUT", "/v1/orgs/{org}/variables/color", {"value": "red"}),
    ("DELETE", "/v1/orgs/{org}/variables/color", None),
    ("GET", "/v1/projects/{project}/variables", None),
    ("PUT", "/v1/projects/{project}/variables/color", {"value": "red"}),
    ("DELETE", "/v1/projects/{project}/variables/color", None),
]

# Routes that take no id of another user's object; they are checked to show B only B's own.
NO_FOREIGN_IDS = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/me"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/usage"),
    ("POST", "/v1/executions"),
    ("GET", "/v1/builtins"),
    ("GET", "/v1/templates"),  # the public gallery, every user's alike
    ("GET", "/v1/agents"),  # the caller's own agents and agent templates
    ("POST", "/v1/agent-templates"),
    ("GET", "/v1/agent-templates"),
    # the caller's own conversations and executions (filters by A's ids find nothing)
    ("GET", "/v1/runs"),
    ("GET", "/v1/tasks"),
    # public, holding no user data: the playground, its client and the protocol schema
    ("GET", "/"),
    ("GET", "/playground/{name}"),
    ("GET", "/playground/vendor/socket.io.min.js"),
    ("GET", "/client/{name}"),  # the client package's modules, which the page imports
    ("GET", "/v1/protocol.json"),
    # the OpenAI-compatible endpoint: the caller's own new task, and the model list
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
    ("GET", "/metrics"),  # counts and timings only, no user data
    # the caller's own prompts, orgs and variables
    ("POST", "/v1/prompts"),
    ("GET", "/v1/prompts"),
    ("POST", "/v1/orgs"),
    ("GET", "/v1/orgs"),
    ("GET", "/v1/me/variables"),
    ("GET", "/v1/me/invitations"),
    ("PUT", "/v1/me/variables/{name}"),
    ("DELETE", "/v1/me/variables/{name}"),
    # the caller's own provider keys
    ("PUT", "/v1/me/provider-keys/{provider}"),
    ("GET", "/v1/me/provider-keys"),
    ("DELETE", "/v1/me/provider-keys/{provider}"),
}
OWN_VIEWS = [
    "/v1/me",
    "/v1/keys",
    "/v1/usage",
    "/v1/prompts",
    "/v1/me/variables",
    "/v1/me/invitations",
    "/v1/orgs",
    "/v1/runs?archived=all",
    "/v1/runs?q=hi",
    "/v1/tasks",
]
# List filters naming A's objects: B's answer is the same empty page as for unknown ids.
FILTERED_VIEWS = ["/v1/tasks?run_id={run}", "/v1/tasks?prompt_id={prompt}"]


async def make_prompt(server: Server, email: str) -> str:
    conn = await connect(server.settings.database_url or "")
    try:
        user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
        prompt_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO prompts (id, user_id, name, status, published_version)"
            " VALUES ($1, $2, 'mine', 'published', 1)",
            prompt_id,
            user_id,
        )
        await conn.execute(
            "INSERT INTO prompt_versions (prompt_id, version, messages, model, settings)"
            " VALUES ($1, 1, $2, 'simulated/p', $3)",
            prompt_id,
            [{"role": "user", "content": "About {{topic}}"}],
            {"max_tokens": 2, "tokens_per_second": 0},
        )
    finally:
        await conn.close()
    return str(prompt_id)


async def http_answer(
    http: aiohttp.ClientSession, server: Server, key: str, method: str, path: str, body: Any
) -> tuple[int, Any]:
    async with http.request(
        method, server.url + path, json=body, headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        data = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, data


async def test_user_b_gets_not_found_for_everything_of_user_a(server: Server) -> None:
    key_a, key_b = await server.new_key("a@iso"), await server.new_key("b@iso")
    a, b = await server.client(key_a), await server.client(key_b)
    running = await a.call("execute", _execute(settings=SLOW))
    assert running["ok"], running
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        _, a_key = await http_answer(http, server, key_a, "POST", "/v1/keys", {"name": "a2"})
        _, org = await http_answer(http, server, key_a, "POST", "/v1/orgs", {"name": "A org"})
        _, project = await http_answer(
            http, server, key_a, "POST", f"/v1/orgs/{org['id']}/projects", {"name": "A proj"}
        )
        for scope in (f"/v1/orgs/{org['id']}", f"/v1/projects/{project['id']}"):
            status, _ = await http_answer(
                http, server, key_a, "PUT", scope + "/variables/color", {"value": "blue"}
            )
            assert status == 200, scope
        agent_template = {"name": "A's", "system_prompt": "You help A."}
        _, template = await http_answer(
            http, server, key_a, "POST", "/v1/agent-templates", agent_template
        )
        agent_body = {"template_id": template["id"], "name": "A's agent"}
        _, agent = await http_answer(http, server, key_a, "POST", "/v1/agents", agent_body)
        theirs = Objects(
            task=running["task_id"],
            run=running["run_id"],
            prompt=await make_prompt(server, "a@iso"),
            key=a_key["id"],
            org=org["id"],
            project=project["id"],
            agent=agent["id"],
            agent_template=template["id"],
        )
        nobody = Objects(
            task=str(uuid.uuid4()),
            run=str(uuid.uuid4()),
            prompt=str(uuid.uuid4()),
            key=str(uuid.uuid4()),
            org=str(uuid.uuid4()),
            project=str(uuid.uuid4()),
            agent=str(uuid.uuid4()),
            agent_template=str(uuid.uuid4()),
        )
        await _socket_matrix(b, theirs, nobody)
        await _http_matrix(http, server, key_b, theirs, nobody)
        for path in FILTERED_VIEWS:
            answer = await http_answer(http, server, key_b, "GET", theirs.fill(path), None)
            control = await http_answer(http, server, key_b, "GET", nobody.fill(path), None)
            assert answer == control == (200, {"items": [], "next_cursor": None}), path
        for path in OWN_VIEWS:
            status, body = await http_answer(http, server, key_b, "GET", path, None)
            assert status == 200, (path, body)
            for secret in (
                theirs.task,
                theirs.run,
                theirs.key,
                theirs.prompt,
                theirs.org,
                a_key["prefix"],
                "a@iso",
            ):
                assert secret not in json.dumps(body), (path, secret)
        # A's key survived B's DELETE, and A's task was not cancelled by B
        assert (await http_answer(http, server, a_key["key"], "GET", "/v1/me", None))[0] == 200
        # A's prompt and org variable survived B's PATCH, DELETE and PUT
        status, prompt = await http_answer(
            http, server, key_a, "GET", f"/v1/prompts/{theirs.prompt}", None
        )
        assert status == 200 and prompt["name"] == "mine", prompt
        _, variables = await http_answer(
            http, server, key_a, "GET", f"/v1/orgs/{theirs.org}/variables", None
        )
        assert [v["value"] for v in variables["items"]] == ["blue"], variables
        # A's run survived B's PATCH and DELETE, with its title and not archived
        status, runs = await http_answer(http, server, key_a, "GET", "/v1/runs", None)
        assert [(r["id"], r["title"]) for r in runs["items"]] == [(theirs.run, "hi")], runs
    done = await a.wait_done(running["task_id"], timeout=30)
    assert done["status"] == "completed"
    # B's own task, started after A's ended, is the marker: events of A's task sent to B's
    # socket would have reached it before B's own task_done.
    mine = await b.call("execute", _execute())
    await b.wait_done(mine["task_id"])
    assert set(b.done) == {mine["task_id"]}, "B received events of A's task"
    assert set(b.chunks) <= {mine["task_id"]}, "B received events of A's task"


async def _socket_matrix(b: Client, theirs: Objects, nobody: Objects) -> None:
    for event, template in SOCKET_CASES:
        answer = await b.call(event, theirs.fill(template))
        control = await b.call(event, nobody.fill(template))
        assert answer == control, (event, answer, control)
        if event != "unsubscribe":  # unsubscribing from anything is a harmless ok
            assert answer["ok"] is False and answer["error"]["code"] == "not_found", answer


async def _http_matrix(
    http: aiohttp.ClientSession, server: Server, key_b: str, theirs: Objects, nobody: Objects
) -> None:
    for method, path, body in HTTP_CASES:
        status, answer = await http_answer(
            http, server, key_b, method, theirs.fill(path), theirs.fill(body)
        )
        c_status, control = await http_answer(
            http, server, key_b, method, nobody.fill(path), nobody.fill(body)
        )
        assert (status, answer) == (c_status, control), (method, path, answer, control)
        assert status == 404 and answer["error"]["code"] == "not_found", (method, path, answer)


def test_every_route_is_in_the_matrix(server: Server) -> None:
    covered = {(m, p.split("?")[0]) for m, p, _ in HTTP_CASES} | NO_FOREIGN_IDS
    canonical = {
        "{task}": "{id}",
        "{run}": "{id}",
        "{key}": "{id}",
        "{prompt}": "{id}",
        "{org}": "{id}",
        "{project}": "{id}",
        "{agent}": "{id}",
        "{agent_template}": "{id}",
    }
    normalized = set()
    for method, path in covered:
        for old, new in canonical.items():
            path = path.replace(old, new)
        path = re.sub(r"/versions/\d+", "/versions/{n}", path)
        path = re.sub(r"/members/\{id\}$", "/members/{user_id}", path)
        path = re.sub(r"/variables/[^/{]+$", "/variables/{name}", path)
        path = re.sub(r"^/v1/(orgs|projects)/\{id\}/variables", "/v1/{kind}/{id}/variables", path)
        normalized.add((method, path))
    missing = []
    for route in server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("formatter") or info.get("path") or ""
        if route.method in ("HEAD", "OPTIONS", "*") or path.startswith("/socket.io"):
            continue
        if (route.method, path) not in normalized:
            missing.append((route.method, path))
    assert not missing, f"routes without a row in the isolation matrix: {missing}"
