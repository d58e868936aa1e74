"""The one place that maps `provider/` prefixes to adapters."""

from __future__ import annotations

from engine.errors import InvalidRequest
from engine.providers.base import Provider
from engine.providers.openai import OpenAIProvider
from engine.providers.simulated import SimulatedProvider
from engine.settings import Settings


class ProviderRegistry:
    """Adapters by name, created once at start and closed at shutdown."""

    def __init__(self, providers: dict[str, Provider]) -> None:
        self._providers = providers

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return cls({
            "simulated": SimulatedProvider(),
            "openai": OpenAIProvider(key, settings.openai_base_url, settings.provider_timeout_s),
        })

    def names(self) -> list[str]:
        return sorted(self._providers)

    def resolve(self, model_ref: str) -> tuple[Provider, str]:
        """`provider/model` to (adapter, model name); unknown providers are the caller's fault."""
        provider_name, _, model = model_ref.partition("/")
        provider = self._providers.get(provider_name)
        if provider is None or not model:
            raise InvalidRequest(
                "unknown provider: model must be provider/model with provider one of "
                + ", ".join(self.names()),
                details={"errors": [{"field": "model", "message": "unknown provider"}]},
            )
        return provider, model

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
