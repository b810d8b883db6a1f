"""One run's AWS reads, each asked once: a cache keyed by service, operation and arguments.

A diagnose is a snapshot: within one run, the same read with the same arguments gives the same
answer, so checks that need it (the Cloud Map names, a listener's rules, the ECS services)
share one call instead of each asking again. Callers that ask while the call is in flight wait
for it rather than sending a second one; a caller that gives up (its check timed out) does not
cancel the call for the others. Failures are shared by the callers waiting at the time, then
forgotten, so a later caller asks again.

Example::

    reads = AwsReadCache(caller.call)          # one per diagnose run (or per watch tick)
    rules = await reads.call("elbv2", "describe_rules", ListenerArn=arn)
    again = await reads.call("elbv2", "describe_rules", ListenerArn=arn)  # no second call
    reads.hits, reads.misses                   # (1, 1)

Answers are handed out as copies, so a check that sorts or edits what it got cannot change
what the next check reads. An AWS refusal that is an answer (``LoadBalancerNotFound``) is
kept like any answer; throttling, server errors and timeouts are not.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

AwsCall = Callable[..., Awaitable[Any]]

# Reads whose answer is not a plain value (a streamed body) or never repeats within a run.
UNCACHED: frozenset[str] = frozenset({"get_object", "filter_log_events", "get_log_events"})

_T = TypeVar("_T")


def _is_answer(exc: BaseException | None) -> bool:
    """A success, or a refusal that will not change within a run (4xx, not throttling)."""
    if exc is None:
        return True
    if not isinstance(exc, ClientError):
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return 400 <= status < 500 and status != 429 and "Throttl" not in code


def _key(service: str, operation: str, params: dict[str, Any]) -> str:
    return json.dumps([service, operation, params], sort_keys=True, default=str)


class AwsReadCache:
    """Share identical AWS reads between the checks of one run.

    Args:
        call: what actually asks AWS, ``await call(service, operation, **params)`` (the
            run's ``AwsCaller.call``).
        uncached: boto3 operation names that always go to ``call``.
    """

    def __init__(self, call: AwsCall, *, uncached: Iterable[str] = UNCACHED) -> None:
        self._call = call
        self._uncached = frozenset(uncached)
        self._answers: dict[str, asyncio.Future[Any]] = {}
        self.hits = 0
        self.misses = 0

    async def call(self, service: str, operation: str, **params: Any) -> Any:
        """``await call("elbv2", "describe_rules", ListenerArn=arn)``: the answer, asked once."""
        if operation in self._uncached:
            return await self._call(service, operation, **params)
        key = _key(service, operation, params)
        answer = self._answers.get(key)
        if answer is None:
            self.misses += 1
            # A task of its own: the first caller's timeout must not cancel the others' answer.
            answer = asyncio.ensure_future(self._call(service, operation, **params))
            answer.add_done_callback(lambda done, key=key: self._forget_failure(key, done))
            self._answers[key] = answer
        else:
            self.hits += 1
        return copy.deepcopy(await asyncio.shield(answer))

    def _forget_failure(self, key: str, done: asyncio.Future[Any]) -> None:
        failed = done.cancelled() or not _is_answer(done.exception())
        if failed and self._answers.get(key) is done:
            del self._answers[key]

    def clear(self) -> None:
        """Forget every answer: the next read asks AWS again (a new watch tick)."""
        self._answers.clear()


async def gather_bounded(aws_calls: Iterable[Awaitable[_T]], limit: int = 8) -> list[_T]:
    """Await independent calls concurrently, at most ``limit`` at a time, in input order.

    Example: ``pages = await gather_bounded((ctx.aws("s3", "get_object", ...) for k in keys))``.
    The first failure (in input order) is raised once every call has finished.
    """
    gate = asyncio.Semaphore(limit)

    async def one(aws_call: Awaitable[_T]) -> _T:
        async with gate:
            return await aws_call

    results = await asyncio.gather(*(one(c) for c in aws_calls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]
