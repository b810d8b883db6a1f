"""AWS reads shared by the watches of one environment that tick together.

Each diagnose run already shares identical reads between its checks
(:class:`~bot.diagnosis.aws_cache.AwsReadCache`). A watch runs the checks once a tick plus the
probes of its burst, and several watches of one environment with one interval tick at the same
moments (ticks are aligned to the clock): ``TickReads`` keeps one read cache for all of them
and starts it afresh every half tick, so each question costs one AWS call per tick, however
many checks and watches ask it.

It has the caller's interface (``call``, ``close``, ``calls``): a ``Runner`` takes it as its
``aws``.

Example::

    reads = TickReads(AwsCaller(read_only_session(env.region)), ttl=15)
    report = await Runner(env, aws=reads).run(check_ids)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bot.diagnosis.aws import AwsCall, AwsCaller
from bot.diagnosis.aws_cache import AwsReadCache


class TickReads:
    """One ``AwsReadCache`` in front of ``caller``, forgotten every ``ttl`` seconds.

    Args:
        caller: the read-only caller that really asks AWS.
        ttl: seconds the answers are shared (half a tick).
        clock: monotonic seconds (tests move it by hand).
    """

    def __init__(
        self, caller: AwsCaller, *, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.caller = caller
        self.ttl = ttl
        self._clock = clock
        self.reads = AwsReadCache(caller.call)
        self._since = clock()

    @property
    def calls(self) -> list[AwsCall]:
        """The AWS calls really made."""
        return self.caller.calls

    async def call(self, service: str, operation: str, **params: Any) -> Any:
        now = self._clock()
        if now - self._since >= self.ttl:
            self.reads.clear()
            self._since = now
        return await self.reads.call(service, operation, **params)

    def close(self) -> None:
        self.caller.close()
