"""The secret formats the redactor knows: key names, value judges and the table of rules.

A rule is a format: the cheap literal its pattern starts with (the engine's prefilter), the
pattern, and a collector that judges each match and records the span to redact. The engine
(``bot.redaction.engine``) runs the rules over plain, unescaped, base64-decoded and
line-joined text; this module only says what a secret looks like.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bot.redaction.placeholders import is_placeholder

MARKER = "[redacted:{}]"
KNOWN_SECRET = "known-secret"

Span = tuple[int, int, int, str]  # start, end, priority (lower wins), kind
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ASCII_LOWER = {c: c + 32 for c in range(65, 91)}


def lowered(text: str) -> str:
    """Lower-case A-Z only, so that every position still lines up with ``text``."""
    low = text.lower()  # lower-casing never shortens a character, so equal length aligns
    return low if len(low) == len(text) else text.translate(_ASCII_LOWER)


# --- Key names -----------------------------------------------------------------------------

KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
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


# --- Rules -----------------------------------------------------------------------------------

Collector = Callable[[re.Match[str], str, int, list[Span]], None]


@dataclass(frozen=True)
class Rule:
    """A secret format: cheap keywords, a pattern, and what to call what it matches."""

    kind: str
    keywords: tuple[str, ...]  # every match starts with one of them (the prefilter's promise)
    pattern: re.Pattern[str]
    collect: Collector
    lower: bool = False  # keywords and pattern apply to the ASCII-lower-cased text
    bounded: bool = True  # the match must not continue a word on its left
    shaped: bool = True  # the format alone proves a secret (vs. a value judged by its key)


def left_ok(text: str, start: int) -> bool:
    """The match starts a token: not glued to letters, unless they end an escape (``%3D``)."""
    if start == 0 or text[start - 1] not in _ALNUM:
        return True
    if start >= 3 and text[start - 3] == "%":
        return True
    return (start >= 2 and text[start - 2] == "\\") or text[start - 6 : start - 4] == "\\u"


def _whole(kind: str) -> Collector:
    def collect(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
        start, end = m.span("s") if "s" in m.re.groupindex else m.span()
        if start < end and not is_placeholder(text[start:end]):  # hk_live_xxxxxxxx…
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
    """An access key id, and the secret key printed on the same line after it: credentials
    CSV (``"AKIA…","…"``), ``aws … --output text`` (``ACCESSKEY<TAB>AKIA…<TAB>date<TAB>…``),
    table output (``AKIA… | …``), ``AKIA…/…`` and ``AKIA…=…``."""
    key_id = text[m.start() : m.start() + 20]
    if is_placeholder(key_id):  # AWS's documented example key
        return
    out.append((m.start(), m.start() + 20, prio, "aws-access-key-id"))
    if m.start("s") != -1 and not is_placeholder(m.group("s")):
        out.append((m.start("s"), m.end("s"), prio, "aws-secret-key"))


_SK_VENDORS = {"anthropic": "anthropic-api-key", "stripe": "stripe-key"}


def _collect_sk_key(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    vendor = m.lastgroup or ""
    if vendor not in _SK_VENDORS and not left_ok(text, m.start()):
        return  # a bare "sk-" glued to a word ("task-…", "disk-…") is no key; the others are
    if not is_placeholder(m.group()):
        out.append((m.start(), m.end(), prio, _SK_VENDORS.get(vendor, "openai-api-key")))


def _collect_url_secret(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    """A Sentry DSN's key (``https://<32 hex>@o1.ingest.sentry.io``) or a URL's password."""
    if m.start("dsn") != -1:
        out.append((m.start("dsn"), m.end("dsn"), prio, "sentry-dsn"))
        return
    start, end = m.span("s")
    if start < end and not is_placeholder(text[start:end]):
        out.append((start, end, prio, "url-password"))


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


# How far an unquoted value runs depends on where it sits: in a query string or form body it
# ends at "&", in a connection string at ";"; anywhere else (env files, command lines) at
# whitespace, so PGPASSWORD=abc&3xyz is redacted whole. (The pattern stops at "&", ";" and ","
# so that the next key of a query string gets its own match; the value is stretched here.)
_QUERY_STRING = re.compile(r"&[A-Za-z_][\w.\[\]-]*=")
_CONNECTION_STRING = re.compile(r";[ \t]*[A-Za-z][A-Za-z0-9 _]*=")
_UNTIL_SPACE = re.compile(r"[^\s\"'`<>]*")
_TRAILING_PUNCTUATION = ",;."


def _unquoted_end(text: str, key_start: int, start: int) -> int:
    """Where the unquoted value starting at ``start`` ends, by the format it sits in."""
    stretch = _UNTIL_SPACE.match(text, start).group()
    stretch = stretch[: _balanced_length(stretch)]
    before = text[key_start - 1 : key_start]
    if before in ("?", "&") or _QUERY_STRING.search(stretch):
        stretch = _cut_at(stretch, "&")
    elif before == ";" or _CONNECTION_STRING.search(stretch):
        stretch = _cut_at(stretch, ";")
    end = len(stretch)
    while end > 1 and stretch[end - 1] in _TRAILING_PUNCTUATION:
        end -= 1
    return start + end


def _cut_at(value: str, stops: str) -> str:
    """``value`` up to the first of ``stops``."""
    for stop in stops:
        at = value.find(stop)
        if at != -1:
            value = value[:at]
    return value


def _collect_key_value(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    """``DB_PASSWORD=...``, ``"api_key": "..."``, ``password: ...``, ``?token=...&``,
    ``SecretAccessKey | ...``, and a YAML key whose value is on the lines below it."""
    key_start = m.start()
    while key_start > 0 and text[key_start - 1] in KEY_CHARS:
        key_start -= 1
    key_start = wrapped_key_start(text, key_start)
    key = text[key_start : m.end("suffix")]
    sep = m.group("sep")
    val_start = m.start("val")
    if sep in " \t" and (val_start == -1 or not key.startswith("--") or text[val_start] == "-"):
        return  # only a command-line flag takes its value after a space: --password VALUE
    if sep == "|" and not _in_table_cell(text, key_start):
        return  # "SecretAccessKey | value" is a table row; "secret | sha" in prose is not
    kind = secret_key_kind(key)
    if kind is None:
        return
    if val_start == -1:
        if sep == ":":
            _collect_next_lines(m, text, key_start, prio, kind, out)
        return
    start, end = m.span("val")
    raw = text[start:end]
    quoted = raw[:1] in "\"'"
    if quoted:
        start, end = start + 1, end - 1 if len(raw) > 1 and raw[-1] == raw[0] else end
    else:
        end = _unquoted_end(text, key_start, start)
    value = text[start:end]
    if start >= end or is_placeholder(value) or text[end : end + 1] == "<":
        return  # "hk_live_<redacted>" is a placeholder however it is cut
    if _in_arn(text, key_start):
        return  # arn:aws:secretsmanager:...:secret:name-AbCdEf names a secret, it is not one
    if _code_expression(text, m, value, end, quoted=quoted):
        return  # Python: secret = client.get_secret_value(SecretId=arn), api_key=self.api_key
    prose = sep == ":" and not m.group("q") and not _key_leads(text, key_start)
    if prose and not _looks_secret(value):  # "failed to refresh token: expired"
        return
    out.append((start, end, prio, kind))


_YAML_ENTRY = re.compile(r"[ \t]*(?:-[ \t]|#|[^\s:#\"'][^:#\n]*:(?:[ \t]|$))")
_MAX_BLOCK_LINES = 200


def _collect_next_lines(
    m: re.Match[str], text: str, key_start: int, prio: int, kind: str, out: list[Span]
) -> None:
    """``password:`` with its value on the next, deeper-indented lines (YAML), or a block
    scalar (``private_key: |``): every deeper line is redacted, line by line."""
    line_start = text.rfind("\n", 0, key_start) + 1
    column = key_start - line_start
    block = bool(m.group("block"))
    at = text.find("\n", m.end())
    lines: list[tuple[int, int]] = []
    while at != -1 and len(lines) < _MAX_BLOCK_LINES:
        start = at + 1
        at = text.find("\n", start)
        end = len(text) if at == -1 else at
        if end > start and text[end - 1] == "\r":
            end -= 1
        content = text[start:end]
        stripped = content.lstrip(" \t")
        if not stripped:
            continue  # a blank line inside a block
        indent = len(content) - len(stripped)
        if indent <= column:
            break
        if not block and not lines and _YAML_ENTRY.match(content):
            return  # a nested mapping or list: its own keys decide
        lines.append((start + indent, end))
        if not block and len(lines) == 1 and is_placeholder(stripped):
            return
    for start, end in lines:
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
_TOKEN_CHARS = KEY_CHARS | frozenset(":/")


def _in_arn(text: str, key_start: int) -> bool:
    """The key is a part of an ARN (``...:123456789012:secret:name``), even a wrapped one."""
    if _ACCOUNT_BEFORE.fullmatch(text, max(0, key_start - 14), key_start):
        return True
    line_start = text.rfind("\n", 0, key_start) + 1
    token_start = max(line_start, *(text.rfind(c, line_start, key_start) + 1 for c in " \t\"'"))
    if token_start and text[token_start - 1] == "\n":
        # a terminal may have wrapped the ARN: look at the end of the line before too
        token_start = wrapped_key_start(text, token_start, _TOKEN_CHARS)
    return "arn:" in text[token_start:key_start]


# A terminal wraps a long line at its width: only a line of such a width may have been cut
# right after a secret that looks complete on its own.
TERMINAL_WIDTHS = frozenset({80, 100, 120, 132, 140, 150, 160, 180, 200, 220, 240, 250, 256})


def wrapped_key_start(text: str, key_start: int, chars: frozenset[str] = KEY_CHARS) -> int:
    """Where a key starts when a terminal wrapped it: ``"nextBackw`` / ``ardToken": "b/3..."``."""
    if key_start == 0 or text[key_start - 1] != "\n":
        return key_start
    end = key_start - 1
    if end and text[end - 1] == "\r":
        end -= 1
    line_start = text.rfind("\n", 0, end) + 1
    if end - line_start not in TERMINAL_WIDTHS:
        return key_start
    start = end
    while start > line_start and text[start - 1] in chars:
        start -= 1
    return start if start < end else key_start


_BRACKET = re.compile(r"[()\[\]{}]")


def _balanced_length(value: str) -> int:
    """Up to the first bracket closing one the value did not open: ``Stand(token=x).start()``."""
    if not _BRACKET.search(value):
        return len(value)
    depth = 0
    for index, char in enumerate(value):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                return index
            depth -= 1
    return len(value)


def _in_table_cell(text: str, key_start: int) -> bool:
    """The key sits in a table cell: ``|  SecretAccessKey |  ...  |`` (AWS CLI table output)."""
    line_start = text.rfind("\n", 0, key_start) + 1
    return text[line_start:key_start].rstrip().endswith("|")


def _key_leads(text: str, key_start: int) -> bool:
    """The key opens its line (YAML, headers, env files, tables) or a quoted string."""
    line_start = text.rfind("\n", 0, key_start) + 1
    before = text[line_start:key_start].strip()
    return before in ("", "-", "export", "#") or before.endswith(('"', "'", "{", ",", "-H", "|"))


_WORDS = re.compile(r"(?:[A-Z]?[a-z]+)+|[A-Z]+")


def _looks_secret(value: str) -> bool:
    """Not a word: mixed letters, digits and symbols, or letters of random case."""
    if len(value) < 8:
        return False
    if value.isalpha():  # QWERTYUIOP is a password; "required" and "Expired" are words
        return value.isupper() or (len(value) >= 12 and not _WORDS.fullmatch(value))
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


_MYSQL_CONTEXT = re.compile(r"\b(?:mysql\w*|mariadb\w*)\b|(?:^|\s)-u[ \t]*\S")


def _collect_glued_password(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    """``mysql -u root -pMq7T…``: the password glued to ``-p``, in a MySQL command only."""
    if m.start() and text[m.start() - 1] not in " \t\"'":
        return
    line_start = text.rfind("\n", 0, m.start()) + 1
    if not _MYSQL_CONTEXT.search(text, line_start, m.start()):
        return  # ssh -p2222, mkdir -p, gcc -pthread
    start, end = m.span("s")
    if not is_placeholder(text[start:end]):
        out.append((start, end, prio, "password-field"))


_COOKIE_ATTRIBUTES = frozenset(
    {"path", "domain", "expires", "max-age", "samesite", "secure", "httponly", "priority"}
    | {"partitioned", "version", "comment"}
)
_COOKIE_PAIR = re.compile(r"[ \t]*([^=;,\s]+)[ \t]*=[ \t]*([^;]*)")


def _plain_setting(value: str) -> bool:
    """A cookie that holds a setting, not a session: ``theme=dark``, ``ab_test=1``."""
    return not value or value.isdigit() or (value.isalpha() and len(value) <= 12)


def _collect_cookie(m: re.Match[str], text: str, prio: int, out: list[Span]) -> None:
    """``Cookie: session=…; csrftoken=…`` and ``Set-Cookie: sid=…; Path=/``: every cookie
    value, none of the attributes; ``session_cookie=…``: the value when it looks secret."""
    start, end = m.span("s")
    header = text[start:end]
    if "=" not in header:
        value = header.split()[0] if header.split() else ""
        if _looks_secret(value) and not is_placeholder(value):
            out.append((start, start + len(value), prio, "cookie"))
        return
    for pair in _COOKIE_PAIR.finditer(header):
        name, value = pair.group(1), pair.group(2).rstrip()
        if name.lower() in _COOKIE_ATTRIBUTES or _plain_setting(value) or is_placeholder(value):
            continue
        out.append((start + pair.start(2), start + pair.start(2) + len(value), prio, "cookie"))


def _rule(kind: str, keywords: Iterable[str], pattern: str, **options: Any) -> Rule:
    flags = re.DOTALL if options.pop("dotall", False) else 0
    collect = options.pop("collect", None) or _whole(kind)
    return Rule(kind, tuple(keywords), re.compile(pattern, flags), collect=collect, **options)


# After a key noun ("password", "api_key", "token"), closing the key: quote, separator, value
# (quoted, unquoted, or on the next lines when the line ends after the separator).
_KEY_VALUE = (
    r"(?:word|wd|phrase|s)?(?P<suffix>)(?P<q>\\?[\"'])?[ \t]*"
    r"(?P<sep>=>|:=|=|:|\||(?<=[a-z])[ \t])[ \t]*"
    r"(?:(?P<val>\"(?:[^\"\\\n]|\\.)*\"?|'[^'\n]*'?|[^\s\"'`<>|&;,][^\s\"'`<>&;,]*)"
    r"|(?P<block>[|>][-+]?[1-9]?)?[ \t]*(?=\r?\n))"
)
# The key nouns, each with the keys it ends that are never secret, refused inside the pattern
# (lookbehinds after the noun keep the literal-prefix search): an ARN's ":secret:" and the
# pagination cursors are the most common matches in real logs.
_KEY_NOUNS = (
    ("pass", ""),
    ("pwd", ""),
    ("secret", "(?<!:secret)"),
    (
        "token",
        "(?<!nexttoken)(?<!next_token)(?<!page_token)(?<!continuationtoken)(?<!forwardtoken)"
        "(?<!backwardtoken)",
    ),
    ("key", ""),
    ("credential", ""),
)
_B64 = r"[A-Za-z0-9/+]"
_B64_URL = r"(?:[A-Za-z0-9/+=]|%2[BbFf]|%3[Dd])"
_END = r"(?![A-Za-z0-9])"
_AWS_SEPARATOR = r"[ \t,;:|/=\"']+"

RULES: tuple[Rule, ...] = (
    _rule(
        "private-key",
        ["-----BEGIN"],
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----"
        r"(?:.{0,8192}?-----END[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|(?:(?:\r?\n|\\r?\\n)"
        r"(?:[A-Za-z0-9+/=]{16,}(?=\r?\n|\\n|$)|(?:Proc-Type|DEK-Info):[^\n\\]*)?)*)",
        dotall=True,
        bounded=False,
    ),
    _rule(
        "hokusai-api-key",
        ["hk_live_", "hk_test_"],
        r"hk_(?:live|test)_[A-Za-z0-9]{32}" + _END,
        bounded=False,
    ),
    _rule(
        "aws-access-key-id",
        ["AKIA", "ASIA"],
        r"A[KS]IA[A-Z0-9]{16}(?![A-Za-z0-9])(?:(?:"
        + _AWS_SEPARATOR
        + r"[^\s,;|\"'/=]{1,40}){0,2}?"
        + _AWS_SEPARATOR
        + r"(?P<s>"
        + _B64
        + r"{40})(?![A-Za-z0-9/+=]))?",
        bounded=False,
        collect=_collect_aws_key_pair,
    ),
    _rule(
        "password-field",
        ["-u"],
        r"-u(?:ser)?[ \t=]+[\"']?[^\s:\"'@/]+:(?P<s>[^\s\"']+)",
        shaped=False,
        collect=_value("password-field"),
    ),
    _rule(
        "password-field",
        ["-p"],
        r"-p[\"']?(?P<s>[^\s\"'=][^\s\"']*)",
        bounded=False,
        shaped=False,
        collect=_collect_glued_password,
    ),
    _rule(
        "aws-session-token",
        ["IQoJb3JpZ2lu"],
        r"IQoJb3JpZ2lu" + _B64_URL + r"{40,}",
        bounded=False,
    ),
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
        bounded=False,
    ),
    _rule("slack-token", ["xapp-"], r"xapp-\d-[A-Za-z0-9-]{10,}", bounded=False),
    _rule(
        "github-token",
        ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        r"gh[pousr]_[A-Za-z0-9]{36,}",
        bounded=False,
    ),
    _rule("github-token", ["github_pat_"], r"github_pat_[A-Za-z0-9_]{22,}", bounded=False),
    _rule(
        "linear-api-key",
        ["lin_api_", "lin_oauth_"],
        r"lin_(?:api|oauth)_[A-Za-z0-9]{30,}",
        bounded=False,
    ),
    _rule(
        "openai-api-key",
        ["sk-", "sk_live_", "sk_test_"],
        # one scan for the three vendors whose keys start "sk"; the group names the vendor
        r"sk(?:(?P<anthropic>-ant-(?:api|admin|oat|sid)\d\d-[A-Za-z0-9_\-]{20,})"
        r"|(?P<stripe>_(?:live|test)_[A-Za-z0-9]{16,})"
        r"|-(?:proj-|svcacct-|admin-|None-)?(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Z])"
        r"[A-Za-z0-9_\-]{32,})",
        bounded=False,
        collect=_collect_sk_key,
    ),
    _rule(
        "stripe-key", ["rk_live_", "rk_test_"], r"rk_(?:live|test)_[A-Za-z0-9]{16,}", bounded=False
    ),
    _rule("stripe-key", ["whsec_"], r"whsec_[A-Za-z0-9+/=]{24,}", bounded=False),
    _rule("google-api-key", ["AIza"], r"AIza[0-9A-Za-z_\-]{35}", bounded=False),
    _rule("google-oauth-secret", ["GOCSPX-"], r"GOCSPX-[A-Za-z0-9_\-]{20,}", bounded=False),
    _rule("google-oauth-token", ["ya29."], r"ya29\.[0-9A-Za-z_\-]{20,}", bounded=False),
    _rule("huggingface-token", ["hf_"], r"hf_[A-Za-z0-9]{30,}"),
    _rule("npm-token", ["npm_"], r"npm_[A-Za-z0-9]{36}" + _END),
    _rule("pypi-token", ["pypi-AgE"], r"pypi-AgE[A-Za-z0-9_\-]{50,}", bounded=False),
    _rule(
        "sendgrid-key",
        ["SG."],
        r"SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}",
        bounded=False,
    ),
    _rule("gitlab-token", ["glpat-"], r"glpat-[A-Za-z0-9_\-]{20,}", bounded=False),
    _rule("databricks-token", ["dapi"], r"dapi[a-f0-9]{32}(?:-\d+)?" + _END),
    _rule(
        "datadog-key",
        ["dd_", "dd-"],
        r"dd[_-](?:api|app|application)[_-]?key[\"']?[ \t]*[:=][ \t]*[\"']?"
        r"(?P<s>[a-f0-9]{32,40})(?![a-z0-9])",
        lower=True,
    ),
    _rule(
        "url-password",
        ["://"],
        # one scan for the two secrets a URL's user part holds: a Sentry DSN key, a password
        r"://(?:(?P<dsn>[a-f0-9]{32}(?::[a-f0-9]{32})?)@"
        r"|[^\s:/@\"'<>]*:(?P<s>[^\s\"'<>/]*|(?!\d+/)[^\s\"'<>]*?)@(?=[A-Za-z0-9\[]))",
        bounded=False,
        collect=_collect_url_secret,
    ),
    _rule(
        "jwt",
        ["eyJ"],
        r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
        bounded=False,
    ),
    _rule(
        "cookie",
        ["cookie"],
        r"cookie\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?(?P<s>[^\n\"'\\]+)",
        lower=True,
        bounded=False,
        shaped=False,
        collect=_collect_cookie,
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
            noun + not_after + _KEY_VALUE,
            lower=True,
            bounded=False,
            shaped=False,
            collect=_collect_key_value,
        )
        for noun, not_after in _KEY_NOUNS
    ),
)
