"""The `hokusai` command line as a real process, for the tests that drive it."""

from __future__ import annotations

import subprocess
import sys

from bot.sandbox.processes import start_serve, stop

__all__ = ["run_cli", "start_serve", "stop"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `hokusai ARGS...` to completion; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
