"""Process environment changes that can be undone: the sandbox and the conversation point the
bot's AWS and Slack settings at loopback stand-ins, then put everything back."""

from __future__ import annotations

import os


class EnvironPatch:
    """Set and unset variables, remembering the first value each had; ``restore()`` undoes all."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, **values: str) -> None:
        for key, value in values.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def unset(self, *keys: str) -> None:
        for key in keys:
            self._saved.setdefault(key, os.environ.get(key))
            os.environ.pop(key, None)

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()
