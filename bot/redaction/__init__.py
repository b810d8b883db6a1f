"""Redaction of secrets from text and structured data: the engine behind the choke point.

``engine`` holds the rules and the matcher; this package re-exports what the rest of the bot uses.
"""

from bot.redaction.engine import (
    MARKER,
    RedactingFilter,
    Redactor,
    default_redactor,
    is_placeholder,
    secret_key_kind,
)

__all__ = [
    "MARKER",
    "RedactingFilter",
    "Redactor",
    "default_redactor",
    "is_placeholder",
    "secret_key_kind",
]
