"""Tests of the redactor, ``hokusai redact`` and their benchmark corpus.

Secrets are generated at run time by the makers of ``bench/corpus.py``; none is written down.
"""

from __future__ import annotations

import random

from bench.corpus import FORMATS, Identifiers, render_template

FORMAT_KINDS = tuple(kind for kind, _, _ in FORMATS)


def make_secret(kind: str, seed: int = 0) -> str:
    """A fresh secret of ``kind`` (a kind of ``bench.corpus.FORMATS``)."""
    ids = Identifiers(random.Random(f"{kind}-{seed}"))
    maker = next(make for name, make, _ in FORMATS if name == kind)
    return maker(ids)


def planted_lines(kind: str, seed: int = 0) -> list[tuple[str, str]]:
    """``(line, secret)`` for every template of ``kind``, each with a fresh secret."""
    ids = Identifiers(random.Random(f"{kind}-lines-{seed}"))
    maker, templates = next((make, tpl) for name, make, tpl in FORMATS if name == kind)
    out = []
    for template in templates:
        value = maker(ids)
        out.append((render_template(ids, template, value), value))
    return out
