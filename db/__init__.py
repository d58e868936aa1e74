"""Postgres access: one module per aggregate, SQL only here."""
