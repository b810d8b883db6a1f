"""Moto platforms for the compute, network, logs and changes check tests.

``build_world(scenario)`` builds the whole seed topology in a fresh ``mock_aws`` and returns a
``World``: the environment, the sandbox platform (``build_platform``, which calls our
``build_ecs``), and an ``AwsCaller`` on a read-only session — what the runner gives real
checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass

import boto3
import httpx
from moto import mock_aws

from bot.config import Environment, load_config
from bot.diagnosis.aws import AwsCaller, read_only_session
from bot.diagnosis.checks.base import REGISTRY, CheckContext, CheckResult
from bot.diagnosis.runner import DiagnoseReport, Runner
from bot.sandbox.platform import Platform, build_platform
from bot.sandbox.platform_ecs import EcsPlatform
from tests.doubles import REPO

REGION = "us-east-1"


@dataclass
class World:
    env: Environment
    session: boto3.Session  # the writable one that built the platform
    ecs: EcsPlatform
    aws: AwsCaller
    platform: Platform


def seed_environment() -> Environment:
    return load_config(REPO / "hokusai.yml").environment("development")


def build_world(scenario: str = "healthy") -> World:
    """Build the platform inside the active ``mock_aws`` and return what tests need."""
    env = seed_environment()
    session = boto3.Session(region_name=REGION)
    platform = build_platform(session, env, scenario=scenario)
    ecs = platform.ecs
    assert isinstance(ecs, EcsPlatform), "build_platform did not build the ECS half"
    aws = AwsCaller(read_only_session(REGION))
    return World(env=env, session=session, ecs=ecs, aws=aws, platform=platform)


@contextlib.contextmanager
def world(scenario: str = "healthy"):
    """A fresh moto account with the platform built for ``scenario``."""
    with mock_aws():
        built = build_world(scenario)
        try:
            yield built
        finally:
            built.aws.close()


def run_check(w: World, check_id: str, subject: str | None = None) -> CheckResult:
    """Run one registered check the way the runner would, without its neighbours."""
    check = REGISTRY[check_id]
    ctx = CheckContext(w.env, subject=subject, aws_call=w.aws.call)
    return asyncio.run(check.run(ctx))


def diagnose(
    w: World, check_ids: list[str] | None = None, scopes: list[str] = ()
) -> DiagnoseReport:
    """A runner over ``check_ids`` (default: every registered check) against this world."""
    checks = dict(REGISTRY) if check_ids is None else {c: REGISTRY[c] for c in check_ids}

    async def run() -> DiagnoseReport:
        # No HTTP here: a check that probes (data.backend-store asks MLflow) finds it offline.
        async with httpx.AsyncClient(transport=httpx.MockTransport(_offline)) as http:
            return await Runner(w.env, aws=w.aws, checks=checks, http=http).run(list(scopes))

    return asyncio.run(run())


def _offline(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"offline: {request.url.host}", request=request)


# The checks this suite covers, and the layers that need only AWS (no DNS or HTTP probes).
ECS_CHECKS = (
    "compute.ecs-service",
    "compute.cloud-map",
    "compute.task-config",
    "network.security-groups",
    "logs.errors",
    "logs.alb-access",
    "changes.deployments",
    "changes.listener-rules",
)
AWS_ONLY_LAYERS = ("edge", "routing", "targets", "compute", "network", "data", "logs", "changes")


@dataclass
class ScenarioRun:
    """One scenario built once and diagnosed twice: our checks alone, and every AWS-only check."""

    scenario: str
    ours: DiagnoseReport
    aws_only: DiagnoseReport
    planted_secrets: dict[str, str]
    security_groups: dict[str, str]
    calls: list[tuple[str, str, str | None]]


@functools.cache
def scenario_run(scenario: str) -> ScenarioRun:
    """Built once per test session: building and diagnosing costs about two seconds."""
    import bot.diagnosis.checks  # noqa: F401  registers every check module

    with world(scenario) as w:
        ours = diagnose(w, list(ECS_CHECKS))
        aws_only = diagnose(w, [c.id for c in REGISTRY.values() if c.layer in AWS_ONLY_LAYERS])
        calls = [(c.service, c.operation, c.check_id) for c in w.aws.calls]
        return ScenarioRun(
            scenario,
            ours,
            aws_only,
            dict(w.ecs.planted_secrets),
            dict(w.ecs.security_groups),
            calls,
        )
