"""Values that stand in for a secret: shown as they are, never redacted.

The whole list is here, on purpose short and explicit. A value under a secret-like key that is
none of these is a secret, whatever its case or wording (``QWERTYUIOP``, ``HUNTER_2_PROD`` and
``myexamplepw-9f8a7c`` are passwords):

- no value: empty or shorter than three characters;
- one repeated placeholder character (``x``, ``*``, ``.``, ``#``, ``-``, ``_``, ``•``),
  optionally around a few shown ones: ``xxxx``, ``****``, ``****WXYZ``, ``...`` (not digits
  or other letters: ``hk_live_0000…`` may be a generated key);
- a template or reference: ``<token>``, ``${DB_PASSWORD}``, ``$(cat /run/x)``, ``{{ secret }}``,
  ``$DB_PASSWORD``, ``%(password)s``, ``{password}``, a redaction marker, an ARN;
- a whole value made only of placeholder words: ``changeme``, ``password``, ``secret``,
  ``dummy``, ``test``, ``your-api-key-here``, ``YOUR_TOKEN``, ``none``, ``expired``;
- AWS's documented example keys (access key ids ending ``EXAMPLE``, secret keys ending
  ``EXAMPLEKEY``);
- any of these after a vendor prefix: ``hk_live_xxxxxxxx…``, ``xoxb-your-bot-token``,
  ``hk_live_<redacted>``.

Example::

    placeholder_kind("changeme") == "word"
    placeholder_kind("${DB_PASSWORD}") == "template"
    placeholder_kind("HUNTER_2_PROD") is None
"""

from __future__ import annotations

import functools
import re

# Words a placeholder is made of. A value counts only when every word in it is one of these.
PLACEHOLDER_WORDS = frozenset(
    """
    changeme change me password passwd pass pw pwd passphrase secret secrets dummy test testing
    example sample placeholder fake foo bar baz qux your here goes value key keys token tokens
    api apikey bot app user username access client private auth default insert put replace todo
    tbd none null nil undefined true false empty unset notset not set redacted hidden masked
    sensitive string str xxx expired invalid valid missing required revoked present absent ok
    rotated refreshed
    """.split()  # noqa: SIM905 - a block of words reads better than a list of 80 strings
)

_TEMPLATE = re.compile(
    r"""
    <[^<>]*> | .*<[a-z_ -]+> | \$\{[^}]*\}? | \$\([^)]*\)? | \{\{.*\}\}? | \{[\w.\[\]'"]*\}
    | \$[A-Z_][A-Z0-9_]* | %\([a-z_]+\)s | \[redacted[^\]]*\]? | \((?:hidden|redacted|sensitive)\)
    | arn:\S*
    """,
    re.VERBOSE,
)
_MASKED = re.compile(r"([xX*.#•_-])\1{2,}|\*{3,}[^*]{0,6}|[^*]{0,6}\*{3,}")
_AWS_EXAMPLE = re.compile(r"A[KS]IA[A-Z0-9]{9}EXAMPLE|[A-Za-z0-9/+]{30}EXAMPLEKEY")
# Vendor prefixes a placeholder may keep: what follows them decides.
_VENDOR_PREFIX = re.compile(
    r"hk_(?:live|test)_|xox[a-z](?:-|\b)|xapp-|gh[pousr]_|github_pat_|lin_(?:api|oauth)_"
    r"|sk-(?:proj-|ant-(?:api|admin)\d\d-)?|[sr]k_(?:live|test)_|whsec_|glpat-|npm_|hf_|AIza"
    r"|pypi-|dapi|SG\.|A[KS]IA(?=[^A-Z0-9]|$)"
)
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_WORDS_ONLY = re.compile(r"[A-Za-z_. /:-]+")


@functools.lru_cache(maxsize=8192)
def placeholder_kind(value: str) -> str | None:
    """Why ``value`` is a placeholder (``empty``, ``masked``, ``template``, ``word``,
    ``aws-example``), or None when it may be a real secret."""
    value = value.strip().strip("\"'`")
    if len(value) < 3:
        return "empty"
    if _TEMPLATE.fullmatch(value):
        return "template"
    if _AWS_EXAMPLE.fullmatch(value):
        return "aws-example"
    prefix = _VENDOR_PREFIX.match(value)
    rest = value[prefix.end() :] if prefix else value
    if prefix and _TEMPLATE.fullmatch(rest):
        return "template"
    rest = rest.rstrip(".…")
    if not rest or _MASKED.fullmatch(rest):
        return "masked"
    if _only_placeholder_words(rest):
        return "word"
    return None


def _only_placeholder_words(value: str) -> bool:
    if not _WORDS_ONLY.fullmatch(value):
        return False  # digits and symbols: a placeholder is words only
    words = _WORD.findall(value)
    return bool(words) and all(word.lower() in PLACEHOLDER_WORDS for word in words)


def is_placeholder(value: str) -> bool:
    """True for values that stand in for a secret: ``${DB_PASSWORD}``, ``<token>``, ``****``,
    ``changeme``; False for anything that may be a real one."""
    return placeholder_kind(value) is not None


def shown_placeholder(value: str) -> bool:
    """A placeholder a responder should be told about: a configured secret that was never set
    (``changeme``, ``xxxx``, ``<your key>``, an AWS example key) — not an empty value and not
    a reference to where the secret lives (an ARN, ``${VAR}``)."""
    kind = placeholder_kind(value)
    if kind in ("word", "masked", "aws-example"):
        return True
    stripped = value.strip()
    return kind == "template" and stripped.startswith("<") and stripped.endswith(">")
