"""Redaction of secrets from text and structured data: the engine behind the choke point.

``rules`` holds the table of secret formats and key names, ``placeholders`` the short list of
values that only stand in for a secret, ``engine`` the matcher (prefilter, escapes, base64,
line joins, structured data). This package re-exports what the rest of the bot uses.
"""

from bot.redaction.engine import RedactingFilter, Redactor, default_redactor
from bot.redaction.placeholders import is_placeholder, placeholder_kind, shown_placeholder
from bot.redaction.rules import MARKER, secret_key_kind

__all__ = [
    "MARKER",
    "RedactingFilter",
    "Redactor",
    "default_redactor",
    "is_placeholder",
    "placeholder_kind",
    "secret_key_kind",
    "shown_placeholder",
]
