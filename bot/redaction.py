"""Redaction of secrets from text and structured data.

(Interface placeholder: the full redactor is issue 5. ``Redactor.redact_text`` and
``Redactor.redact`` are the API everything else uses.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_HOKUSAI_KEY = re.compile(r"\bhk_(?:live|test)_[A-Za-z0-9]{32}\b")


class Redactor:
    """Replaces secrets with markers that say what they were: ``[redacted:hokusai-api-key]``."""

    def __init__(self, known_secrets: Iterable[str] = ()) -> None:
        self._known: set[str] = set()
        self.add_known(*known_secrets)

    def add_known(self, *values: str) -> None:
        """Remember exact secret values this process holds (its tokens, the probe key)."""
        for value in values:
            if value and len(value) >= 6:
                self._known.add(value)

    def redact_text(self, text: str) -> str:
        for value in sorted(self._known, key=len, reverse=True):
            text = text.replace(value, "[redacted:known-secret]")
        return _HOKUSAI_KEY.sub("[redacted:hokusai-api-key]", text)

    def redact(self, value: Any) -> Any:
        """Redact strings anywhere inside dicts, lists and tuples; other values pass."""
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.redact(v) for v in value)
        return value


_default = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor; start-up adds the process's own secrets to it."""
    return _default
