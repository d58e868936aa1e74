"""The HTTP routes of the prompt library, the public template gallery, organizations and
agents (docs/prompts.md, docs/protocol.md) for asyncio: `async with Library(url, token) as
lib:` then `await lib.list_prompts(owner="me")`. Each method is one request answering the
route's JSON; an error answer raises PromptrelayError with the server's code. Lists answer
one page, `{"items": [...], "next_cursor": ...}`; `each_item` walks every page."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from promptrelay_client.credentials import TokenProvider
from promptrelay_client.errors import PromptrelayError

Page = dict[str, Any]


def _id(value: object) -> str:
    return quote(str(value), safe="")


def query_string(**params: Any) -> str:
    """`?a=1&b=x` of the given values, leaving out None and ""."""
    kept = {k: v for k, v in params.items() if v is not None and v != ""}
    return f"?{urlencode(kept)}" if kept else ""


async def each_item(fetch_page: Callable[[str | None], Awaitable[Page]]) -> AsyncIterator[Any]:
    """Every item of a paged list: `fetch_page(cursor)` answers `{items, next_cursor}`."""
    cursor: str | None = None
    while True:
        page = await fetch_page(cursor)
        for item in page["items"]:
            yield item
        cursor = page.get("next_cursor")
        if not cursor:
            return


class Library:
    """One user's view of the library and agent routes. `token` is a string or a token
    provider (sync or async), asked before each request. The aiohttp session opens with
    `async with` (or `open()`) and closes with `close()`."""

    def __init__(self, url: str, token: str | TokenProvider) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._http: aiohttp.ClientSession | None = None

    async def open(self) -> Library:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Library:
        return await self.open()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _token(self) -> str:
        if isinstance(self.token, str):
            return self.token
        token = self.token()
        return str(await token if inspect.isawaitable(token) else token)

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """One call: the answer's JSON (None for 204), or its error raised."""
        http = self._http
        if http is None:
            raise PromptrelayError("client_closed", "open the Library first (async with)")
        headers = {"Authorization": f"Bearer {await self._token()}"}
        try:
            async with http.request(method, self.url + path, json=body, headers=headers) as resp:
                answer = None if resp.status == 204 else await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, ValueError) as exc:
            raise PromptrelayError("unavailable", f"cannot reach the server: {exc}") from None
        if status >= 400:
            raise PromptrelayError.from_body(
                answer.get("error") if isinstance(answer, dict) else None
            )
        return answer

    # -- prompts ---------------------------------------------------------------------------

    async def list_prompts(
        self,
        *,
        owner: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page:
        """`GET /v1/prompts`: `owner` "me", "org:<id>" or "project:<id>"; newest first."""
        query = query_string(owner=owner, status=status, tag=tag, q=q, limit=limit, cursor=cursor)
        page: Page = await self.request("GET", f"/v1/prompts{query}")
        return page

    async def create_prompt(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt: dict[str, Any] = await self.request("POST", "/v1/prompts", body)
        return prompt

    async def get_prompt(self, prompt_id: str, version: int | None = None) -> dict[str, Any]:
        """At its latest version, or at `version`."""
        at = "" if version is None else f"/versions/{version}"
        prompt: dict[str, Any] = await self.request("GET", f"/v1/prompts/{_id(prompt_id)}{at}")
        return prompt

    async def update_prompt(self, prompt_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Writes a new version."""
        prompt: dict[str, Any] = await self.request("PATCH", f"/v1/prompts/{_id(prompt_id)}", body)
        return prompt

    async def publish_prompt(self, prompt_id: str, version: int) -> dict[str, Any]:
        """Make `version` the one `execute` runs unpinned."""
        path = f"/v1/prompts/{_id(prompt_id)}/versions/{version}/publish"
        prompt: dict[str, Any] = await self.request("POST", path)
        return prompt

    async def delete_prompt(self, prompt_id: str) -> None:
        await self.request("DELETE", f"/v1/prompts/{_id(prompt_id)}")

    # -- the public template gallery -------------------------------------------------------

    async def list_templates(
        self,
        *,
        q: str | None = None,
        tag: str | None = None,
        category: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page:
        """`GET /v1/templates`: `q` searches name and description; `tag`, `category` filter."""
        query = query_string(q=q, tag=tag, category=category, limit=limit, cursor=cursor)
        page: Page = await self.request("GET", f"/v1/templates{query}")
        return page

    async def get_template(self, template_id: str) -> dict[str, Any]:
        template: dict[str, Any] = await self.request("GET", f"/v1/templates/{_id(template_id)}")
        return template

    async def fork_template(
        self,
        template_id: str,
        *,
        name: str | None = None,
        org_id: str | None = None,
        project_id: str | None = None,
    ) -> dict[str, Any]:
        """A new draft prompt from the template's current version."""
        body = {
            k: v for k, v in (("name", name), ("org_id", org_id), ("project_id", project_id)) if v
        }
        path = f"/v1/templates/{_id(template_id)}/fork"
        prompt: dict[str, Any] = await self.request("POST", path, body)
        return prompt

    async def publish_template(
        self, prompt_id: str, version: int, *, category: str | None = None, is_default: bool = False
    ) -> dict[str, Any]:
        """Publish (or re-point) a prompt's version as a public template."""
        body: dict[str, Any] = {"is_default": is_default}
        if category is not None:
            body["category"] = category
        path = f"/v1/prompts/{_id(prompt_id)}/versions/{version}/template"
        stats: dict[str, Any] = await self.request("POST", path, body)
        return stats

    async def unpublish_template(self, prompt_id: str) -> None:
        await self.request("DELETE", f"/v1/prompts/{_id(prompt_id)}/template")

    async def template_stats(self, prompt_id: str) -> dict[str, Any]:
        """The prompt's template with its fork and run counts (admins of the prompt only)."""
        stats: dict[str, Any] = await self.request("GET", f"/v1/prompts/{_id(prompt_id)}/template")
        return stats

    # -- organizations and agents ----------------------------------------------------------

    async def create_org(self, name: str) -> dict[str, Any]:
        org: dict[str, Any] = await self.request("POST", "/v1/orgs", {"name": name})
        return org

    async def create_agent_template(self, body: dict[str, Any]) -> dict[str, Any]:
        template: dict[str, Any] = await self.request("POST", "/v1/agent-templates", body)
        return template

    async def list_agent_templates(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        page: Page = await self.request(
            "GET", f"/v1/agent-templates{query_string(limit=limit, cursor=cursor)}"
        )
        return page

    async def create_agent(self, body: dict[str, Any]) -> dict[str, Any]:
        agent: dict[str, Any] = await self.request("POST", "/v1/agents", body)
        return agent

    async def list_agents(self, *, limit: int | None = None, cursor: str | None = None) -> Page:
        page: Page = await self.request(
            "GET", f"/v1/agents{query_string(limit=limit, cursor=cursor)}"
        )
        return page

    async def get_agent(self, agent_id: str) -> dict[str, Any]:
        agent: dict[str, Any] = await self.request("GET", f"/v1/agents/{_id(agent_id)}")
        return agent

    async def update_agent(self, agent_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Fields sent replace the agent's (`model: None` clears it)."""
        agent: dict[str, Any] = await self.request("PATCH", f"/v1/agents/{_id(agent_id)}", body)
        return agent

    async def delete_agent(self, agent_id: str) -> None:
        await self.request("DELETE", f"/v1/agents/{_id(agent_id)}")

    async def run_agent(
        self, agent_id: str, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Start the agent's task; answers at once (`task_id`, `run_id`, `status`).
        `Client.subscribe(task_id)` streams it."""
        path = f"/v1/agents/{_id(agent_id)}/run"
        started: dict[str, Any] = await self.request("POST", path, request or {})
        return started

    async def list_agent_executions(
        self, agent_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        path = f"/v1/agents/{_id(agent_id)}/executions{query_string(limit=limit, cursor=cursor)}"
        page: Page = await self.request("GET", path)
        return page
