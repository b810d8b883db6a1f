"""The redactor: finds every span a rule of ``bot.redaction.rules`` matches and replaces it.

A secret is replaced by a marker that says what it was, ``[redacted:aws-secret-key]``, so the
evidence still reads; identifiers a responder needs (ARNs, UUIDs, SHAs, image digests, task,
run, request and trace ids, pagination tokens, hostnames, timestamps) are left alone.

Where the engine looks:

- **plain text**: every rule's pattern starts with one of its keywords (``hk_``, ``AKIA``,
  ``xox``, ``://``, ``password``...), and a rule only runs where its keyword occurs. The
  keywords are found in one Hyperscan pass where it is installed (``prefilter``), else by
  each rule's own regex search (the engine's literal-prefix search). One combined regex
  alternation measured ~10 times slower and lets a generic rule swallow what a specific one
  should have matched;
- **escaped text**: lines holding URL or JSON escapes are decoded (again and again, for
  text escaped several times over) and scanned as one batch; matches map back through the
  decoding;
- **base64**: tokens of 16 or more base64 characters that decode to text are decoded once and
  scanned as one batch; a token whose text holds a secret is redacted whole;
- **line breaks**: a secret soft-wrapped by a terminal, or split across two log events, is
  found by joining the two line ends.

Every marker stays on its own line, so the number of lines never changes.

Example::

    redactor = Redactor(known_secrets=[settings_token])
    redactor.redact_text("curl -H 'Authorization: Bearer abc123...'")
    redactor.redact_parts([event["message"] for event in events])
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
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

from bot.mrkdwn import plain
from bot.redaction.placeholders import is_placeholder
from bot.redaction.prefilter import keyword_scanner
from bot.redaction.rules import (
    KNOWN_SECRET,
    MARKER,
    RULES,
    TERMINAL_WIDTHS,
    Rule,
    Span,
    left_ok,
    lowered,
    secret_key_kind,
)

_MARKER_ONLY = re.compile(r"\[redacted:[a-z-]+\]")
_ALL_RULES = tuple(enumerate(RULES))  # (priority, rule): the earlier rule wins an overlap
_SHAPED_RULES = tuple((prio, rule) for prio, rule in _ALL_RULES if rule.shaped)
_KEYWORDS = keyword_scanner([r.keywords for r in RULES], [r.lower for r in RULES])
_RULE_SETS = {id(rules): frozenset(p for p, _ in rules) for rules in (_ALL_RULES, _SHAPED_RULES)}
_LINE = re.compile(r"[^\n]*\n|[^\n]+")


# --- Batches ---------------------------------------------------------------------------------


class _Batch:
    """Pieces of text scanned as one string (joined by line breaks), so that every rule runs
    once over all of them; ``locate`` tells which piece a match fell in."""

    def __init__(self, pieces: Sequence[str]) -> None:
        self.pieces = pieces
        self.text = "\n".join(pieces)
        self._offsets = []
        at = 0
        for piece in pieces:
            self._offsets.append(at)
            at += len(piece) + 1

    def locate(self, start: int, end: int) -> tuple[int, int, int] | None:
        """``(piece index, start, end)`` within that piece; None for a match that runs from one
        piece into the next (an artefact of batching)."""
        index = bisect.bisect_right(self._offsets, start) - 1
        base = self._offsets[index]
        if end - base > len(self.pieces[index]):
            return None
        return index, start - base, end - base


# --- Escapes ---------------------------------------------------------------------------------

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|\\(?:u[0-9A-Fa-f]{4}|[\\/\"'bfnrt])")
_JSON_SIMPLE = {"\\": "\\", "/": "/", '"': '"', "'": "'", "b": "\b", "f": "\f", "n": "\n"}
_JSON_SIMPLE.update({"r": "\r", "t": "\t"})
# Each level of JSON escaping doubles the backslashes; past this many levels a line is noise.
_MAX_ESCAPE_DEPTH = 8
# Characters around the escapes of a line that are decoded with them (a key and its value).
_ESCAPE_CONTEXT = 160

_ESCAPE_SPLIT = re.compile(f"({_ESCAPE.pattern})")


@functools.lru_cache(maxsize=1024)
def _unescape(escape: str) -> str:
    if escape[0] == "%":
        return chr(int(escape[1:], 16))
    if escape[1] == "u":
        return chr(int(escape[2:], 16))
    return _JSON_SIMPLE[escape[1]]


def _decode_escapes(text: str) -> tuple[str, list[str]]:
    """URL- and JSON-unescape ``text`` once. Also returns its parts — literal text and escapes
    taking turns — which ``_map_back`` reads to find a decoded range in ``text``."""
    parts = _ESCAPE_SPLIT.split(text)
    decoded = parts[:]
    decoded[1::2] = [_unescape(escape) for escape in parts[1::2]]
    return "".join(decoded), parts


def _map_back(parts: list[str], start: int, end: int) -> tuple[int, int]:
    """The source range of the decoded range ``start:end``; an escape is taken whole."""
    src = dst = 0
    src_start = -1
    for index, part in enumerate(parts):
        literal = index % 2 == 0
        decoded_length = len(part) if literal else 1
        if src_start == -1 and start < dst + decoded_length:
            src_start = src + (start - dst if literal else 0)
        if end <= dst + decoded_length:
            return src_start, src + (end - dst if literal else len(part))
        src += len(part)
        dst += decoded_length
    return max(src_start, 0), src


# --- Base64 ----------------------------------------------------------------------------------

_BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_MAX_BASE64 = 1 << 16
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


def _base64_text(token: str) -> str | None:
    """The text a base64 or base64url token encodes, or None when it is no encoded text.

    Cheap refusals first: hex ids, words and paths (one letter case only), impossible lengths,
    mixed alphabets; then the bytes must be UTF-8 text without control characters.
    """
    body = token.rstrip("=")
    if len(body) % 4 == 1 or len(body) > _MAX_BASE64:
        return None
    urlsafe = "-" in body or "_" in body
    if urlsafe and ("+" in body or "/" in body):
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        raw = (
            base64.urlsafe_b64decode(padded) if urlsafe else base64.b64decode(padded, validate=True)
        )
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if _CONTROL.search(decoded):
        return None
    return decoded


# --- Line breaks -----------------------------------------------------------------------------

# Characters a secret (or a key=value pair holding one) can be made of; a run of them on both
# sides of a line break is where a soft wrap may have split a secret.
_WRAP_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/=.%~:@!*#$^&?,;\\"
_WRAP_SET = frozenset(_WRAP_CHARS)
_WRAP_CONTEXT = 64  # characters before the tail token that may hold its key ("password=")
# A line that opens a record of its own (a timestamp, an address, a level) continues nothing.
_NEW_RECORD = (
    r"\d{4}[-/]\d\d[-/]\d\d|\d\d:\d\d:\d\d|\d{1,3}(?:\.\d{1,3}){3}"
    r"|(?:DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL|TRACE|https?|h2|wss?)\b"
)
_WRAP_CLASS = "[" + "".join(re.escape(c) for c in _WRAP_CHARS) + "]"
# A line break followed by secret characters that do not open a new record (the line before
# must end in secret characters too: checked apart, as a lookbehind would cost a test at
# every character instead of a search for line breaks).
_JOINT = re.compile(r"\n(?!" + _NEW_RECORD + ")(?=" + _WRAP_CLASS + ")")


@dataclass(frozen=True)
class _Joint:
    """A line break with secret characters on both sides, where a secret may have been split.

    The candidate text is the end of the first line — its last token plus up to
    ``_WRAP_CONTEXT`` characters before it, where a key such as ``password=`` may sit —
    followed directly by the token that opens the next line.
    """

    window_start: int  # where the candidate starts on the first line
    line_end: int  # end of the first line (before its "\r\n" or "\n")
    head_start: int  # start of the next line
    head_end: int  # end of the token opening the next line
    piece_end: int  # head_end, plus a closing quote right after it
    cut_for_sure: bool  # a terminal-wide line, or a known boundary between two parts

    def piece(self, text: str) -> str:
        return text[self.window_start : self.line_end] + text[self.head_start : self.piece_end]

    @property
    def join(self) -> int:
        """Where the line break sits in ``piece``."""
        return self.line_end - self.window_start


def _joints(text: str, boundaries: Collection[int] = ()) -> Iterator[_Joint]:
    """Every line break of ``text`` that may have split a secret.

    ``boundaries`` are line ends known to cut one piece of text in two (log events).
    """
    for m in _JOINT.finditer(text):
        newline, head_start = m.span()
        line_end = newline - 1 if newline and text[newline - 1] == "\r" else newline
        if not line_end or text[line_end - 1] not in _WRAP_SET:
            continue
        line_start = text.rfind("\n", 0, line_end) + 1
        line = text[line_start:line_end]
        next_newline = text.find("\n", head_start)
        head_line = text[head_start : len(text) if next_newline == -1 else next_newline]
        tail = len(line) - len(line.rstrip(_WRAP_CHARS))
        head_end = head_start + len(head_line) - len(head_line.lstrip(_WRAP_CHARS))
        closing = text[head_end : head_end + 1]
        yield _Joint(
            window_start=max(line_start, line_end - tail - _WRAP_CONTEXT),
            line_end=line_end,
            head_start=head_start,
            head_end=head_end,
            piece_end=head_end + 1 if closing and closing in "\"'" else head_end,
            cut_for_sure=len(line) in TERMINAL_WIDTHS or newline in boundaries,
        )


# --- Secrets cut at the end of a part ------------------------------------------------------

# The start of a vendor key, cut off by the end of a log event or part before its format is
# complete ("hk_live_Mq7Tx9" — the rest went into the next event, which may never be read).
# Only used at the known ends of parts: there, a key's start is all that is left to hide.
_CUT_KEY = re.compile(
    r"(?P<key>(?:hk_(?:live|test)_|xox[abposre]-|xapp-|gh[pousr]_|github_pat_|lin_(?:api|oauth)_"
    r"|sk-ant-|sk-proj-|[sr]k_(?:live|test)_|whsec_|glpat-|AIza|GOCSPX-|ya29\.|IQoJb3JpZ2lu"
    r"|pypi-AgE|eyJ[A-Za-z0-9_-]{8,}\.|(?<![A-Za-z0-9])(?:A[KS]IA|dapi|hf_|npm_|SG\.))"
    r"[A-Za-z0-9_\-.+/=]+"
    r"|://[^\s:/@\"'<>]*:(?P<userinfo>[^\s\"'<>/@]+))\Z"
)
_CUT_KINDS = (
    ("hk_", "hokusai-api-key"),
    ("xox", "slack-token"),
    ("xapp-", "slack-token"),
    ("gh", "github-token"),
    ("lin_", "linear-api-key"),
    ("sk-ant-", "anthropic-api-key"),
    ("sk-", "openai-api-key"),
    ("AKIA", "aws-access-key-id"),
    ("ASIA", "aws-access-key-id"),
    ("IQoJ", "aws-session-token"),
    ("eyJ", "jwt"),
)
_CUT_CONTEXT = 256


_SPACE = re.compile(r"\s")


def _cut_key_span(text: str, end: int) -> Span | None:
    """The start of a key (or a URL's password) that ``text[:end]`` ends in, if any."""
    floor = max(0, end - _CUT_CONTEXT)
    # Every form _CUT_KEY finds is unbroken by whitespace and ends at ``end``: search only the
    # run of non-space characters ending there (found backwards), not all 256 positions
    # before it, each of which the end-anchored pattern would try in turn.
    space = _SPACE.search(text[floor:end][::-1])
    start = end - space.start() if space else floor
    m = _CUT_KEY.search(text, start, end)
    if m is None:
        return None
    if m.group("userinfo"):
        return (m.start("userinfo"), end, len(RULES), "url-password")
    key = m.group("key")
    kind = next((kind for prefix, kind in _CUT_KINDS if key.startswith(prefix)), "secret-part")
    return (m.start(), end, len(RULES), kind)


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

    # -- text --

    def redact_text(self, text: str) -> str:
        """Return ``text`` with every secret replaced by its marker, line count unchanged."""
        if len(text) < 6:  # shorter than any secret this redactor knows
            return text
        spans = self._spans(text)
        return _apply(text, spans) if spans else text

    def redact_parts(self, parts: Sequence[str], *, split: bool = True) -> list[str]:
        """Redact consecutive pieces of one stream (log events, a list of lines) together.

        The pieces are joined with line breaks and redacted as one text, so a secret logged
        across several of them — a private key one line per event, a key cut in two — is
        caught; then the text is cut back into as many pieces, each with its own lines.
        ``split``: the pieces may cut a line anywhere (log events), so a secret ending one
        piece may go on in the next, and the start of a vendor key ending a piece is redacted
        even when the piece with its rest is missing; otherwise only the wraps a terminal
        makes are joined.
        """
        if not parts:
            return []
        text = "\n".join(parts)
        boundaries: set[int] = set()
        at = -1
        for part in parts:
            at += len(part) + 1
            boundaries.add(at)  # the line break after each part; the end of the text
        spans = self._spans(text, boundaries if split else ())
        if not spans:
            return list(parts)
        lines = _apply(text, spans).split("\n")
        out = []
        first = 0
        for part in parts:
            count = part.count("\n") + 1
            out.append("\n".join(lines[first : first + count]))
            first += count
        return out

    def redact_lines(self, lines: Iterable[str], chunk_chars: int = 1 << 18) -> Iterator[str]:
        """Redact a stream of lines, yielding exactly one line out for each line in."""
        for chunk in self.redact_chunks(lines, chunk_chars):
            yield from _LINE.findall(chunk)

    def redact_chunks(self, lines: Iterable[str], chunk_chars: int = 1 << 18) -> Iterator[str]:
        """Redact a stream of lines a chunk of whole lines at a time, yielding each chunk's text
        (as many lines as went in).

        Chunks are redacted with one line of context on each side, so a secret soft-wrapped
        across a chunk boundary is still caught; a private key block is never split between
        chunks.
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
            yield self._redact_block(previous, block, lookahead)
            previous = block[-1]
            block, size = [lookahead], len(lookahead)
        if block:
            yield self._redact_block(previous, block, None)

    def _redact_block(self, previous: str | None, block: list[str], lookahead: str | None) -> str:
        """The redacted text of ``block``, read with the line before and the line after it."""
        head = previous if previous is not None and previous.endswith("\n") else ""
        body = "".join(block)
        text = head + body + (lookahead or "")
        redacted = self.redact_text(text)
        if redacted == text:
            return body
        # Markers never hold a line break, so the context lines are the first and the last.
        start = redacted.index("\n") + 1 if head else 0
        end = len(redacted)
        if lookahead:
            last_break = end - 1 if lookahead.endswith("\n") else end
            end = redacted.rindex("\n", 0, last_break) + 1
        return redacted[start:end]

    # -- structured data --

    def redact(self, value: Any) -> Any:
        """Redact strings anywhere inside dicts, lists and tuples; other values pass.

        A value under a secret-like key (``password``, ``api_key``, ``Authorization``, not
        ``token_type`` or ``nextToken``) is replaced whole; so is the ``value`` of an ECS
        environment entry whose ``name`` is secret-like. A list of strings is redacted as one
        text (``redact_parts``), so lines of a key or a wrapped token are caught together.
        """
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return self._redact_mapping(value)
        if isinstance(value, (list, tuple)):
            if len(value) > 1 and all(isinstance(v, str) for v in value):
                items: list[Any] = self.redact_parts(value, split=False)
            else:
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

    def _spans(self, text: str, boundaries: Collection[int] = ()) -> list[Span]:
        spans = self._scan(text)
        if "\n" in text:
            spans.extend(self._wrapped_spans(text, spans, boundaries))
        for end in boundaries:
            end = end - 1 if end and text[end - 1] == "\r" else end
            cut = _cut_key_span(text, end)
            if cut is not None:
                spans.append(cut)
        return spans

    def _scan(self, text: str, *, decode_base64: bool = True, depth: int = 1) -> list[Span]:
        """Spans in ``text`` as it is, in its escaped lines decoded, and in its base64 tokens
        decoded (once: not inside text that already came out of base64)."""
        spans = self._plain_spans(text)
        if depth <= _MAX_ESCAPE_DEPTH and ("%" in text or "\\" in text):
            spans.extend(self._escaped_spans(text, decode_base64=decode_base64, depth=depth))
        if decode_base64:
            spans.extend(self._base64_spans(text))
        return spans

    def _plain_spans(self, text: str, rules: Sequence[tuple[int, Rule]] = _ALL_RULES) -> list[Span]:
        hits = _KEYWORDS.hits(text) if _KEYWORDS is not None else None
        spans = (
            self._rule_spans(text, rules) if hits is None else self._hit_spans(text, hits, rules)
        )
        for form in self._known_forms:
            at = text.find(form)
            while at != -1:
                spans.append((at, at + len(form), -1, KNOWN_SECRET))
                at = text.find(form, at + len(form))
        return spans

    def _rule_spans(self, text: str, rules: Sequence[tuple[int, Rule]]) -> list[Span]:
        """Each rule searched on its own: its pattern starts with its keyword, so the regex
        engine's literal-prefix search is the keyword scan."""
        spans: list[Span] = []
        low: str | None = None
        for prio, rule in rules:
            if rule.lower:
                if low is None:
                    low = lowered(text)
                hay = low
            else:
                hay = text
            collect = rule.collect
            for m in rule.pattern.finditer(hay):
                if rule.bounded and not left_ok(text, m.start()):
                    continue
                collect(m, text, prio, spans)
        return spans

    def _hit_spans(
        self, text: str, hits: list[tuple[int, int]], rules: Sequence[tuple[int, Rule]]
    ) -> list[Span]:
        """Each rule tried only where the prefilter found its keyword. As with a search, a
        rule's next match starts after its previous one ends."""
        spans: list[Span] = []
        low: str | None = None
        wanted = _RULE_SETS.get(id(rules)) or frozenset(prio for prio, _ in rules)
        resume = [0] * len(RULES)
        for prio, start in hits:
            if prio not in wanted or start < resume[prio]:
                continue
            rule = RULES[prio]
            if rule.lower:
                if low is None:
                    low = lowered(text)
                m = rule.pattern.match(low, start)
            else:
                m = rule.pattern.match(text, start)
            if m is None:
                continue
            resume[prio] = max(m.end(), start + 1)
            if rule.bounded and not left_ok(text, start):
                continue
            rule.collect(m, text, prio, spans)
        return spans

    def _escaped_spans(self, text: str, *, decode_base64: bool, depth: int) -> list[Span]:
        """Secrets in lines holding URL or JSON escapes, found by decoding those lines.

        The decoded lines are scanned as one batch — and decoded again while escapes remain,
        for text escaped several times over; matches map back through each decoding.
        """
        lines: list[tuple[int, int]] = []
        m = _ESCAPE.search(text)
        while m:
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            line_end = len(text) if line_end == -1 else line_end
            # Only the stretch of the line around its escapes can hold a secret that needs
            # decoding to be seen; the rest was scanned as it is.
            last = max(text.rfind("%", m.start(), line_end), text.rfind("\\", m.start(), line_end))
            start = max(line_start, m.start() - _ESCAPE_CONTEXT)
            end = min(line_end, last + 6 + _ESCAPE_CONTEXT)
            lines.append((start, end))
            m = _ESCAPE.search(text, line_end)
        decoded = [_decode_escapes(text[start:end]) for start, end in lines]
        batch = _Batch([line for line, _ in decoded])
        found = self._scan(batch.text, decode_base64=decode_base64, depth=depth + 1)
        spans: list[Span] = []
        for start, end, prio, kind in found:
            where = batch.locate(start, end)
            if where is None:
                continue
            index, start, end = where
            src_start, src_end = _map_back(decoded[index][1], start, end)
            line_start = lines[index][0]
            spans.append((line_start + src_start, line_start + src_end, prio, kind))
        return spans

    def _base64_spans(self, text: str) -> list[Span]:
        """Base64 tokens whose decoded text holds a secret, each redacted whole.

        Only tokens that decode to text are candidates, and they are decoded once: a secret
        base64-encoded twice is noise to this scan.
        """
        tokens: list[tuple[int, int]] = []
        decoded: list[str] = []
        at = 0
        # findall and str.find are much cheaper than a match object per token, and most
        # tokens (hex ids, words, paths) are refused on their letter case alone.
        for token in _BASE64_TOKEN.findall(text):
            if token.islower() or token.isupper():
                continue  # hex ids, words, paths: base64 of text mixes letter cases
            # Every token of mixed case moves the cursor, and one of a single case cannot hold
            # this one: the first occurrence after the cursor is this token.
            start = text.find(token, at)
            at = start + len(token)
            plain = _base64_text(token)
            if plain is not None:
                tokens.append((start, at))
                decoded.append(plain)
        if not decoded:
            return []
        batch = _Batch(decoded)
        found = self._scan(batch.text, decode_base64=False)
        best: dict[int, tuple[int, str]] = {}
        for start, end, prio, kind in found:
            where = batch.locate(start, end)
            if where is not None and prio < best.get(where[0], (len(RULES), ""))[0]:
                best[where[0]] = (prio, kind)
        return [(*tokens[index], prio, kind) for index, (prio, kind) in best.items()]

    def _wrapped_spans(
        self, text: str, found: list[Span], boundaries: Collection[int] = ()
    ) -> list[Span]:
        """Secrets split across a line break (a terminal's soft wrap, two log events).

        Every joint's candidate — the end of one line joined to the start of the next — is
        scanned in a batch with the others. A match counts when it straddles the join, and:

        - a shaped secret (a format that proves itself) that was not already found whole
          at the end of the first line counts anywhere;
        - one already found whole there, or a value judged only by its key
          (``password=...``), counts only where the line was surely cut — it is exactly as
          wide as a terminal, or it ends a log event — and only if the match takes the whole
          first token of the next line (or stops at a separator inside it).

        Both halves are redacted, each on its own line.
        """
        sure: list[_Joint] = []
        maybe: list[_Joint] = []
        for joint in _joints(text, boundaries):
            (sure if joint.cut_for_sure else maybe).append(joint)
        found_whole = {(end, prio) for _, end, prio, _ in found}
        # Where the line was not surely cut only a self-evident secret can count: those
        # joints are scanned with the shaped rules alone.
        spans = self._joined_spans(text, sure, found_whole, self._scan)
        shaped_only = functools.partial(self._plain_spans, rules=_SHAPED_RULES)
        spans += self._joined_spans(text, maybe, found_whole, shaped_only)
        return spans

    def _joined_spans(
        self,
        text: str,
        joints: list[_Joint],
        found_whole: set[tuple[int, int]],
        scan: Callable[[str], list[Span]],
    ) -> list[Span]:
        if not joints:
            return []
        batch = _Batch([joint.piece(text) for joint in joints])
        spans: list[Span] = []
        for start, end, prio, kind in scan(batch.text):
            where = batch.locate(start, end)
            if where is None:
                continue
            index, start, end = where
            joint = joints[index]
            if not start < joint.join < end:
                continue  # the match does not cross the line break
            head_stop = joint.head_start + end - joint.join
            self_evident = prio < 0 or RULES[prio].shaped
            if (joint.line_end, prio) in found_whole or not self_evident:
                takes_head = head_stop >= joint.head_end or text[head_stop] in "&;,"
                if not (joint.cut_for_sure and takes_head):
                    continue
            spans.append((joint.window_start + start, joint.line_end, prio, kind))
            spans.append((joint.head_start, min(head_stop, joint.head_end), prio, kind))
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
    """A logging filter that redacts each record's message, arguments and traceback text
    (and writes the bot's own Slack mentions and links as plain text)."""

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.redactor or default_redactor()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = plain(redactor.redact_text(message))
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
