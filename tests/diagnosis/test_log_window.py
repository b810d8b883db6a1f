"""Reading a log window newest first on moto: what was read is always the newest part."""

from __future__ import annotations

import asyncio
import random
import time

import boto3
import pytest
from moto import mock_aws

from bot.diagnosis.aws import AwsCaller, read_only_session
from bot.diagnosis.log_window import read_newest

REGION = "us-east-1"
GROUP = "/ecs/hokusai-api-development"
END = int(time.time() * 1000)  # CloudWatch refuses events far from now
HOUR = 3_600_000


@pytest.fixture
def logs(fake_aws):
    with mock_aws():
        client = boto3.client("logs", region_name=REGION)
        client.create_log_group(logGroupName=GROUP)
        caller = AwsCaller(read_only_session(REGION))
        yield client, caller
        caller.close()


def _put(client, stream: str, stamps: list[int]) -> None:
    client.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    stamps = sorted(stamps)
    for start in range(0, len(stamps), 10_000):
        client.put_log_events(
            logGroupName=GROUP,
            logStreamName=stream,
            logEvents=[
                {"timestamp": t, "message": f"ERROR at {t}"} for t in stamps[start:][:10_000]
            ],
        )


def _read(caller, **budget):
    return asyncio.run(read_newest(caller.call, GROUP, END - HOUR, END, **budget))


def test_a_quiet_hour_is_read_whole_so_counts_are_exact(logs):
    client, caller = logs
    rng = random.Random(1)
    _put(client, "a", [rng.randint(END - HOUR, END) for _ in range(40)])
    _put(client, "b", [rng.randint(END - HOUR, END) for _ in range(10)])
    read = _read(caller)
    assert read.complete
    assert len(read.events) == 50
    stamps = [e["timestamp"] for e in read.events]
    assert stamps == sorted(stamps, reverse=True)
    assert read.calls <= 4


def test_a_busy_hour_yields_its_newest_lines_within_the_budget(logs):
    client, caller = logs
    rng = random.Random(2)
    stamps = [rng.randint(END - HOUR, END) for _ in range(30_000)]
    _put(client, "a", stamps[:15_000])
    _put(client, "b", stamps[15_000:])
    read = _read(caller, max_events=2_000)
    assert not read.complete
    assert len(read.events) <= 2_000
    # Everything from read_from_ms to the end was read, and nothing older.
    newest = sorted((t for t in stamps if t >= read.read_from_ms), reverse=True)
    assert [e["timestamp"] for e in read.events] == newest
    assert len(newest) > 1_500
    assert read.calls <= 8


def test_a_burst_in_one_millisecond_is_paged_through_and_the_calls_stay_bounded(logs):
    client, caller = logs
    _put(client, "a", [END - 10] * 2_500)
    read = _read(caller, page=1_000, max_events=10_000, max_calls=4)
    assert read.calls <= 4
    assert len(read.events) == 2_500
    assert not read.complete  # the budget of calls ended before the rest of the hour


def test_a_page_that_overflowed_is_used_not_read_again(logs):
    """The newest minute quiet, the rest of the hour dense (a service that just stopped
    logging): the slice that overflows gives its older part whole, so once the newer part is
    read the budget is met without asking for those events a second time."""
    client, caller = logs
    rng = random.Random(3)
    stamps = [rng.randint(END - HOUR, END - 60_000) for _ in range(40_000)]
    _put(client, "a", stamps[:20_000])
    _put(client, "b", stamps[20_000:])
    read = _read(caller, max_events=2_000)
    assert read.calls <= 3
    assert not read.complete
    newest = sorted((t for t in stamps if t >= read.read_from_ms), reverse=True)
    assert [e["timestamp"] for e in read.events] == newest
    assert 1_500 < len(newest) <= 2_000
