"""Google Gemini: the Gemini API's documented streaming endpoint
(`models/{model}:streamGenerateContent?alt=sse`), requested over aiohttp and decoded by
`engine.providers.sse`.

The `google-genai` SDK gives no raw stream (its streaming call builds a typed response per
event and refuses `should_return_http_response`), and that per-event work cost about five
times the CPU of this path (see docs/benchmarks.md). The request is the one the SDK makes
with an API key: the same URL, `x-goog-api-key`, JSON body and `v1` API version; retries are
ours (engine.tasks.retries), as they were with the SDK set to one attempt.
"""

from __future__ import annotations

import re
import sys
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from engine.providers import faults
from engine.providers.base import Provider, ProviderRequest, ProviderStream
from engine.providers.google_events import GoogleEvents
from engine.providers.parts import text_of
from engine.providers.pricing import catalog_price
from engine.providers.rawstream import RawSSEStream
from engine.providers.reasoning import budget_of, reasoning_setting, refuse
from engine.providers.toolwire import gemini_contents, gemini_tools
from engine.usage import Usage

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"
API_VERSION = "v1"  # what google-genai uses with an API key
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
# Our settings, in the names of the API's generationConfig.
_GENERATION = {
    "temperature": "temperature",
    "top_p": "topP",
    "max_tokens": "maxOutputTokens",
    "stop": "stopSequences",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}


MAX_THINKING_BUDGET = 32768  # the most `thinkingBudget` any Gemini model takes
# Model families that do not think: `settings.reasoning` is refused for them.
NON_THINKING = ("gemini-1.", "gemma-")


def _user_agent() -> str:
    return f"promptrelay gl-python/{sys.version.split()[0]}"


def build_contents(
    messages: list[dict[str, Any]],
) -> tuple[str | None, list[dict[str, Any]]]:
    """Gemini roles: `user` and `model` contents, system prompts as the system instruction;
    tool turns as `functionCall` / `functionResponse` parts."""
    system = [text_of(m["content"]) for m in messages if m["role"] == "system"]
    contents = gemini_contents([m for m in messages if m["role"] != "system"])
    return ("\n\n".join(system) if system else None), contents


def build_body(request: ProviderRequest) -> dict[str, Any]:
    """The JSON body of one `streamGenerateContent` call."""
    system, contents = build_contents(request.messages)
    body: dict[str, Any] = {"contents": contents}
    if system is not None:
        body["systemInstruction"] = {"role": "user", "parts": [{"text": system}]}
    settings = request.settings
    config = {
        name: settings[key] for key, name in _GENERATION.items() if settings.get(key) is not None
    }
    config.update(_json_config(settings.get("response_format")))
    reasoning = reasoning_setting(settings)
    if reasoning is not None:
        thinking: dict[str, Any] = {"includeThoughts": True}
        if reasoning.get("budget_tokens") is not None or reasoning.get("effort"):
            thinking["thinkingBudget"] = budget_of(reasoning)
        config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    gemini_tools(settings, body)
    return body


def _json_config(fmt: Any) -> dict[str, Any]:
    """`response_format` as `generationConfig`: the JSON MIME type, and the schema as a JSON
    Schema (`responseJsonSchema`)."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        schema = fmt["json_schema"]["schema"]
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    return {}


def stream_url(models_url: str, model: str) -> URL:
    """The streaming URL of `model`, its name escaped as one path segment and the URL taken
    as already encoded, so nothing normalises `..` away. Names are checked against
    `GoogleProvider.model_pattern` before; this is the second wall."""
    if not GoogleProvider.model_pattern.fullmatch(model):
        raise ValueError("model name is not a safe path segment")
    segment = quote(model, safe="")
    return URL(f"{models_url}{segment}:streamGenerateContent?alt=sse", encoded=True)


class GoogleProvider(Provider):
    name = "google"
    # The model is a path segment of the URL: no `/`, `:`, `?`, `#` or `%`, so a name can
    # neither climb to another path nor call another method with the operator's key.
    model_pattern = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~=-]{0,127}")
    model_rule = "up to 128 of letters, digits and . _ ~ = - (one URL path segment)"
    listed_prefixes = ("gemini", "gemma")  # the catalog's Google list has Vertex's Claude too

    def check_reasoning(
        self, reasoning: dict[str, Any], settings: dict[str, Any], model: str
    ) -> None:
        """`thinkingConfig`: a model that thinks, a budget of at most MAX_THINKING_BUDGET."""
        thinks = not model.startswith(NON_THINKING) and (
            not model.startswith("gemini-2.0") or "thinking" in model
        )
        if not thinks:
            raise refuse(self.name, "reasoning", f"the model {model} does not think")
        budget = reasoning.get("budget_tokens")
        if budget is not None and budget > MAX_THINKING_BUDGET:
            raise refuse(
                self.name, "reasoning.budget_tokens", f"at most {MAX_THINKING_BUDGET} tokens"
            )

    def __init__(self, api_key: str | None, base_url: str | None, timeout_s: float) -> None:
        self._api_key = api_key or "unset"
        root = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._models_url = f"{root}/{API_VERSION}/models/"
        # A stall is bounded per read, not over the whole (possibly long) stream.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._headers = {"Content-Type": "application/json", "user-agent": _user_agent()}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=self._timeout
            )
        return self._session

    async def open(self, request: ProviderRequest) -> ProviderStream:
        url = stream_url(self._models_url, request.model)
        headers = {**self._headers, "x-goog-api-key": request.api_key or self._api_key}
        try:
            response = await self._client().post(
                url, data=orjson.dumps(build_body(request)), headers=headers
            )
        except aiohttp.ClientConnectorError as exc:
            raise faults.unreachable("google") from exc
        except _TRANSPORT_ERRORS as exc:
            raise faults.cut("google") from exc
        if response.status != 200:
            try:
                await response.read()  # the error body, so the connection can be reused
            except _TRANSPORT_ERRORS:
                pass
            finally:
                response.release()
            raise faults.from_status("google", response.status, response.headers)
        body = response.content.iter_any()
        reader = GoogleEvents(response.headers)

        async def close() -> None:
            response.close()

        return RawSSEStream("google", body, reader, close)

    def price(self, model: str, usage: Usage) -> Decimal | None:
        return catalog_price("google", model, usage)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
