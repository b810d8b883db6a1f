"""A key cut by an event boundary is found from the run of characters before the cut, exactly
as a search of the whole 256 characters before it would find it (that search was a third of
the time spent redacting a busy log window)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.redaction import engine

PIECES = st.sampled_from(
    [
        "hk_live_",
        "hk_test_",
        "ghp_",
        "AKIA",
        "eyJhbGciOiJIUzI1",
        ".",
        "https://",
        "://",
        "user:",
        "@",
        "x",
        "Q7",
        "=",
        "/",
        " ",
        "\t",
        "\n",
        '"',
        "9",
    ]
)


def _reference(text: str, end: int):
    """The search the fast path replaces: every position of the last 256 characters."""
    m = engine._CUT_KEY.search(text, max(0, end - engine._CUT_CONTEXT), end)
    if m is None:
        return None
    if m.group("userinfo"):
        return (m.start("userinfo"), end, len(engine.RULES), "url-password")
    key = m.group("key")
    kind = next((k for p, k in engine._CUT_KINDS if key.startswith(p)), "secret-part")
    return (m.start(), end, len(engine.RULES), kind)


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=80), st.integers(min_value=0, max_value=400))
def test_the_fast_cut_search_finds_what_the_full_search_finds(pieces, cut) -> None:
    text = "".join(pieces)
    end = min(cut, len(text))
    assert engine._cut_key_span(text, end) == _reference(text, end)


def test_a_key_cut_at_the_end_of_an_event_is_named() -> None:
    text = "upstream failed: Authorization: Bearer hk_live_Q7x9Zk2"
    start = text.index("hk_live_")
    assert engine._cut_key_span(text, len(text)) == (
        start,
        len(text),
        len(engine.RULES),
        "hokusai-api-key",
    )
    assert engine._cut_key_span(text + " and more", len(text) + 9) is None
