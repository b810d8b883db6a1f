"""The keyword prefilter: where each rule's keyword occurs, found in one pass.

Every rule's pattern starts with a literal keyword (``hk_``, ``AKIA``, ``://``, ``password``).
Without help, the engine finds them with one regex search per rule, about forty passes over
the text. Where Hyperscan is installed (its wheels exist for Linux on x86-64; pyproject asks
for it there) one pass finds every keyword of every rule, and the engine runs a rule's pattern
only where its keyword is — half the CPU of the forty passes on the bench corpus. Elsewhere,
``keyword_hits`` answers None and the engine searches rule by rule, with the same results.

Hyperscan scans bytes: the text is encoded one byte per character (Latin-1, anything beyond as
``?``), so byte offsets are character offsets; the keywords are ASCII, so nothing they match
is lost. Keywords of the case-insensitive rules match without case, as the engine's
lower-cased text does — except for the Kelvin sign, the one non-ASCII character that lower-
cases to an ASCII letter: text holding it is left to the rule-by-rule search.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

try:  # an optional speed-up: the engine is complete without it
    import hyperscan
except ImportError:  # pragma: no cover - exercised where no wheel exists
    hyperscan = None

_KELVIN = "\u212a"


class KeywordScanner:
    """One Hyperscan database of the rules' keywords.

    Args:
        keywords: per rule, the literals a match of it starts with (every match starts with
            one of them).
        caseless: per rule, whether it matches the lower-cased text.
    """

    def __init__(self, keywords: Sequence[Sequence[str]], caseless: Sequence[bool]) -> None:
        literals = [(rule, k) for rule, ks in enumerate(keywords) for k in dict.fromkeys(ks)]
        self._rules = [rule for rule, _ in literals]
        self._lengths = [len(k) for _, k in literals]
        self._local = threading.local()
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._db.compile(
            expressions=[re.escape(k).encode() for _, k in literals],
            ids=list(range(len(literals))),
            elements=len(literals),
            flags=[hyperscan.HS_FLAG_CASELESS if caseless[rule] else 0 for rule, _ in literals],
        )

    def hits(self, text: str) -> list[tuple[int, int]] | None:
        """``(rule index, keyword start)`` for every keyword occurrence, in the order Hyperscan
        reports them (by end offset); None when this text must be searched rule by rule."""
        if _KELVIN in text:
            return None
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:  # scratch space is per thread: the bot redacts from several
            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        found: list[tuple[int, int]] = []
        append = found.append
        rules, lengths = self._rules, self._lengths

        def on_match(literal: int, _start: int, end: int, _flags: int, _context: object) -> None:
            append((rules[literal], end - lengths[literal]))

        self._db.scan(
            text.encode("latin-1", "replace"), match_event_handler=on_match, scratch=scratch
        )
        return found


def keyword_scanner(
    keywords: Sequence[Sequence[str]], caseless: Sequence[bool]
) -> KeywordScanner | None:
    """A scanner for these keywords, or None where Hyperscan is not installed."""
    if hyperscan is None:
        return None
    return KeywordScanner(keywords, caseless)
