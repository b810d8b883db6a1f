"""The keyword prefilter (Hyperscan) changes the speed of redaction, never its result."""

from __future__ import annotations

import pytest

from bench.corpus import generate_corpus
from bot.redaction import Redactor, engine
from bot.redaction.rules import RULES, lowered
from tests.redaction import FORMAT_KINDS, planted_lines

pytest.importorskip("hyperscan", reason="the prefilter is only built where Hyperscan installs")


def texts() -> list[str]:
    corpus = generate_corpus(size=300_000, seed=1313, secret_every=4)
    lines = [
        line for kind in FORMAT_KINDS for seed in range(2) for line, _ in planted_lines(kind, seed)
    ]
    return [
        corpus.text,
        "\n".join(lines),
        "caf\u00e9 \u2026 DB_PASSWORD=S3cr3t!x \u212aEY=abc12345",
    ]


@pytest.fixture
def rule_by_rule(monkeypatch):
    monkeypatch.setattr(engine, "_KEYWORDS", None)


def test_the_prefilter_is_in_use() -> None:
    assert engine._KEYWORDS is not None
    assert engine._KEYWORDS.hits("x hk_live_abc and Password=") == [
        (next(i for i, r in enumerate(RULES) if "hk_live_" in r.keywords), 2),
        (next(i for i, r in enumerate(RULES) if "pass" in r.keywords), 18),
    ]


def test_text_with_a_kelvin_sign_is_searched_rule_by_rule() -> None:
    assert engine._KEYWORDS is not None and engine._KEYWORDS.hits("\u212aey=1") is None


def test_same_output_with_and_without_the_prefilter(monkeypatch) -> None:
    with_prefilter = [Redactor().redact_text(text) for text in texts()]
    monkeypatch.setattr(engine, "_KEYWORDS", None)
    without = [Redactor().redact_text(text) for text in texts()]
    assert with_prefilter == without
    assert "[redacted:" in with_prefilter[0]


def test_every_match_starts_with_one_of_its_rules_keywords(rule_by_rule) -> None:
    """The prefilter's promise: a rule only matches where one of its keywords is."""
    for text in texts():
        low = lowered(text)
        for rule in RULES:
            hay = low if rule.lower else text
            for m in rule.pattern.finditer(hay):
                assert hay.startswith(rule.keywords, m.start()), (rule.kind, m.group()[:40])
