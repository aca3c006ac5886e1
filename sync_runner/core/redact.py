"""Secrets out of every output.

Every value that came from `env_var(...)` in dbt_studio.yml is a secret. The config loader registers each one with
the process-wide `REDACT`, and everything that prints, logs, stores or serves text passes it through `REDACT` first,
so a secret echoed back by an API, an exception or a URL never reaches a user.
"""

from __future__ import annotations

from typing import Any


class Redactor:
    """Replaces every known secret in text with '****'."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()

    def add(self, value: str) -> None:
        if value and len(value) >= 3:
            self.secrets.add(value)

    def __call__(self, text: Any) -> str:
        out = str(text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            out = out.replace(secret, "****")
        return out


REDACT = Redactor()
