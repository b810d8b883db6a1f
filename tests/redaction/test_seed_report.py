"""The seed outage report, its API key put back, passes through ``hokusai redact``."""

from __future__ import annotations

import io
import os
import random
import string
from pathlib import Path

import pytest

from bot.redact_cli import main

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = "hk_live_<redacted>"


def seed_report() -> Path:
    """``../shared/seed-incident.md`` beside the repository, or under ``$HOKUSAI_SHARED``."""
    candidates = []
    if os.environ.get("HOKUSAI_SHARED"):
        candidates.append(Path(os.environ["HOKUSAI_SHARED"]) / "seed-incident.md")
    candidates += [REPO.parent / "shared" / "seed-incident.md", REPO / "shared/seed-incident.md"]
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip(f"seed report not found (looked in {', '.join(map(str, candidates))})")


def test_seed_report_loses_its_key_and_nothing_else() -> None:
    original = seed_report().read_text()
    assert PLACEHOLDER in original
    key = "hk_" + "live_" + "".join(random.choices(string.ascii_letters + string.digits, k=32))
    leaked = original.replace(PLACEHOLDER, key)

    stdout, stderr = io.StringIO(), io.StringIO()
    code = main([], io.BytesIO(leaked.encode()), stdout, stderr, environ={})
    out = stdout.getvalue()

    assert code == 0 and not stderr.getvalue()
    assert key not in out
    out_lines, in_lines = out.split("\n"), leaked.split("\n")
    assert len(out_lines) == len(in_lines)
    changed = [i for i, (a, b) in enumerate(zip(in_lines, out_lines, strict=True)) if a != b]
    assert changed == [i for i, line in enumerate(in_lines) if key in line]
    for i in changed:
        assert out_lines[i] == in_lines[i].replace(key, "[redacted:hokusai-api-key]")


def test_seed_report_as_written_passes_unchanged() -> None:
    original = seed_report().read_text()
    stdout = io.StringIO()
    assert main([], io.BytesIO(original.encode()), stdout, io.StringIO(), environ={}) == 0
    assert stdout.getvalue() == original
