"""The client's credentials: a token, or a token provider (a function, sync or async)
asked at every connect; the token the server last refused, so that a provider giving it
again is a failure rather than a reconnect loop."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from promptrelay_client.errors import PromptrelayError

# A function (sync or async) that returns a token: called at every connect and reconnect.
TokenProvider = Callable[[], str | Awaitable[str]]


class Credentials:
    """What the client sends as `auth.token`; failures go to `on_failure` (the client
    settles everything with them)."""

    def __init__(
        self, token: str | TokenProvider, on_failure: Callable[[PromptrelayError], None]
    ) -> None:
        self.token = token
        self.sent: str | None = None  # the token of the last connect
        self.refused: str | None = None  # the last token the server refused or ended
        self._on_failure = on_failure

    @property
    def renewable(self) -> bool:
        """True for a provider: a fresh token may come."""
        return callable(self.token)

    def refuse(self) -> None:
        """The server refused (or ended the session of) the token last sent."""
        self.refused = self.sent

    async def next_token(self) -> str:
        """The token for a connect. A provider that fails or gives the refused token is
        reported; the last token is sent then (the server refuses it)."""
        token = self.sent or ""
        if callable(self.token):
            try:
                value = self.token()
                token = str(await value if inspect.isawaitable(value) else value)
            except Exception as exc:  # the application's code: any failure means no token
                self._on_failure(
                    PromptrelayError("unauthorized", f"the token provider failed: {exc!r}")
                )
        else:
            token = self.token
        if token == self.refused:
            self._on_failure(
                PromptrelayError("unauthorized", "the token provider gave the refused token")
            )
        self.sent = token
        return token
