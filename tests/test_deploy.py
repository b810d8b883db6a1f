"""The deployment files keep their promises: non-root, health-checked, graceful, no secret.

The image itself is built where Docker Hub is reachable; here we check what it is made of.
"""

from __future__ import annotations

import re

import yaml

from tests.doubles import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def test_the_image_runs_as_an_unprivileged_user():
    users = _instructions("USER")
    assert users and users[-1] not in ("root", "0")


def test_the_image_checks_healthz_and_stops_on_sigterm():
    assert any("/healthz" in h for h in _instructions("HEALTHCHECK"))
    assert _instructions("STOPSIGNAL") == ["SIGTERM"]
    assert "hokusai serve" in _instructions("CMD")[-1]
    assert "exec hokusai" in _instructions("CMD")[-1]  # the signal reaches hokusai, not sh


def test_everything_the_image_copies_is_in_the_repository():
    for args in _instructions("COPY"):
        if args.startswith("--from"):
            continue
        for source in args.split()[:-1]:
            assert (REPO / source).exists(), source


def test_compose_runs_two_replicas_on_one_postgresql_without_a_literal_secret():
    compose = yaml.safe_load((REPO / "deploy" / "compose.yml").read_text())
    services = compose["services"]
    bots = {name: s for name, s in services.items() if "HOKUSAI_DB" in s.get("environment", {})}
    assert len(bots) == 2
    urls = {s["environment"]["HOKUSAI_DB"] for s in bots.values()}
    assert len(urls) == 1 and next(iter(urls)).startswith("postgresql://hokusai:${")
    for bot in bots.values():
        assert bot["depends_on"]["db"]["condition"] == "service_healthy"
        for name, value in bot["environment"].items():
            if any(word in name for word in ("TOKEN", "SECRET", "KEY")):
                assert re.fullmatch(r"\$\{[A-Z_]+(:[-?][^}]*)?\}", value), name
    assert all(f"--to {name}:3000" in services["lb"]["command"] for name in bots)
