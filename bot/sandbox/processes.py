"""`hokusai serve` as a real process on loopback, for the tests and the benches that drive it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def start_serve(
    env: dict[str, str], log: Path, cwd: Path | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`hokusai serve --port 0` on loopback; returns the process and its events URL.

    Its output goes to a file, not a pipe: nobody reads it while it runs. ``cwd`` gives a
    replica its own working directory.
    """
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 60
    while "listening on" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise AssertionError("hokusai serve did not start: " + log.read_text())
        time.sleep(0.05)
    line = next(x for x in log.read_text().splitlines() if "listening on" in x)
    return proc, line.split("listening on ", 1)[1].strip()


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
