"""What command handlers share: settings, config, the outbound choke point, the store.

One ``Services`` per app. Handlers get it as an argument; nothing here is global, so tests
build one per test.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.config import ConfigError, Environment, HokusaiConfig
from bot.errors import HokusaiError
from bot.outbound import Outbound, post_refused
from bot.redaction import Redactor, default_redactor
from bot.settings import Settings
from bot.slack.access import AccessControl
from bot.slack.commanding import UsageError
from bot.slack.recovery import InFlightWork
from bot.slack.run_queue import RunQueue

if TYPE_CHECKING:
    from bot.diagnosis.aws import AwsCaller
    from bot.diagnosis.runner import Runner
    from bot.incident.store import IncidentStore

log = logging.getLogger(__name__)

# Threads for AWS calls, shared by every run of the process (calls wait on the network; more
# threads would mostly compete with the event loop for the interpreter when answers are fast).
AWS_THREADS = 8

# Set by the HTTP server for each request: work spawned while handling it starts once the ack
# has been written, so the ack never waits behind that work for the event loop.
response_sent: ContextVar[asyncio.Event | None] = ContextVar("response_sent", default=None)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Services:
    """The dependencies of every command, built once per app by ``build_app``."""

    def __init__(
        self,
        settings: Settings,
        config: HokusaiConfig,
        outbound: Outbound,
        *,
        redactor: Redactor | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.config = config
        self.outbound = outbound
        self.redactor = redactor or default_redactor()
        self.clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()
        self._seen_requests: OrderedDict[str, None] = OrderedDict()
        # Extra objects tests and the sandbox hand in (an AWS caller, an HTTP client...).
        self.overrides: dict[str, Any] = {}
        self._store: IncidentStore | None = None
        self._aws: dict[tuple[str, frozenset[str]], AwsCaller] = {}
        # Diagnoses beyond this many wait their turn: memory and threads stay bounded.
        self.diagnoses = RunQueue(settings.hokusai_max_diagnoses)
        # Work started and not finished, so a restart can say what a crash interrupted.
        self.in_flight = InFlightWork(self)
        self._access: AccessControl | None = None

    @property
    def access(self) -> AccessControl:
        """hokusai.yml's access rules, with Slack user groups resolved (and cached)."""
        if self._access is None:
            self._access = AccessControl(self.config.access, self.outbound)
        return self._access

    def store(self) -> IncidentStore:
        """The incident log. Its connections are per thread and per unit of work
        (``with store.session():``); the object itself is built, and migrated, once."""
        if self._store is None:
            from bot.incident.store import IncidentStore

            self._store = IncidentStore(self.settings.hokusai_db)
        return self._store

    def environment(self, name: str | None) -> Environment:
        """The environment asked for, else HOKUSAI_ENV, else the config's default."""
        try:
            return self.config.environment(name or self.settings.hokusai_env)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None

    def runner(self, env: Environment) -> Runner:
        """A runner for ``env`` using the AWS caller / HTTP client the app was given, if any."""
        from bot.diagnosis.runner import Runner

        checks = self.overrides.get("checks")
        return Runner(
            env,
            aws=self.overrides.get("aws") or self.aws_caller(env.region, checks),
            http=self.overrides.get("http"),
            checks=checks,
        )

    async def run_checks(
        self, runner: Runner, scopes: Any = (), on_outcome: Callable[[Any], None] | None = None
    ) -> Any:
        """``runner.run(scopes)`` on the side loop, so its probes never hold up an ack;
        ``on_outcome`` (a plain function) is called back on this loop as checks finish.

        A runner given an HTTP client (tests, the sandbox) runs here: the client belongs to
        this loop.
        """
        from bot.offload import on_side_loop, relay

        if runner.http is not None:
            return await runner.run(scopes, on_outcome=on_outcome)
        return await on_side_loop(runner.run(scopes, on_outcome=relay(on_outcome)))

    def aws_caller(self, region: str, checks: dict[str, Any] | None = None) -> AwsCaller:
        """One read-only AWS caller per region (and allow list) for the whole process: its
        clients (a few MB each) and threads serve every run instead of being built per run."""
        from bot.diagnosis.aws import AwsCaller, allowed_actions, read_only_session

        allowed = allowed_actions(checks.values() if checks is not None else None)
        key = (region, allowed)
        if key not in self._aws:
            session = read_only_session(region, allowed=allowed)
            self._aws[key] = AwsCaller(session, max_workers=AWS_THREADS)
        return self._aws[key]

    def claim_request(self, key: str, *, is_retry: bool | None = None) -> bool:
        """True the first time a request key is seen; Slack's redeliveries get False.

        The store makes this hold across processes; the in-memory map covers the window
        before the store exists and keeps the common case free of a database round trip.
        When the store cannot answer, the check fails closed: a request that may be a
        redelivery (``is_retry`` not False) raises ``StoreError`` with a sentence for the user
        rather than run twice; only a known first delivery goes ahead.
        """
        from bot.incident.store import StoreError

        if key in self._seen_requests:
            return False
        self._seen_requests[key] = None
        if len(self._seen_requests) > 10_000:
            self._seen_requests.popitem(last=False)
        try:
            return self.store().claim_request(key)
        except StoreError as exc:
            if is_retry is False:
                log.warning("could not record request key (%s); a first delivery runs", exc.reason)
                return True
            log.warning("could not check request key (%s); not run", exc.reason)
            raise StoreError(
                "the incident log cannot tell whether this request was already handled "
                f"({exc.reason}), so it was not run; try again in a moment",
                reason=exc.reason,
            ) from None

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, notify: tuple[str, ...] | None = None
    ) -> asyncio.Task[Any]:
        """Run work after the ack; the task is kept so it is not garbage-collected.

        A failure is logged, and when ``notify`` is ``(channel, user[, response_url])`` that
        person is told in a short message (``tell``): a click never ends in silence.
        """
        task = asyncio.get_running_loop().create_task(self._guarded(coro, notify))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def tell(self, channel: str, user: str, text: str, *, response_url: str = "") -> None:
        """Say something to one person in an ephemeral message; where the channel refuses the
        bot (not a member, private), through the request's ``response_url``, which works there.
        """
        try:
            await self.outbound.ephemeral(channel, user, text)
        except Exception as exc:
            if not (response_url and post_refused(exc)):
                raise
            await self.outbound.respond(response_url, text)

    async def _guarded(self, coro: Coroutine[Any, Any, Any], notify: tuple[str, ...] | None) -> Any:
        sent = response_sent.get()
        if sent is not None:
            try:
                await asyncio.wait_for(sent.wait(), timeout=1.0)
            except TimeoutError:
                pass  # the ack went out some other way; do the work anyway
            except asyncio.CancelledError:
                coro.close()  # never started: close it rather than leave it unawaited
                raise
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, HokusaiError):
                log.warning("background work failed: %s", exc.message)
                said = f":warning: That did not work: {exc.message}."
            else:
                log.exception("background work failed (%s)", type(exc).__name__)
                said = (
                    f":warning: That did not work ({type(exc).__name__}). Nothing was "
                    "changed; the details are in the bot's log."
                )
            if notify and notify[0] and notify[1]:
                channel, user, *rest = notify
                try:
                    await self.tell(channel, user, said, response_url=rest[0] if rest else "")
                except Exception:
                    log.warning("could not tell the user about the failure either")
            return None

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for every spawned task (tests and shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._tasks)} background task(s) still running")
            await asyncio.wait(set(self._tasks), timeout=remaining)
