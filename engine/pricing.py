"""Prices from the `genai-prices` package, as exact decimals."""

from __future__ import annotations

import logging
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

log = logging.getLogger(__name__)


@lru_cache(maxsize=1024)
def _known(provider_id: str, model: str) -> bool:
    try:
        calc_price(PriceUsage(input_tokens=0, output_tokens=0), model_ref=model,
                   provider_id=provider_id)
    except LookupError:
        return False
    return True


def catalog_price(provider_id: str, model: str, input_tokens: int,
                  output_tokens: int) -> Decimal | None:
    """USD cost from the genai-prices catalog, or None for a model it does not know."""
    if not _known(provider_id, model):
        return None
    result = calc_price(PriceUsage(input_tokens=input_tokens, output_tokens=output_tokens),
                        model_ref=model, provider_id=provider_id)
    return Decimal(result.total_price)
