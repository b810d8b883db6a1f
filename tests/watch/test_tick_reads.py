"""AWS answers shared within a tick: the same question from several checks or watches costs one
call; the next tick asks again."""

from __future__ import annotations

import asyncio

import boto3
import pytest
from moto import mock_aws

from bot.diagnosis.aws import AwsCaller, read_only_session
from bot.watch.reads import TickReads


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"us-east-1{zone}"
            )["Subnet"]["SubnetId"]
            for n, zone in enumerate("ab")
        ]
        boto3.client("elbv2", region_name="us-east-1").create_load_balancer(
            Name="hokusai-registry-development", Subnets=subnets
        )
        caller = AwsCaller(read_only_session("us-east-1"))
        yield caller
        caller.close()


async def test_watches_asking_within_a_tick_share_one_call(aws):
    reads = TickReads(aws, ttl=15, clock=Clock())
    answers = await asyncio.gather(
        *(reads.call("elbv2", "describe_load_balancers") for _ in range(5))
    )
    assert len(aws.calls) == 1
    assert {a["LoadBalancers"][0]["LoadBalancerName"] for a in answers} == {
        "hokusai-registry-development"
    }
    answers[0]["LoadBalancers"].clear()  # one check editing its answer changes no other's
    assert (await reads.call("elbv2", "describe_load_balancers"))["LoadBalancers"]
    assert len(aws.calls) == 1


async def test_the_next_tick_asks_again_and_distinct_questions_are_asked_once_each(aws):
    clock = Clock()
    reads = TickReads(aws, ttl=15, clock=clock)
    await reads.call("elbv2", "describe_load_balancers")
    await reads.call("elbv2", "describe_load_balancers", Names=["hokusai-registry-development"])
    assert len(aws.calls) == 2
    clock.now += 14
    await reads.call("elbv2", "describe_load_balancers")
    assert len(aws.calls) == 2
    clock.now += 2
    await reads.call("elbv2", "describe_load_balancers")
    assert len(aws.calls) == 3
