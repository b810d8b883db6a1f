"""`hokusai demo` — the README's first command — shows the whole seed-outage conversation."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_demo_shows_the_seed_outage_end_to_end(tmp_path):
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "TMPDIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--scenario", "seed-outage"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "First failing hop: Listener rules (configuration)" in out
    assert "RUNBOOK: MODEL REGISTRY UNREACHABLE" in out  # the walkthrough and its steps
    assert "Filed HOK-1" in out  # the ticket, on the local tracker
    assert "Summary · SEV1" in out and "Next steps" in out
    assert out.strip().splitlines()[-2].startswith("Verdict: The request path first breaks")
    # Nothing secret-shaped reaches the terminal, though the sandbox's logs carry secrets.
    assert not re.search(r"hk_(live|test)_[A-Za-z0-9]{32}", out)
    assert "Traceback" not in proc.stderr
    # And it cleaned up after itself.
    assert not list(tmp_path.glob("hokusai-demo-*"))
