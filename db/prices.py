"""model_prices rows: per-million-token price overrides for custom and self-hosted models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import asyncpg

from db.groupcommit import pool_group


@dataclass(frozen=True)
class ModelPrice:
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None = None


async def current_price(
    conn: asyncpg.Connection | asyncpg.Pool, provider: str, model: str
) -> ModelPrice | None:
    """The override in effect today for `provider/model`, or None.

    Through a pool, the reads of concurrent finalizes share one statement
    (db/groupcommit.py): each is sent after its caller asked, so none sees an older price
    than its own read would have."""
    group = pool_group(
        conn,
        "price_reads",
        _read_many,
        lambda pool, wanted: _read_one(pool, *wanted),
        key=lambda _: object(),  # the same model twice: both in the one read
    )
    if group is not None:
        return await group.submit((provider, model))
    return await _read_one(conn, provider, model)


async def _read_one(
    conn: asyncpg.Connection | asyncpg.Pool, provider: str, model: str
) -> ModelPrice | None:
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


_READ_MANY = """
SELECT DISTINCT ON (p.provider, p.model) p.provider, p.model, p.input_per_mtok,
       p.output_per_mtok, p.cached_input_per_mtok
FROM model_prices p
JOIN unnest($1::text[], $2::text[]) AS w(provider, model)
  ON p.provider = w.provider AND p.model = w.model
WHERE p.effective_from <= CURRENT_DATE
ORDER BY p.provider, p.model, p.effective_from DESC
"""


async def _read_many(pool: asyncpg.Pool, wanted: list[tuple[str, str]]) -> list[ModelPrice | None]:
    distinct = sorted(set(wanted))
    rows = await pool.fetch(
        _READ_MANY, [provider for provider, _ in distinct], [model for _, model in distinct]
    )
    found = {
        (r["provider"], r["model"]): ModelPrice(
            r["input_per_mtok"], r["output_per_mtok"], r["cached_input_per_mtok"]
        )
        for r in rows
    }
    return [found.get(w) for w in wanted]


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
