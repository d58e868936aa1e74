"""The tests run without the developer's provider keys, secrets or provider endpoints."""

from __future__ import annotations

import os

from pydantic import SecretStr

from engine.settings import Settings
from tests.conftest import secret_env
from tests.nodes import Cluster


def test_every_provider_key_variable_is_blanked() -> None:
    names = secret_env()
    assert {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "OPENAI_BASE_URL",
        "PROVIDER_KEYS_SECRET",
        "JWT_SECRET",
    } <= names
    assert sorted(n for n in names if n in os.environ) == []


def test_settings_and_spawned_nodes_see_no_secret() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    secrets = {
        name: getattr(settings, name)
        for name, info in Settings.model_fields.items()
        if "SecretStr" in str(info.annotation)
    }
    assert len(secrets) >= 5 and all(
        v is None or isinstance(v, SecretStr) for v in secrets.values()
    )
    assert [name for name, value in secrets.items() if value is not None] == []
    env = Cluster("postgresql://unused", "redis://unused", tmp=None).env("n1", {})  # type: ignore[arg-type]
    assert sorted(n for n in secret_env() if n in env) == []
