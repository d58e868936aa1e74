"""What a task cost, as an exact decimal: genai-prices, then `model_prices` for the rest.

None means the price is unknown; it is never guessed as 0. Reasoning tokens are a part of
`Usage.output_tokens` (every provider bills them as output), so they are priced at the
output price; `Usage.reasoning_tokens` reports them apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import asyncpg
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from genai_prices.data_snapshot import get_snapshot

from db import prices as price_rows
from db.prices import ModelPrice

if TYPE_CHECKING:
    from engine.providers.base import Provider
    from engine.usage import Usage

log = logging.getLogger(__name__)
_MILLION = Decimal(1_000_000)


@lru_cache(maxsize=1024)
def _known(provider_id: str, model: str) -> bool:
    try:
        calc_price(
            PriceUsage(input_tokens=0, output_tokens=0), model_ref=model, provider_id=provider_id
        )
    except LookupError:
        return False
    return True


def catalog_price(provider_id: str, model: str, usage: Usage) -> Decimal | None:
    """USD cost from the genai-prices catalog, or None for a model it does not know.

    Cached input tokens are priced at the catalog's cache-read price.
    """
    if not _known(provider_id, model):
        return None
    result = calc_price(
        PriceUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cached_input_tokens or None,
        ),
        model_ref=model,
        provider_id=provider_id,
    )
    return Decimal(result.total_price)


def override_price(price: ModelPrice, usage: Usage) -> Decimal:
    """USD cost of `usage` at an override's per-million prices."""
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    cached_rate = (
        price.input_per_mtok
        if price.cached_input_per_mtok is None
        else (price.cached_input_per_mtok)
    )
    total = (
        (usage.input_tokens - cached) * price.input_per_mtok
        + cached * cached_rate
        + usage.output_tokens * price.output_per_mtok
    )
    return total / _MILLION


async def task_cost(
    pool: asyncpg.Pool, provider: Provider, model: str, usage: Usage
) -> Decimal | None:
    """The cost of one task: the adapter's own price (genai-prices), else the `model_prices`
    row in effect today for a model the catalog does not know, else None.

    The table is read only for models without a catalog price, so a task on a known model
    stays at two Postgres statements (create and finalize).
    """
    known = provider.price(model, usage)
    if known is not None:
        return known
    try:
        override = await price_rows.current_price(pool, provider.name, model)
    except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        # The finalize that follows retries its own write; it must not fail on a price read.
        log.warning(
            "price of %s/%s unreadable (%s); recorded as unknown",
            provider.name,
            model,
            type(exc).__name__,
        )
        return None
    return None if override is None else override_price(override, usage)


@dataclass(frozen=True)
class CatalogModel:
    """A model the genai-prices catalog knows: its window and base per-million prices."""

    model: str
    context_window: int | None
    input_per_mtok: Decimal | None
    output_per_mtok: Decimal | None


def catalog_models(provider_id: str) -> list[CatalogModel]:
    """Every model of `provider_id` in the genai-prices catalog (empty for one it lacks)."""
    out: list[CatalogModel] = []
    for provider in get_snapshot().providers:
        if provider.id != provider_id:
            continue
        for info in provider.models:
            prices: Any = info.prices
            if isinstance(prices, list):  # prices by date or condition: the unconditional one
                plain = [p for p in prices if p.constraint is None] or prices
                prices = plain[0].prices
            window = info.context_window
            out.append(
                CatalogModel(
                    info.id,
                    int(window) if window else None,
                    _base(getattr(prices, "input_mtok", None)),
                    _base(getattr(prices, "output_mtok", None)),
                )
            )
    return out


def _base(price: Any) -> Decimal | None:
    """A flat price, or the first tier of a tiered one."""
    if price is None:
        return None
    return Decimal(getattr(price, "base", price))


def format_money(value: Decimal) -> str:
    """A decimal string with no exponent and no float rounding."""
    return format(value.normalize() if value else Decimal(0), "f")
