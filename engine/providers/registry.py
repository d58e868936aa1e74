"""The one place that maps `provider/` prefixes to adapters."""

from __future__ import annotations

from pydantic import SecretStr

from engine.errors import InvalidRequest
from engine.providers.anthropic import AnthropicProvider
from engine.providers.base import Provider
from engine.providers.google import GoogleProvider
from engine.providers.openai import OpenAIProvider
from engine.providers.pricing import CatalogModel, catalog_models
from engine.providers.simulated import SimulatedProvider
from engine.settings import Settings


class ProviderRegistry:
    """Adapters by name, created once at start and closed at shutdown."""

    def __init__(self, providers: dict[str, Provider]) -> None:
        self._providers = providers

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        timeout = settings.provider_timeout_s
        return cls(
            {
                "simulated": SimulatedProvider(),
                "openai": OpenAIProvider(
                    _secret(settings.openai_api_key), settings.openai_base_url, timeout
                ),
                "anthropic": AnthropicProvider(
                    _secret(settings.anthropic_api_key), settings.anthropic_base_url, timeout
                ),
                "google": GoogleProvider(
                    _secret(settings.gemini_api_key), settings.google_genai_base_url, timeout
                ),
            }
        )

    def names(self) -> list[str]:
        return sorted(self._providers)

    def keyed_names(self) -> list[str]:
        """Providers that call out with a key (the ones a user may bring a key for)."""
        return sorted(n for n, p in self._providers.items() if p.needs_key)

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
        if not provider.model_pattern.fullmatch(model):
            raise InvalidRequest(
                f"model name not accepted for provider {provider_name}: {provider.model_rule}",
                details={"errors": [{"field": "model", "message": "invalid model name"}]},
            )
        return provider, model

    def listed_models(self) -> list[tuple[str, CatalogModel]]:
        """(provider, model) for every model worth listing: each adapter's extra names, then
        the genai-prices models of its provider that its name rule accepts."""
        out: list[tuple[str, CatalogModel]] = []
        for name in self.names():
            provider = self._providers[name]
            out.extend((name, CatalogModel(m, None, None, None)) for m in provider.listed_extra)
            for found in catalog_models(name):
                model = found.model
                if (
                    provider.model_pattern.fullmatch(model)
                    and not model.endswith(("-", "."))  # fine-tune prefixes, not models
                    and model.startswith(provider.listed_prefixes or ("",))
                ):
                    out.append((name, found))
        return out

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
