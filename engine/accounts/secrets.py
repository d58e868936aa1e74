"""Encryption at rest of users' provider keys: Fernet (AES-128-CBC + HMAC-SHA256) from
`cryptography`, under server keys from `PROVIDER_KEYS_SECRET` (comma-separated, newest first).

New writes use the newest key; every listed key still decrypts, so a rotation is: put a new
key in front, restart, run `promptrelay provider-keys rotate`, then drop the old key.
Each ciphertext is bound to its user and provider: a ciphertext copied onto another user's
row does not decrypt there.
"""

from __future__ import annotations

import json
from uuid import UUID

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr


class KeyUnreadable(Exception):
    """A stored ciphertext that no server key opens, or that belongs to another user/provider."""


def new_secret() -> str:
    """A fresh server key for PROVIDER_KEYS_SECRET."""
    return Fernet.generate_key().decode()


class KeyRing:
    """The server keys; seals and opens users' provider keys."""

    def __init__(self, secrets: list[str]) -> None:
        if not secrets:
            raise ValueError("PROVIDER_KEYS_SECRET holds no key")
        try:
            self._fernet = MultiFernet([Fernet(s.encode()) for s in secrets])
        except ValueError:
            raise ValueError(
                "PROVIDER_KEYS_SECRET must be comma-separated Fernet keys (32 url-safe base64"
                " bytes each; make one with `promptrelay provider-keys new-secret`)"
            ) from None

    @classmethod
    def from_setting(cls, value: SecretStr | None) -> KeyRing | None:
        """The ring of the setting, or None when the server keeps no provider keys."""
        if value is None or not value.get_secret_value().strip():
            return None
        return cls([s.strip() for s in value.get_secret_value().split(",") if s.strip()])

    def seal(self, user_id: UUID, provider: str, key: str) -> str:
        """The ciphertext of `key`, bound to this user and provider, under the newest key."""
        plain = json.dumps({"u": str(user_id), "p": provider, "k": key})
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, user_id: UUID, provider: str, token: str) -> str:
        """The key sealed in `token`; KeyUnreadable when tampered, foreign or unknown."""
        try:
            plain = json.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError, UnicodeError):
            raise KeyUnreadable("the stored key cannot be decrypted") from None
        if (
            not isinstance(plain, dict)
            or plain.get("u") != str(user_id)
            or (plain.get("p") != provider)
            or not isinstance(plain.get("k"), str)
        ):
            raise KeyUnreadable("the stored key belongs to another user or provider")
        return str(plain["k"])

    def rotate(self, token: str) -> str:
        """`token` re-encrypted under the newest key (KeyUnreadable if no key opens it)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except (InvalidToken, ValueError, UnicodeError):
            raise KeyUnreadable("the stored key cannot be decrypted") from None
