"""The per-run read cache on moto: one call per distinct read, shared by concurrent callers."""

from __future__ import annotations

import asyncio

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from bot.diagnosis.aws import AwsCaller, allowed_actions, read_only_session
from bot.diagnosis.aws_cache import AwsReadCache, gather_bounded

REGION = "us-east-1"
# Where load balancers write access logs: the only objects the diagnostics session may read.
LOG_KEY = "AWSLogs/123456789012/elasticloadbalancing/us-east-1/a.log"


@pytest.fixture
def caller(fake_aws):
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="hokusai-access-logs")
        s3.put_object(Bucket="hokusai-access-logs", Key=LOG_KEY, Body=b"first")
        # The checks' reads, plus ListBuckets: a simple read to share between callers.
        allowed = [*allowed_actions(), "s3:ListBuckets"]
        made = AwsCaller(read_only_session(REGION, allowed=allowed), latency=0.05)
        yield made
        made.close()


def _operations(caller: AwsCaller) -> list[str]:
    return [c.operation for c in caller.calls]


def test_concurrent_identical_reads_make_one_call_and_different_arguments_another(caller):
    reads = AwsReadCache(caller.call)

    async def run():
        same = [reads.call("s3", "list_objects_v2", Bucket="hokusai-access-logs") for _ in range(5)]
        other = reads.call("s3", "list_objects_v2", Bucket="hokusai-access-logs", Prefix="b")
        return await asyncio.gather(*same, other)

    *answers, narrowed = asyncio.run(run())
    assert _operations(caller) == ["ListObjectsV2", "ListObjectsV2"]
    assert all([o["Key"] for o in a["Contents"]] == [LOG_KEY] for a in answers)
    assert "Contents" not in narrowed
    assert (reads.hits, reads.misses) == (4, 2)


def test_a_caller_that_gives_up_does_not_cancel_the_answer_for_the_others(caller):
    reads = AwsReadCache(caller.call)

    async def run():
        impatient = asyncio.ensure_future(
            asyncio.wait_for(reads.call("s3", "list_buckets"), timeout=0.01)
        )
        patient = asyncio.ensure_future(reads.call("s3", "list_buckets"))
        with pytest.raises(TimeoutError):
            await impatient
        return await patient

    answer = asyncio.run(run())
    assert [b["Name"] for b in answer["Buckets"]] == ["hokusai-access-logs"]
    assert _operations(caller) == ["ListBuckets"]


def test_answers_are_copies_so_one_check_cannot_change_what_the_next_reads(caller):
    reads = AwsReadCache(caller.call)

    async def run():
        first = await reads.call("s3", "list_buckets")
        first["Buckets"].clear()
        return await reads.call("s3", "list_buckets")

    assert len(asyncio.run(run())["Buckets"]) == 1
    assert _operations(caller) == ["ListBuckets"]


def test_a_not_found_answer_is_kept_but_object_bodies_are_always_read(caller):
    reads = AwsReadCache(caller.call)

    async def run():
        for _ in range(2):
            with pytest.raises(ClientError, match="NoSuchBucket"):
                await reads.call("s3", "list_objects_v2", Bucket="no-such-bucket")
        bodies = []
        for _ in range(2):
            got = await reads.call("s3", "get_object", Bucket="hokusai-access-logs", Key=LOG_KEY)
            bodies.append(got["Body"].read())
        return bodies

    assert asyncio.run(run()) == [b"first", b"first"]
    assert _operations(caller) == ["ListObjectsV2", "GetObject", "GetObject"]


def test_gather_bounded_keeps_order_and_runs_at_most_limit_at_once(caller):
    running = peak = 0

    async def one(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await caller.call("s3", "list_buckets")
        running -= 1
        return n

    async def run():
        return await gather_bounded((one(n) for n in range(9)), limit=3)

    assert asyncio.run(run()) == list(range(9))
    assert peak == 3
    assert len(caller.calls) == 9
