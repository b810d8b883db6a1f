"""Fake secrets built at run time, shaped like the real ones.

Nothing secret-shaped is ever written into the repository; tests and the demo call these.
"""

from __future__ import annotations

import secrets
import string

_ALNUM = string.ascii_letters + string.digits


def _pick(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def hokusai_key(live: bool = True) -> str:
    return ("hk_" + ("live" if live else "test") + "_") + _pick(_ALNUM, 32)


def slack_bot_token() -> str:
    digits = string.digits
    return "xo" + "xb-" + f"{_pick(digits, 12)}-{_pick(digits, 13)}-{_pick(_ALNUM, 24)}"


def slack_app_token() -> str:
    return (
        "xa"
        + "pp-1-"
        + f"A{_pick(string.ascii_uppercase + string.digits, 10)}-"
        + (f"{_pick(string.digits, 13)}-{_pick('0123456789abcdef', 64)}")
    )


def signing_secret() -> str:
    return _pick("0123456789abcdef", 32)


def aws_access_key_id() -> str:
    return "AK" + "IA" + _pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)


def aws_secret_key() -> str:
    return _pick(_ALNUM + "/+", 40)


def linear_api_key() -> str:
    return "lin_" + "api_" + _pick(_ALNUM, 40)


def password(n: int = 20) -> str:
    return _pick(_ALNUM, n - 2) + "!*"
