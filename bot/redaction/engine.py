"""Redaction of secrets from text and structured data.

A secret is replaced by a marker that says what it was, ``[redacted:aws-secret-key]``, so the
evidence still reads; identifiers a responder needs (ARNs, UUIDs, SHAs, image digests, task,
run, request and trace ids, pagination tokens, hostnames, timestamps) are left alone.

Speed comes from keywords: every rule's pattern starts with a literal (``hk_``, ``AKIA``,
``xox``, ``://``, ``password``...), so the regex engine skips along the text with its fast
literal-prefix search and runs the rest of a rule only where its keyword occurs. One combined
alternation is ~10 times slower and lets a generic rule swallow what a specific one should
have matched. Secrets that
arrive URL-encoded or JSON-escaped are found by decoding the lines that hold escapes and
mapping matches back; secrets soft-wrapped across a line break are found by joining the two
line ends. Every marker stays on its own line, so the number of lines never changes.

Example::

    redactor = Redactor(known_secrets=[settings_token])
    redactor.redact_text("curl -H 'Authorization: Bearer abc123...'")
    redactor.redact({"environment": [{"name": "DB_PASSWORD", "value": "..."}]})
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

MARKER = "[redacted:{}]"
_MARKER_ONLY = re.compile(r"\[redacted:[a-z-]+\]")
KNOWN_SECRET = "known-secret"

# Characters a secret (or a key=value pair holding one) can be made of; a run of them on both
# sides of a line break is where a soft wrap may have split a secret.
_WRAP_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/=.%~:@!*#$^&?\\"
_WRAP_SET = frozenset(_WRAP_CHARS)
_WRAP_CONTEXT = 64  # characters before the tail token that may hold its key ("password=")
# A terminal wraps a long line at its width: only a line of such a width may have been cut
# right after a secret that looks complete on its own.
_TERMINAL_WIDTHS = frozenset({80, 100, 120, 132, 140, 150, 160, 180, 200, 220, 240, 250, 256})
_NEW_RECORD = re.compile(
    r"\d{4}[-/]\d\d[-/]\d\d|\d\d:\d\d:\d\d|\d{1,3}(?:\.\d{1,3}){3}"
    r"|(?:DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL|TRACE|https?|h2|wss?)\b"
)
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|\\(?:u[0-9A-Fa-f]{4}|[\\/\"'bfnrt])")
_JSON_SIMPLE = {"\\": "\\", "/": "/", '"': '"', "'": "'", "b": "\b", "f": "\f", "n": "\n"}
_JSON_SIMPLE.update({"r": "\r", "t": "\t"})
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}

Span = tuple[int, int, int, str]  # start, end, priority (lower wins), kind


# --- Key names -----------------------------------------------------------------------------

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
# A key is secret when its squashed name ends with one of these nouns (so ``token_type``,
# ``password_length`` and ``secret_arn`` are not) ...
_SECRET_KEY_ENDINGS: tuple[tuple[str, str], ...] = (
    ("secretaccesskey", "aws-secret-key"),
    ("awssecretkey", "aws-secret-key"),
    ("sessiontoken", "aws-session-token"),
    ("securitytoken", "aws-session-token"),
    ("authorization", "authorization"),
    ("password", "password-field"),
    ("passwd", "password-field"),
    ("passphrase", "password-field"),
    ("pwd", "password-field"),
    ("pass", "password-field"),
    ("secret", "password-field"),
    ("secretkey", "password-field"),
    ("token", "password-field"),
    ("apikey", "password-field"),
    ("privatekey", "password-field"),
    ("credentials", "password-field"),
    ("credential", "password-field"),
    ("accesskey", "password-field"),
    ("authkey", "password-field"),
    ("accountkey", "password-field"),
    ("signingkey", "password-field"),
    ("encryptionkey", "password-field"),
    ("masterkey", "password-field"),
    ("sessionkey", "password-field"),
    ("clientkey", "password-field"),
)
# ... and is no pagination cursor (nextToken) or bare environment variable (PWD).
_NOT_SECRET_KEY_PARTS = ("next", "pagination", "continuation", "page", "cursor", "forward")
_NOT_SECRET_KEY_PARTS += ("backward", "marker", "previous", "prev")
_PASS_OWNERS = ("db", "user", "admin", "root", "mysql", "pg", "postgres", "redis", "smtp", "ldap")
_PASS_OWNERS += ("mail", "ftp", "proxy", "rabbitmq", "mongo", "basic", "http", "auth")
_NOT_SECRET_KEYS = frozenset({"pwd", "oldpwd", "bypass", "compass"})


_SQUASH = re.compile(r"[^a-z0-9]+")
_ENDINGS = tuple(ending for ending, _ in _SECRET_KEY_ENDINGS)


def _squash(key: str) -> str:
    return _SQUASH.sub("", key.lower())


@functools.lru_cache(maxsize=4096)
def secret_key_kind(key: str) -> str | None:
    """The marker kind for a key whose value is a secret, or None for an ordinary key.

    Example: ``secret_key_kind("DB_PASSWORD") == "password-field"``,
    ``secret_key_kind("nextToken") is None``, ``secret_key_kind("SecretArn") is None``.
    """
    squashed = _squash(key)
    if not squashed.endswith(_ENDINGS) or squashed in _NOT_SECRET_KEYS:
        return None
    for ending, kind in _SECRET_KEY_ENDINGS:
        if squashed.endswith(ending):
            if ending == "token" and any(part in squashed for part in _NOT_SECRET_KEY_PARTS):
                return None
            if ending == "pass" and not _word_pass(key):
                return None
            if ending == "pwd" and squashed == "pwd":
                return None
            return kind
    return None


def _word_pass(key: str) -> bool:
    """``DB_PASS`` and ``db_pass`` name a password; ``pass`` (a status), ``on_pass`` do not."""
    if key.endswith("PASS") and len(key) > 4 and "." not in key:  # DB_PASS, PGPASS
        return True
    return _squash(key)[:-4].endswith(_PASS_OWNERS)


# --- Values that are no secret ---------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"""
    \$\{[^}]*\}? | \$\([^)]*\)? | (?-i:\$[A-Z_][A-Z0-9_]*$)
    | (?-i:_?[A-Z][A-Z0-9]*_[A-Z0-9_]+$) | (?-i:[A-Z]{1,10}$)
    | \{\{.*\}\}? | %\([a-z_]+\)s
    | \{[\w.\[\]'"]*\}?$
    | <[^>]*>? | .*<[a-z_ -]+>$ | \[redacted[^\]]*\]?
    | \*{3,}.* | .*\*{4,}$ | x{4,}$ | \.{3,}
    | (?:none|null|nil|undefined|true|false|redacted|hidden|sensitive|secret|password|token)$
    | \((?:hidden|redacted|sensitive)\)$ | arn: | .*\byour[-_] | .*[-_]here$ | .*example
    | (?:expired|invalid|valid|missing|required|revoked|present|absent|ok|set|unset|empty
       |rotated|refreshed|not\ set)$
    """,
    re.IGNORECASE | re.VERBOSE,
)


def is_placeholder(value: str) -> bool:
    """True for values that stand in for a secret: ``${DB_PASSWORD}``, ``<token>``, ``****``."""
    value = value.strip().strip("\"'")
    return not value or len(value) < 3 or bool(_PLACEHOLDER.match(value))


# --- Rules -----------------------------------------------------------------------------------

Collector = Callable[[re.Match[str], str, int, list[Span]], None]


@dataclass(frozen=True)
class _Rule:
    """A secret format: cheap keywords, a pattern, and what to call what it matches."""

    kind: str
    keywords: tuple[str, ...]
    pattern: re.Pattern[str]
    lower: bool = False  # keywords and pattern apply to the ASCII-lower-cased text
    bounded: bool = True  # the match must not continue a word on its left
    shaped: bool = True  # the format alone proves a secret (vs. a value judged by its key)
    collect: Collector | None = None


def _left_ok(text: str, start: int) -> bool:
    """The match starts a token: not glued to letters, unless they end an escape (``%3D``)."""
    if start == 0 or text[start - 1] not in _ALNUM:
        return True
    if start >= 3 and text[start - 3] == "%":
        return True
    return (start >= 2 and text[start - 2] == "\\") or text[start - 6 : start - 4] == "\\u"


def _whole(kind: str) -> Collector:
    def collect(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
        start, end = m.span("s") if "s" in m.re.groupindex else m.span()
        if start < end:
            out.append((start, end, prio, kind))

    return collect


def _value(kind: str, judge: Callable[[str], bool] = lambda v: not is_placeholder(v)) -> Collector:
    def collect(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
        start, end = m.span("s")
        if start < end and judge(text[start:end]):
            out.append((start, end, prio, kind))

    return collect


def _basic_credentials(value: str) -> bool:
    """A Basic credential decodes to printable ``user:password``."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (binascii.Error, ValueError):
        return False
    return decoded.isprintable() and ":" in decoded[1:]


_URL_SCHEMES = ("https://", "http://", "https:\\/\\/", "http:\\/\\/", "https%3A%2F%2F")
_URL_SCHEMES += ("http%3A%2F%2F", "https%3a%2f%2f", "http%3a%2f%2f")


def _collect_webhook(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    """The whole webhook URL, scheme included: the path alone is the secret."""
    start = m.start()
    for scheme in _URL_SCHEMES:
        if text.startswith(scheme, start - len(scheme)):
            start -= len(scheme)
            break
    out.append((start, m.end(), prio, "slack-webhook"))


def _collect_aws_key_pair(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    """An access key id, and the secret key printed beside it (credentials CSV)."""
    out.append((m.start(), m.start() + 20, prio, "aws-access-key-id"))
    if m.start("s") != -1:
        out.append((m.start("s"), m.end("s"), prio, "aws-secret-key"))


_SK_VENDORS = {"anthropic": "anthropic-api-key", "stripe": "stripe-key"}


def _collect_sk_key(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    out.append((m.start(), m.end(), prio, _SK_VENDORS.get(m.lastgroup or "", "openai-api-key")))


def _collect_basic(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    start, end = m.span("s")
    if _basic_credentials(text[start:end]):  # the original case: base64 is case-sensitive
        out.append((start, end, prio, "authorization"))


def _token_like(value: str) -> bool:
    """A bearer credential mixes letters and digits; "Bearer tokens_are_required" does not."""
    return (
        not is_placeholder(value)
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
    )


_SCHEMES = frozenset(
    {"bearer", "basic", "token", "digest", "apikey", "api-key", "hmac", "negotiate"}
)


def _collect_authorization(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    start, end = m.span("s")
    value = text[start:end].strip("`'\"():;,.")
    if value.lower() in _SCHEMES or is_placeholder(value):
        return
    if _holds_secret(text, end, value):
        return  # code: {"Authorization": self._api_key}
    out.append((start, end, prio, "authorization"))


def _collect_key_value(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    """``DB_PASSWORD=...``, ``"api_key": "..."``, ``password: ...``, ``?token=...&``."""
    key_start = m.start()
    while key_start > 0 and text[key_start - 1] in _KEY_CHARS:
        key_start -= 1
    key_start = _wrapped_key_start(text, key_start)
    key = text[key_start : m.end("suffix")]
    if m.group("sep") in " \t" and (not key.startswith("--") or text[m.start("val")] == "-"):
        return  # only a command-line flag takes its value after a space: --password VALUE
    kind = secret_key_kind(key)
    if kind is None:
        return
    start, end = m.span("val")
    raw = text[start:end]
    if raw[:1] in "\"'":
        start, end = start + 1, end - 1 if len(raw) > 1 and raw[-1] == raw[0] else end
    else:
        end = start + _balanced_length(raw)
    value = text[start:end]
    if start >= end or is_placeholder(value) or text[end : end + 1] == "<":
        return  # "hk_live_<redacted>" is a placeholder however it is cut
    if _in_arn(text, key_start):
        return  # arn:aws:secretsmanager:...:secret:name-AbCdEf names a secret, it is not one
    if _code_expression(text, m, value, end, quoted=raw[:1] in "\"'"):
        return  # Python: secret = client.get_secret_value(SecretId=arn), api_key=self.api_key
    prose = m.group("sep") == ":" and not m.group("q") and not _key_leads(text, key_start)
    if prose and not _looks_secret(value):  # "failed to refresh token: expired"
        return
    out.append((start, end, prio, kind))


_CODE_VALUE = re.compile(r"[A-Za-z_][\w.]*\(.*|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|[a-z]+(?:_[a-z]+)+")
_CALL = re.compile(r"[A-Za-z_][\w.]*\(.*")
_ATTRIBUTE = re.compile(
    r"(?:self|cls|settings|config|os\.environ|args|options)(?:\.\w+)+|[A-Za-z_][\w.]*\[.*"
)
_SNAKE_NAME = re.compile(r"[a-z_]+")  # no digits: a password nearly always has some
_SECRET_NOUN = re.compile(r"key|token|secret|passw|pwd|credential", re.IGNORECASE)
_TYPE_NAMES = frozenset({"str", "int", "bool", "bytes", "float", "dict", "list", "Any", "None"})
_TYPE_NAMES |= {"SecretStr", "SecretBytes"}
_CONCATENATION = re.compile(r"[ \t]*[+%]")
_PROSE_GOES_ON = re.compile(r" [a-z]+\b")


def _code_expression(text: str, m: re.Match[str], value: str, end: int, quoted: bool) -> bool:
    """Code, not data: ``secret = client.get(...)``, ``api_key=self.api_key``, ``token: str``.

    Tracebacks print source lines, so code reaches the redactor with the logs.
    """
    sep = m.group("sep")
    spaced = text[m.start("sep") - 1 : m.start("sep")] == " "
    if quoted:  # "hk_" + "live_" + rest, "%s" % value
        return _CONCATENATION.match(text, m.end("val")) is not None
    if _CALL.fullmatch(value) or (spaced and sep == "=" and _CODE_VALUE.fullmatch(value)):
        return True
    if sep == ":" and value.rstrip(",)") in _TYPE_NAMES:
        return True
    if sep == ":" and value.isalpha() and _PROSE_GOES_ON.match(text, m.end("val")):
        return True  # "Credentials: the password MLflow uses does not match"
    return _holds_secret(text, end, value)


def _holds_secret(text: str, end: int, value: str) -> bool:
    """A variable holding the secret: ``self._token``, ``secrets["x"]``, ``(api_key=key, ...``.

    Not a password that merely contains a word: ``Passw0rd_2024`` stays a secret.
    """
    if not _SECRET_NOUN.search(value):
        return False
    if _ATTRIBUTE.fullmatch(value):
        return True
    return _SNAKE_NAME.fullmatch(value) is not None and text[end : end + 1] in (",", ")")


_ACCOUNT_BEFORE = re.compile(r":\d{12}:")


def _in_arn(text: str, key_start: int) -> bool:
    """The key is a part of an ARN (``...:123456789012:secret:name``), even a wrapped one."""
    if _ACCOUNT_BEFORE.fullmatch(text, max(0, key_start - 14), key_start):
        return True
    line_start = text.rfind("\n", 0, key_start) + 1
    token_start = max(line_start, *(text.rfind(c, line_start, key_start) + 1 for c in " \t\"'"))
    if token_start and text[token_start - 1] == "\n":
        # a terminal may have wrapped the ARN: look at the end of the line before too
        token_start = _wrapped_key_start(text, token_start, _TOKEN_CHARS)
    return "arn:" in text[token_start:key_start]


_TOKEN_CHARS = _KEY_CHARS | frozenset(":/")


def _wrapped_key_start(text: str, key_start: int, chars: frozenset[str] = _KEY_CHARS) -> int:
    """Where a key starts when a terminal wrapped it: ``"nextBackw`` / ``ardToken": "b/3..."``."""
    if key_start == 0 or text[key_start - 1] != "\n":
        return key_start
    end = key_start - 1
    if end and text[end - 1] == "\r":
        end -= 1
    line_start = text.rfind("\n", 0, end) + 1
    if end - line_start not in _TERMINAL_WIDTHS:
        return key_start
    start = end
    while start > line_start and text[start - 1] in chars:
        start -= 1
    return start if start < end else key_start


def _balanced_length(value: str) -> int:
    """Up to the first bracket closing one the value did not open: ``Stand(token=x).start()``."""
    depth = 0
    for index, char in enumerate(value):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                return index
            depth -= 1
    return len(value)


def _key_leads(text: str, key_start: int) -> bool:
    """The key opens its line (YAML, headers, env files) or a quoted string."""
    line_start = text.rfind("\n", 0, key_start) + 1
    before = text[line_start:key_start].strip()
    return before in ("", "-", "export", "#") or before.endswith(('"', "'", "{", ",", "-H"))


_WORDS = re.compile(r"(?:[A-Z]?[a-z]+)+|[A-Z]+")


def _looks_secret(value: str) -> bool:
    """Not a word: mixed letters, digits and symbols, or letters of random case."""
    if len(value) < 8:
        return False
    if value.isalpha():
        return len(value) >= 12 and not _WORDS.fullmatch(value)
    kinds = (
        any(c.isdigit() for c in value)
        + any(c.isupper() for c in value)
        + any(c.islower() for c in value)
        + any(not c.isalnum() for c in value)
    )
    return kinds >= 2


def _collect_ecs_environment(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    """``{"name": "DB_PASSWORD", "value": "..."}`` in a task definition printed as text."""
    kind = secret_key_kind(text[m.start("key") : m.end("key")])
    start, end = m.span("s")
    if kind and start < end and not is_placeholder(text[start:end]):
        out.append((start, end, prio, kind))


def _rule(kind: str, keywords: Iterable[str], pattern: str, **options: Any) -> _Rule:
    flags = re.DOTALL if options.pop("dotall", False) else 0
    collect = options.pop("collect", None) or _whole(kind)
    return _Rule(kind, tuple(keywords), re.compile(pattern, flags), collect=collect, **options)


# After a key noun ("password", "api_key", "token"), closing the key: quote, separator, value.
_KEY_VALUE = (
    r"(?:word|wd|phrase|s)?(?P<suffix>)(?P<q>\\?[\"'])?[ \t]*"
    r"(?P<sep>=>|:=|=|:|(?<=[a-z])[ \t])[ \t]*"
    r"(?P<val>\"(?:[^\"\\\n]|\\.)*\"?|'[^'\n]*'?|[^\s\"'`&,;<>]+)"
)
_B64 = r"[A-Za-z0-9/+]"
_B64_URL = r"(?:[A-Za-z0-9/+=]|%2[BbFf]|%3[Dd])"
_END = r"(?![A-Za-z0-9])"

_RULES: tuple[_Rule, ...] = (
    _rule(
        "private-key",
        ["-----BEGIN"],
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----"
        r"(?:.{0,8192}?-----END[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|(?:(?:\r?\n|\\r?\\n)"
        r"(?:[A-Za-z0-9+/=]{16,}(?=\r?\n|\\n|$)|(?:Proc-Type|DEK-Info):[^\n\\]*)?)*)",
        dotall=True,
        bounded=False,
    ),
    _rule("hokusai-api-key", ["hk_live_", "hk_test_"], r"hk_(?:live|test)_[A-Za-z0-9]{32}" + _END),
    _rule(
        "aws-access-key-id",
        ["AKIA", "ASIA"],
        r"A[KS]IA[A-Z0-9]{16}(?![A-Za-z0-9])(?:[ \t,;:|]+(?P<s>"
        + _B64
        + r"{40})(?![A-Za-z0-9/+=]))?",
        collect=_collect_aws_key_pair,
    ),
    _rule(
        "password-field",
        ["-u"],
        r"-u(?:ser)?[ \t=]+[\"']?[^\s:\"'@/]+:(?P<s>[^\s\"']+)",
        shaped=False,
        collect=_value("password-field"),
    ),
    _rule("aws-session-token", ["IQoJb3JpZ2lu"], r"IQoJb3JpZ2lu" + _B64_URL + r"{40,}"),
    _rule(
        "slack-webhook",
        ["hooks.slack.com"],
        r"hooks\.slack\.com(?:\\?/|%2[Ff])(?:services|workflows|triggers)"
        r"(?:(?:\\?/|%2[Ff])[A-Za-z0-9_\-]+)+",
        bounded=False,
        collect=_collect_webhook,
    ),
    _rule(
        "slack-token",
        ["xox"],
        r"xox(?:[abposr]|e\.xox[bp]|e)-\d+-[A-Za-z0-9-]{8,}",
    ),
    _rule("slack-token", ["xapp-"], r"xapp-\d-[A-Za-z0-9-]{10,}"),
    _rule("github-token", ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], r"gh[pousr]_[A-Za-z0-9]{36,}"),
    _rule("github-token", ["github_pat_"], r"github_pat_[A-Za-z0-9_]{22,}"),
    _rule("linear-api-key", ["lin_api_", "lin_oauth_"], r"lin_(?:api|oauth)_[A-Za-z0-9]{30,}"),
    _rule(
        "openai-api-key",
        ["sk-", "sk_live_", "sk_test_"],
        # one scan for the three vendors whose keys start "sk"; the group names the vendor
        r"sk(?:(?P<anthropic>-ant-(?:api|admin|oat|sid)\d\d-[A-Za-z0-9_\-]{20,})"
        r"|(?P<stripe>_(?:live|test)_[A-Za-z0-9]{16,})"
        r"|-(?:proj-|svcacct-|admin-|None-)?(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Z])"
        r"[A-Za-z0-9_\-]{32,})",
        collect=_collect_sk_key,
    ),
    _rule("stripe-key", ["rk_live_", "rk_test_"], r"rk_(?:live|test)_[A-Za-z0-9]{16,}"),
    _rule("stripe-key", ["whsec_"], r"whsec_[A-Za-z0-9+/=]{24,}"),
    _rule("google-api-key", ["AIza"], r"AIza[0-9A-Za-z_\-]{35}"),
    _rule("google-oauth-secret", ["GOCSPX-"], r"GOCSPX-[A-Za-z0-9_\-]{20,}"),
    _rule("google-oauth-token", ["ya29."], r"ya29\.[0-9A-Za-z_\-]{20,}"),
    _rule("huggingface-token", ["hf_"], r"hf_[A-Za-z0-9]{30,}"),
    _rule("npm-token", ["npm_"], r"npm_[A-Za-z0-9]{36}" + _END),
    _rule("pypi-token", ["pypi-AgE"], r"pypi-AgE[A-Za-z0-9_\-]{50,}"),
    _rule("sendgrid-key", ["SG."], r"SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}"),
    _rule("gitlab-token", ["glpat-"], r"glpat-[A-Za-z0-9_\-]{20,}"),
    _rule("databricks-token", ["dapi"], r"dapi[a-f0-9]{32}(?:-\d+)?" + _END),
    _rule(
        "datadog-key",
        ["dd_", "dd-"],
        r"dd[_-](?:api|app|application)[_-]?key[\"']?[ \t]*[:=][ \t]*[\"']?"
        r"(?P<s>[a-f0-9]{32,40})(?![a-z0-9])",
        lower=True,
    ),
    _rule(
        "sentry-dsn",
        ["://"],
        r"://(?P<s>[a-f0-9]{32}(?::[a-f0-9]{32})?)@",
        bounded=False,
    ),
    _rule(
        "jwt",
        ["eyJ"],
        r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
    ),
    _rule(
        "url-password",
        ["://"],
        r"://[^\s:/@\"'<>]*:(?P<s>[^\s\"'<>/]*|(?!\d+/)[^\s\"'<>]*?)@(?=[A-Za-z0-9\[])",
        bounded=False,
        collect=_value("url-password"),
    ),
    _rule(
        "authorization",
        ["authorization"],
        r"authorization\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?(?:(?:bearer|basic|token|digest|apikey"
        r"|api-key|hmac)(?:[ \t]+|%20|\+))?(?P<s>[^\s\"',;\\]+)",
        lower=True,
        bounded=False,
        shaped=False,
        collect=_collect_authorization,
    ),
    _rule(
        "authorization",
        ["bearer"],
        r"bearer(?:[ \t]+|%20)(?P<s>[a-z0-9\-._~+/]{16,}=*)",
        lower=True,
        shaped=False,
        collect=_value("authorization", _token_like),
    ),
    _rule(
        "authorization",
        ["basic"],
        r"basic(?:[ \t]+|%20)(?P<s>[a-z0-9+/]{8,}={0,2})(?![a-z0-9+/=])",
        lower=True,
        shaped=False,
        collect=_collect_basic,
    ),
    *(
        _rule(
            "password-field",
            [f"{q}name{q}"],
            rf"{q}name{q}[ \t]*:[ \t]*{q}(?P<key>[^{q}\n]{{1,200}}){q}[ \t]*,[ \t]*"
            rf"{q}value{q}[ \t]*:[ \t]*{q}(?P<s>(?:[^{q}\\\n]|\\.)*){q}",
            lower=True,
            bounded=False,
            shaped=False,
            collect=_collect_ecs_environment,
        )
        for q in ('"', "'")
    ),
    *(
        _rule(
            "password-field",
            [noun],
            noun + _KEY_VALUE,
            lower=True,
            bounded=False,
            shaped=False,
            collect=_collect_key_value,
        )
        for noun in ("pass", "pwd", "secret", "token", "key", "credential")
    ),
)


def _lowered(text: str) -> str:
    """Lower-case A-Z only, so that every position still lines up with ``text``."""
    lowered = text.lower()  # lower-casing never shortens a character, so equal length aligns
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


# --- Escapes ---------------------------------------------------------------------------------


def _decode_escapes(text: str) -> tuple[str, list[tuple[int, int, int, int]]]:
    """URL- and JSON-unescape ``text``; segments map decoded positions back to ``text``.

    Each segment is ``(decoded_start, source_start, decoded_length, source_length)``.
    """
    parts: list[str] = []
    segments: list[tuple[int, int, int, int]] = []
    src = dst = 0
    for m in _ESCAPE.finditer(text):
        if m.start() > src:
            run = m.start() - src
            parts.append(text[src : m.start()])
            segments.append((dst, src, run, run))
            dst += run
        escape = m.group()
        if escape[0] == "%":
            char = chr(int(escape[1:], 16))
        elif escape[1] == "u":
            char = chr(int(escape[2:], 16))
        else:
            char = _JSON_SIMPLE[escape[1]]
        parts.append(char)
        segments.append((dst, m.start(), 1, len(escape)))
        dst += 1
        src = m.end()
    if src < len(text):
        parts.append(text[src:])
        segments.append((dst, src, len(text) - src, len(text) - src))
    return "".join(parts), segments


def _map_back(
    segments: list[tuple[int, int, int, int]], starts: list[int], start: int, end: int
) -> tuple[int, int]:
    first = segments[bisect.bisect_right(starts, start) - 1]
    last = segments[bisect.bisect_right(starts, end - 1) - 1]
    src_start = first[1] + (start - first[0] if first[2] == first[3] else 0)
    literal = last[2] == last[3]
    src_end = last[1] + (end - last[0] if literal else last[3])
    return src_start, src_end


# --- The redactor ----------------------------------------------------------------------------


class Redactor:
    """Replaces secrets with markers that say what they were: ``[redacted:hokusai-api-key]``."""

    def __init__(self, known_secrets: Iterable[str] = ()) -> None:
        self._known: set[str] = set()
        self._known_forms: tuple[str, ...] = ()
        self.add_known(*known_secrets)

    def add_known(self, *values: str) -> None:
        """Remember exact secret values this process holds (its tokens, the probe key).

        They are also caught URL-encoded and JSON-escaped.
        """
        for value in values:
            if value and len(value) >= 6:
                self._known.add(value)
        forms: set[str] = set()
        for value in self._known:
            escaped = json.dumps(value)[1:-1]
            url = quote(value, safe="")
            forms.update({value, escaped, escaped.replace("/", "\\/"), url, url.lower()})
            forms.add(quote_plus(value, safe=""))
        self._known_forms = tuple(sorted(forms, key=len, reverse=True))

    def redact_text(self, text: str) -> str:
        """Return ``text`` with every secret replaced by its marker, line count unchanged."""
        if len(text) < 6:  # shorter than any secret this redactor knows
            return text
        spans = self._spans(text)
        return _apply(text, spans) if spans else text

    def redact_lines(self, lines: Iterable[str], chunk_chars: int = 1 << 18) -> Iterator[str]:
        """Redact a stream of lines, yielding exactly one line out for each line in.

        Lines are redacted in chunks with one line of context on each side, so a secret
        soft-wrapped across a chunk boundary is still caught; a private key block is never
        split between chunks.
        """
        block: list[str] = []
        size = 0
        previous: str | None = None
        key_open = False
        for line in lines:
            block.append(line)
            size += len(line)
            if "PRIVATE KEY" in line:
                key_open = "-----BEGIN" in line and "-----END" not in line.split("-----BEGIN")[-1]
            if size < chunk_chars or (key_open and size < 64 * chunk_chars):
                continue
            if len(block) < 2:
                continue
            lookahead = block.pop()
            yield from self._redact_block(previous, block, lookahead)
            previous = block[-1]
            block, size = [lookahead], len(lookahead)
        if block:
            yield from self._redact_block(previous, block, None)

    def _redact_block(
        self, previous: str | None, block: list[str], lookahead: str | None
    ) -> list[str]:
        head = previous if previous is not None and previous.endswith("\n") else None
        text = "".join(([head] if head else []) + block + ([lookahead] if lookahead else []))
        redacted = self.redact_text(text)
        if redacted == text:
            return block
        parts = redacted.split("\n")
        if head is not None:
            parts = parts[1:]
        out = []
        for i, line in enumerate(block):
            out.append(parts[i] + "\n" if line.endswith("\n") else parts[i])
        return out

    def redact(self, value: Any) -> Any:
        """Redact strings anywhere inside dicts, lists and tuples; other values pass.

        A value under a secret-like key (``password``, ``api_key``, ``Authorization``, not
        ``token_type`` or ``nextToken``) is replaced whole; so is the ``value`` of an ECS
        environment entry whose ``name`` is secret-like.
        """
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return self._redact_mapping(value)
        if isinstance(value, (list, tuple)):
            items = [self.redact(v) for v in value]
            if isinstance(value, list):
                return items
            try:
                return type(value)(items)
            except TypeError:  # a named tuple takes its fields one by one
                return type(value)(*items)
        return value

    def _redact_mapping(self, mapping: dict[Any, Any]) -> dict[Any, Any]:
        entry_kind = None
        name = mapping.get("name", mapping.get("Name"))
        if isinstance(name, str) and ("value" in mapping or "Value" in mapping):
            entry_kind = secret_key_kind(name)
        out = {}
        for key, item in mapping.items():
            kind = secret_key_kind(key) if isinstance(key, str) else None
            if entry_kind and key in ("value", "Value"):
                kind = entry_kind
            if kind and _is_secret_scalar(item):
                out[key] = self._whole_value_marker(item, kind)
            else:
                out[key] = self.redact(item)
        return out

    def _whole_value_marker(self, value: Any, kind: str) -> str:
        """The marker for a value under a secret key: its own format's, when it has one."""
        if isinstance(value, str):
            redacted = self.redact_text(value)
            if _MARKER_ONLY.fullmatch(redacted):
                return redacted
        return MARKER.format(kind)

    # -- finding spans --

    def _spans(self, text: str) -> list[Span]:
        spans = self._plain_spans(text)
        if "%" in text or "\\" in text:
            spans.extend(self._escaped_spans(text))
        if "\n" in text:
            spans.extend(self._wrapped_spans(text, spans))
        return spans

    def _plain_spans(self, text: str) -> list[Span]:
        spans: list[Span] = []
        lowered: str | None = None
        for prio, rule in enumerate(_RULES):
            if rule.lower:
                if lowered is None:
                    lowered = _lowered(text)
                hay = lowered
            else:
                hay = text
            # Each pattern starts with its keyword, so the engine's own literal-prefix search is
            # the keyword scan; a separate ``keyword in text`` test measured slower, not faster.
            collect = rule.collect
            for m in rule.pattern.finditer(hay):
                if rule.bounded and not _left_ok(text, m.start()):
                    continue
                collect(m, text, prio, spans)  # type: ignore[misc]
        for form in self._known_forms:
            at = text.find(form)
            while at != -1:
                spans.append((at, at + len(form), -1, KNOWN_SECRET))
                at = text.find(form, at + len(form))
        return spans

    def _escaped_spans(self, text: str) -> list[Span]:
        """Find secrets in lines holding URL or JSON escapes, by decoding those lines.

        The decoded lines are scanned as one batch; matches map back through the decoding.
        """
        lines: list[tuple[int, int]] = []
        m = _ESCAPE.search(text)
        while m:
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            end = len(text) if end == -1 else end
            lines.append((start, end))
            m = _ESCAPE.search(text, end)
        decoded_lines: list[str] = []
        offsets: list[int] = []
        maps: list[list[tuple[int, int, int, int]]] = []
        at = 0
        for line_start, line_end in lines:
            decoded, segments = _decode_escapes(text[line_start:line_end])
            decoded_lines.append(decoded.replace("\n", " "))  # one batch line per source line
            offsets.append(at)
            maps.append(segments)
            at += len(decoded) + 1
        spans: list[Span] = []
        for start, end, prio, kind in self._plain_spans("\n".join(decoded_lines)):
            index = bisect.bisect_right(offsets, start) - 1
            base = offsets[index]
            if end - base > len(decoded_lines[index]):
                continue  # a match across batch lines is an artefact of batching
            segments = maps[index]
            starts = [seg[0] for seg in segments]
            src_start, src_end = _map_back(segments, starts, start - base, end - base)
            line_start = lines[index][0]
            spans.append((line_start + src_start, line_start + src_end, prio, kind))
        return spans

    def _wrapped_spans(self, text: str, plain: list[Span]) -> list[Span]:
        """Find secrets a soft wrap split across a line break; mark both halves.

        Each line break between two runs of secret characters gives a candidate: the end of
        the first line (with some context for its key) joined to the start of the next. The
        candidates are scanned as one batch; a match must straddle the join.
        """
        joints: list[tuple[int, int, int, int, bool]] = []
        pieces: list[str] = []
        offsets: list[int] = []
        at = 0
        length = len(text)
        newline = text.find("\n")
        while newline != -1:
            after = newline + 1
            if after < length and text[after] in _WRAP_SET:
                end = newline - 1 if newline > 0 and text[newline - 1] == "\r" else newline
                if end > 0 and text[end - 1] in _WRAP_SET:
                    line_start = text.rfind("\n", 0, end) + 1
                    line = text[line_start:end]
                    tail = len(line) - len(line.rstrip(_WRAP_CHARS))
                    window_start = max(line_start, end - tail - _WRAP_CONTEXT)
                    next_end = text.find("\n", after)
                    rest = text[after : length if next_end == -1 else next_end]
                    head_end = after + len(rest) - len(rest.lstrip(_WRAP_CHARS))
                    closing = text[head_end : head_end + 1]
                    piece_end = head_end + 1 if closing in "\"'" and closing else head_end
                    if _NEW_RECORD.match(rest):
                        newline = text.find("\n", after)
                        continue  # the next line opens a record of its own
                    wrapped = len(line) in _TERMINAL_WIDTHS
                    joints.append((window_start, end, after, head_end, wrapped))
                    piece = text[window_start:end] + text[after:piece_end]
                    pieces.append(piece)
                    offsets.append(at)
                    at += len(piece) + 1
            newline = text.find("\n", after)
        if not joints:
            return []
        plain_ends = {(end, prio) for _, end, prio, _ in plain}
        spans: list[Span] = []
        for start, stop, prio, kind in self._plain_spans("\n".join(pieces)):
            index = bisect.bisect_right(offsets, start) - 1
            window_start, end, after, head_end, wrapped = joints[index]
            joint = offsets[index] + end - window_start
            if not start < joint < stop or stop - offsets[index] > len(pieces[index]):
                continue  # not across this join, or across two candidates of the batch
            # A complete secret ending its line, or a value judged only by its key, is taken
            # for wrapped only when the line is exactly as wide as a terminal.
            head_stop = after + stop - joint
            shaped = prio < 0 or _RULES[prio].shaped
            if ((end, prio) in plain_ends or not shaped) and not (
                wrapped and (head_stop == head_end or text[head_stop] in "&;,")
            ):
                continue
            spans.append((window_start + start - offsets[index], end, prio, kind))
            spans.append((after, min(head_stop, head_end), prio, kind))
        return spans


def _is_secret_scalar(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and not is_placeholder(value)


def _apply(text: str, spans: list[Span]) -> str:
    """Replace the union of overlapping spans, each line of a span by the winning marker."""
    spans.sort()
    out: list[str] = []
    cursor = 0
    i = 0
    while i < len(spans):
        start, end, prio, kind = spans[i]
        i += 1
        while i < len(spans) and spans[i][0] < end:
            if spans[i][1] > end:
                end = spans[i][1]
            if spans[i][2] < prio:
                prio, kind = spans[i][2], spans[i][3]
            i += 1
        if start < cursor:
            start = cursor
        if start >= end:
            continue
        out.append(text[cursor:start])
        marker = MARKER.format(kind)
        pieces = text[start:end].split("\n")
        out.append("\n".join(_mark(piece, marker) for piece in pieces))
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _mark(piece: str, marker: str) -> str:
    if not piece.strip():
        return piece
    return marker + "\r" if piece.endswith("\r") else marker


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message, arguments and traceback text."""

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.redactor or default_redactor()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redactor.redact_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact_text(record.stack_info)
        return True


_default = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor; start-up adds the process's own secrets to it."""
    return _default
