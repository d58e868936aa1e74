"""model_prices rows: per-million-token price overrides for custom and self-hosted models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import asyncpg


@dataclass(frozen=True)
class ModelPrice:
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None = None


async def current_price(
    conn: asyncpg.Connection | asyncpg.Pool, provider: str, model: str
) -> ModelPrice | None:
    """The override in effect today for `provider/model`, or None."""
    row = await conn.fetchrow(
        "SELECT input_per_mtok, output_per_mtok, cached_input_per_mtok FROM model_prices"
        " WHERE provider = $1 AND model = $2 AND effective_from <= CURRENT_DATE"
        " ORDER BY effective_from DESC LIMIT 1",
        provider,
        model,
    )
    if row is None:
        return None
    return ModelPrice(row["input_per_mtok"], row["output_per_mtok"], row["cached_input_per_mtok"])


async def set_price(
    conn: asyncpg.Connection | asyncpg.Pool,
    provider: str,
    model: str,
    price: ModelPrice,
    effective_from: date | None = None,
) -> None:
    """Add (or replace) the override of `provider/model` from `effective_from` (today)."""
    await conn.execute(
        "INSERT INTO model_prices (provider, model, input_per_mtok, output_per_mtok,"
        " cached_input_per_mtok, effective_from) VALUES ($1, $2, $3, $4, $5,"
        " COALESCE($6, CURRENT_DATE))"
        " ON CONFLICT (provider, model, effective_from) DO UPDATE SET"
        " input_per_mtok = EXCLUDED.input_per_mtok, output_per_mtok = EXCLUDED.output_per_mtok,"
        " cached_input_per_mtok = EXCLUDED.cached_input_per_mtok",
        provider,
        model,
        price.input_per_mtok,
        price.output_per_mtok,
        price.cached_input_per_mtok,
        effective_from,
    )
