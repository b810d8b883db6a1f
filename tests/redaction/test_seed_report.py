"""The seed outage report, its API key put back, passes through ``hokusai redact``."""

from __future__ import annotations

import io
import random
import string
from pathlib import Path

from bot.cli.redact import main
from tests.doubles import REPO

PLACEHOLDER = "hk_live_<redacted>"


def seed_report() -> Path:
    """The outage report this project started from, as the repository keeps it (docs/)."""
    return REPO / "docs" / "seed-outage-report.md"


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
