-- Issue 3 (providers): a price for cached input tokens in the override table.
-- NULL prices cached input tokens like any other input token.
ALTER TABLE model_prices
    ADD COLUMN cached_input_per_mtok numeric(20, 10) CHECK (cached_input_per_mtok >= 0);
