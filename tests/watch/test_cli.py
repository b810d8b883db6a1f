"""`hokusai watch` as a deploy script uses it: exit 0 once recovered, 1 when time runs out."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

from bot.cli import watch
from bot.cli.common import run
from tests.watch.conftest import FAST, fix_and_wait


def _watch(sandbox, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    argv = ["watch", "--config", str(sandbox.config_path), *args]
    code = run([watch.add_parser], argv, stdout=out, stderr=out, limits=FAST)
    return code, out.getvalue()


def test_exits_1_when_time_runs_out_still_failing(broken):
    code, out = _watch(broken, "--scope", "mlflow-direct", "--every", "0.5", "--for", "2")
    assert code == 1
    assert "hokusai watch: not recovered — FAILING" in out
    assert "app.route-probe[mlflow-direct]" in out and "404 by FastAPI" in out
    assert "tick 1: FAILING" in out  # one line per tick when the output is not a terminal


def test_exits_0_as_soon_as_the_fix_holds(broken):
    fixer = threading.Timer(1.5, fix_and_wait, args=[broken])
    fixer.start()
    try:
        code, out = _watch(
            broken, "--scope", "app.route-probe[mlflow-direct]", "--every", "0.5", "--for", "60"
        )
    finally:
        fixer.join()
    assert code == 0, out
    assert "hokusai watch: recovered — RECOVERED" in out
    assert "3 consecutive passes since" in out
    # The table at the end keeps the history: the failures before the fix, the passes after.
    assert "❌" in out and "✅" in out


def test_bad_usage_is_one_line_and_exit_2():
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "watch", "--every", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "hokusai watch: --every must be between 10 s and 10 min"
    assert proc.stdout == ""
