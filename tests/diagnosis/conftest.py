"""Fixtures shared by the diagnosis tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def fake_aws(monkeypatch) -> None:
    """Credentials moto accepts, and nothing that would send boto3 anywhere else."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
