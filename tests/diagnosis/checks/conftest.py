"""Fixtures for the check tests: the seed's platform in moto, a loopback DNS server, a runner."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import httpx
import pytest
from moto import mock_aws

from bot.config import DnsSettings, Environment, load_config
from bot.diagnosis.aws import AwsCaller, read_only_session
from bot.diagnosis.runner import DiagnoseReport, Runner
from bot.sandbox.dns_server import DnsServer
from bot.sandbox.platform import Platform, build_platform
from tests.doubles import REPO

# The hops these tests own; other layers' checks need HTTP stand-ins of their own.
PATH_LAYERS = ("dns", "edge", "routing", "targets", "data")


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def public_dns(dns_server) -> Iterator[DnsServer]:
    """The loopback resolver answering the public hostname with the sandbox edge's address."""
    hostname = load_config(REPO / "hokusai.yml").environment().public.hostname
    dns_server.set(hostname, ["52.44.61.20"])  # the public addresses of the registry ALB
    yield dns_server
    for name in dns_server.snapshot():
        dns_server.remove(name)


@pytest.fixture
def env(public_dns) -> Environment:
    seed = load_config(REPO / "hokusai.yml").environment()
    return seed.model_copy(update={"dns": DnsSettings(nameservers=[public_dns.address])})


def _no_internet(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"tests do not reach {request.url.host}", request=request)


@dataclass
class Sandbox:
    env: Environment
    platform: Platform
    aws: AwsCaller

    async def diagnose(self, scopes=PATH_LAYERS) -> DiagnoseReport:
        async with httpx.AsyncClient(transport=httpx.MockTransport(_no_internet)) as http:
            runner = Runner(self.env, aws=self.aws, http=http, secrets={})
            return await runner.run(list(scopes))


@pytest.fixture
def sandbox(env, fake_aws):
    """``sandbox(scenario, ecs=False)``: the platform built for a scenario in a fresh moto
    account; the ECS half only when asked (it doubles the build time)."""
    mock = mock_aws()
    mock.start()
    callers: list[AwsCaller] = []

    def build(scenario: str = "healthy", *, ecs: bool = False) -> Sandbox:
        session = boto3.Session(region_name=env.region)
        platform = build_platform(session, env, scenario=scenario, ecs=ecs)
        caller = AwsCaller(read_only_session(env.region))
        callers.append(caller)
        return Sandbox(env, platform, caller)

    yield build
    for caller in callers:
        caller.close()
    mock.stop()
