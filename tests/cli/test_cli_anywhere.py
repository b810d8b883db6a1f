"""The command line from any directory: what it ships is found, and every error has one form."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ONE_LINE = re.compile(r"hokusai [a-z]+(?: [a-z]+)?: \S.*\n")


def hokusai(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HOKUSAI_RUNBOOKS", "HOKUSAI_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_manifest_and_runbooks_are_found_outside_the_repository(tmp_path):
    manifest = hokusai("manifest", "--socket", cwd=tmp_path)
    assert manifest.returncode == 0, manifest.stderr
    assert "socket_mode_enabled: true" in manifest.stdout
    listed = hokusai("runbook", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "registry-unreachable" in listed.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("runbook", "show", "no-such-runbook"),
        ("runbook", "lint", "/nonexistent.yml"),
        ("redact", "--bogus"),
        ("incident", "show", "1", "extra"),
        ("diagnose", "--scope", "dns"),  # no hokusai.yml in an empty directory
    ],
)
def test_every_error_is_one_line_naming_the_subcommand(args, tmp_path):
    proc = hokusai(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert ONE_LINE.fullmatch(proc.stderr), proc.stderr
    assert proc.stderr.startswith(f"hokusai {args[0]}")
