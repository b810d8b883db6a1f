"""Runs the watches of one bot process, and only those no other process runs.

Every process may run a ``WatchSupervisor``: a lease in the incident log decides which one
owns each watch (renewed every tick), and each tick's save names the tick it follows, so two
processes never both advance one watch. A process that starts, or restarts after a deploy,
adopts the active watches whose owner has gone quiet and carries on with the same message.

Example::

    supervisor = supervisor_for(services)
    supervisor.start()                       # adopt loop on the running loop
    supervisor.launch(row)                   # a watch just created by /hokusai watch
    await supervisor.stop()                  # gives the leases back
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any

import httpx

from bot.diagnosis.runner import HTTP_TIMEOUT, Runner
from bot.tls import client_context
from bot.watch.engine import WatchEngine
from bot.watch.limits import DEFAULT_LIMITS, WatchLimits, format_duration
from bot.watch.model import ANNOUNCED, RECOVERED, WATCHING, CheckTrack, Headline
from bot.watch.reads import TickReads
from bot.watch.render import TITLES, WatchView, message, transition_line
from bot.watch.tickets import TicketNotes, review_tickets

if TYPE_CHECKING:
    from bot.incident.store import WatchRow

log = logging.getLogger(__name__)

_SUPERVISORS: weakref.WeakKeyDictionary[Any, WatchSupervisor] = weakref.WeakKeyDictionary()


def limits_of(services: Any) -> WatchLimits:
    """The app's watch limits: the defaults unless the sandbox or a test handed in others."""
    return services.overrides.get("watch_limits") or DEFAULT_LIMITS


def supervisor_for(services: Any) -> WatchSupervisor:
    """The one supervisor of an app's services (made on first use)."""
    found = _SUPERVISORS.get(services)
    if found is None:
        found = _SUPERVISORS[services] = WatchSupervisor(services)
    return found


def lease_name(watch_id: int) -> str:
    return f"watch:{watch_id}"


class UpdateBudget:
    """About ``per_minute`` message updates a minute across the process's watches, in bursts of
    at most a sixth of that (a token bucket), so no minute sees more than 7/6 of the rate."""

    def __init__(self, per_minute: int, clock: Any = time.monotonic) -> None:
        self.per_minute = per_minute
        self.capacity = max(1.0, per_minute / 6)
        self._clock = clock
        self._tokens = self.capacity
        self._at = clock()

    def take(self) -> bool:
        """Spend one update if the budget allows it now."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.per_minute / 60)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class WatchSupervisor:
    """The watches this process runs, the adopt loop, and what the watches share.

    Args:
        services: the app's services.
        holder: this process's name in the lease table (default: host, pid and a nonce).
    """

    def __init__(self, services: Any, *, holder: str | None = None) -> None:
        self.services = services
        self.limits = limits_of(services)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.jobs: dict[int, asyncio.Task[None]] = {}
        self.budget = UpdateBudget(self.limits.updates_per_minute)
        self._adopter: asyncio.Task[None] | None = None
        self._caches: dict[tuple[str, float], TickReads] = {}
        self._http: httpx.AsyncClient | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Look for watches to adopt now and every ``adopt_every`` seconds (idempotent)."""
        if self._adopter is None or self._adopter.done():
            self._adopter = asyncio.get_running_loop().create_task(self._adopt_forever())

    async def stop(self) -> None:
        """Stop every job and the adopt loop; leases go back so another process takes over."""
        tasks = [t for t in (self._adopter, *self.jobs.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        store = self.services.store()
        for watch_id in list(self.jobs):
            await asyncio.to_thread(store.release_lease, lease_name(watch_id), self.holder)
        self.jobs.clear()
        self._adopter = None
        if self._http is not None and "http" not in self.services.overrides:
            await self._http.aclose()
        self._http = None
        self._caches.clear()

    async def _adopt_forever(self) -> None:
        while True:
            try:
                await self.adopt()
            except Exception as exc:  # the log being busy must not end the loop
                log.warning("watch adopt loop: %s", type(exc).__name__)
            await asyncio.sleep(self.limits.adopt_every)

    async def adopt(self) -> list[int]:
        """Start every active watch that no process holds; their ids."""
        store = self.services.store()
        adopted = []
        for row in await asyncio.to_thread(store.active_watches):
            if row.id in self.jobs and not self.jobs[row.id].done():
                continue
            won = await asyncio.to_thread(
                store.try_lease,
                lease_name(row.id),
                self.holder,
                self.limits.lease_ttl(row.every_s),
                incident_id=row.incident_id,
            )
            if won:
                self.launch(row)
                adopted.append(row.id)
        return adopted

    def launch(self, row: WatchRow) -> None:
        """Run a watch whose lease this process holds (once, however often asked)."""
        running = self.jobs.get(row.id)
        if running is not None and not running.done():
            return
        job = WatchJob(self, row)
        task = asyncio.get_running_loop().create_task(job.run())
        self.jobs[row.id] = task
        task.add_done_callback(lambda _t, wid=row.id: self._forget(wid, _t))

    def _forget(self, watch_id: int, task: asyncio.Task[None]) -> None:
        if self.jobs.get(watch_id) is task:
            del self.jobs[watch_id]

    def cancel(self, watch_id: int) -> bool:
        """Stop running a watch here (it was stopped or ended elsewhere)."""
        task = self.jobs.pop(watch_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    # -- what the watches share ----------------------------------------------------------------

    def runner(self, env: Any, every: float) -> Runner:
        """A runner whose AWS answers are shared, for half a tick, by every watch of ``env``
        with this interval (ticks are aligned to the clock, so they ask at the same time)."""
        key = (env.name, every)
        cache = self._caches.get(key)
        if cache is None:
            checks = self.services.overrides.get("checks")
            # The process's caller for the region: its clients and threads serve every run.
            inner = self.services.overrides.get("aws") or self.services.aws_caller(
                env.region, checks
            )
            cache = self._caches[key] = TickReads(inner, ttl=max(every / 2, 0.05))
        return Runner(
            env,
            aws=cache,  # type: ignore[arg-type]
            http=self.http(),
            checks=self.services.overrides.get("checks"),
        )

    def http(self) -> httpx.AsyncClient:
        given = self.services.overrides.get("http")
        if given is not None:
            return given
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=HTTP_TIMEOUT, follow_redirects=False, verify=client_context()
            )
        return self._http


class WatchJob:
    """One watch, ticking until it ends, is stopped, or another process owns it."""

    def __init__(self, supervisor: WatchSupervisor, row: WatchRow) -> None:
        self.supervisor = supervisor
        self.services = supervisor.services
        self.row = row
        self.limits = supervisor.limits
        state = row.state or {}
        self.notes = TicketNotes.from_json(state.get("tickets"))
        self.messages: list[str] = list(state.get("notes") or [])
        self._tracks = {
            t["id"]: CheckTrack.from_json(t) for t in state.get("tracks") or [] if "id" in t
        }
        self._headline = Headline.from_json(state.get("headline"))
        self._last_ticket_look = 0.0
        self.engine: WatchEngine | None = None

    async def run(self) -> None:
        store = self.services.store()
        job = asyncio.current_task()
        assert job is not None
        keeper = asyncio.get_running_loop().create_task(self._keep_lease(store, job))
        try:
            while True:
                try:
                    if not await self._step(store):
                        return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # one bad tick (Slack, the log) must not end it
                    log.warning("watch #%s tick failed: %s", self.row.id, type(exc).__name__)
                await asyncio.sleep(_until_next_tick(self.row.every_s))
        finally:
            keeper.cancel()

    async def _keep_lease(self, store: Any, job: asyncio.Task[None]) -> None:
        """Renew the lease three times per lease length, even in the middle of a slow tick;
        stop the job the moment another process holds it."""
        ttl = self.limits.lease_ttl(self.row.every_s)
        while True:
            await asyncio.sleep(ttl / 3)
            held = await asyncio.to_thread(
                store.try_lease,
                lease_name(self.row.id),
                self.supervisor.holder,
                ttl,
                incident_id=self.row.incident_id,
            )
            if not held:
                log.warning("watch #%s: another process holds it now; stopping here", self.row.id)
                job.cancel()
                return

    async def _step(self, store: Any) -> bool:
        """One tick; False when this process should stop running the watch."""
        row = await asyncio.to_thread(store.watch, self.row.id)
        self.row = row
        if row.status != "active":
            return False
        won = await asyncio.to_thread(
            store.try_lease,
            lease_name(row.id),
            self.supervisor.holder,
            self.limits.lease_ttl(row.every_s),
            incident_id=row.incident_id,
        )
        if not won:
            return False
        engine = self._engine(row)
        if self.services.clock() >= row.ends_at:
            await self.finish("ended")
            return False
        if not row.message_ts:
            # The command that started it posts its message; only when that process died before
            # it could is the message posted here.
            age = (self.services.clock() - row.started_at).total_seconds()
            if row.tick == 0 and age < self.limits.lease_ttl(row.every_s):
                return True
            await self._post_message(store)
        tick = await engine.tick(spread=min(row.every_s / 2, 15.0))
        previous, headline = engine.fold(tick)
        saved = await asyncio.to_thread(
            store.save_watch, row.id, tick=row.tick + 1, expected_tick=row.tick, state=self.state()
        )
        if not saved:  # stopped, or another process advanced it, while this tick ran
            return False
        self.row = await asyncio.to_thread(store.watch, row.id)
        incident = await self._incident()
        if headline.name != previous.name and headline.name != WATCHING:
            await self._transition(previous, incident, tick)
        await self._tickets(incident, headline, previous)
        await self._update(incident)
        return True

    def _engine(self, row: WatchRow) -> WatchEngine:
        if self.engine is None:
            env = self.services.config.environment(row.env)
            self.engine = WatchEngine(
                self.supervisor.runner(env, row.every_s),
                row.check_ids,
                burst=row.burst,
                recover_after=row.recover_after,
                tracks=self._tracks,
                headline=self._headline,
                clock=self.services.clock,
            )
        return self.engine

    def state(self) -> dict[str, Any]:
        engine = self.engine
        assert engine is not None
        return {
            "headline": engine.headline.to_json(),
            "tracks": [t.to_json() for t in engine.tracks.values()],
            "tickets": self.notes.to_json(),
            "notes": self.messages[-5:],
        }

    def view(self, incident: Any = None, *, ended: str | None = None, by: str | None = None):
        engine = self.engine
        tracks = list(engine.tracks.values()) if engine else list(self._tracks.values())
        headline = engine.headline if engine else self._headline
        return WatchView(
            watch_id=self.row.id,
            env=self.row.env,
            every=self.row.every_s,
            ends_at=self.row.ends_at,
            tracks=tracks,
            headline=headline,
            tick=self.row.tick,
            ended=ended,
            stopped_by=by,
            offer_monitoring=ended is None and _offers_monitoring(headline, incident),
            notes=self.messages,
        )

    async def _post_message(self, store: Any) -> None:
        text, blocks = message(self.view())
        ts = await self.services.outbound.post(self.row.channel_id, text, blocks)
        await asyncio.to_thread(store.set_watch_message, self.row.id, ts)
        self.row = await asyncio.to_thread(store.watch, self.row.id)

    async def _incident(self) -> Any:
        if self.row.incident_id is None:
            return None
        return await asyncio.to_thread(self.services.store().incident, self.row.incident_id)

    async def _update(self, incident: Any) -> None:
        if not self.supervisor.budget.take():
            return  # Slack's chat.update limit: the next tick shows this one too
        # Stopped while this tick ran: the final view is already there, leave it.
        current = await asyncio.to_thread(self.services.store().watch, self.row.id)
        if current.status != "active":
            return
        text, blocks = message(self.view(incident))
        await self.services.outbound.update(self.row.channel_id, self.row.message_ts, text, blocks)

    async def _transition(self, previous: Headline, incident: Any, tick: Any) -> None:
        engine = self.engine
        assert engine is not None
        head = engine.headline
        if incident is not None:
            store = self.services.store()
            ref = f"watch:{self.row.id}"
            if tick.report is not None:
                from bot.incident.store import watch_actor

                # The run that showed the change is the incident's evidence of it: summaries
                # and exports read each check's state from recorded runs, so without it a
                # recovered hop would still be summarised as failing.
                run_id = await asyncio.to_thread(
                    store.record_run,
                    tick.report.to_json(),
                    incident_id=incident.id,
                    channel=self.row.channel_id,
                    requested_by=watch_actor(self.row.id),
                    on_timeline=False,
                    now=self.services.clock(),
                )
                ref = f"{ref} run:{run_id}"
            await asyncio.to_thread(
                store.add_timeline,
                incident.id,
                "watch",
                f"Watch #{self.row.id}: {TITLES[previous.name].lower()} → "
                f"{TITLES[head.name].lower()} ({head.detail})",
                ref=ref,
                now=self.services.clock(),
            )
        if head.name in ANNOUNCED and self.row.message_ts:
            text, blocks = transition_line(self.view(incident), _offers_monitoring(head, incident))
            await self.services.outbound.post(
                self.row.channel_id, text, blocks, thread_ts=self.row.message_ts
            )

    async def _tickets(self, incident: Any, headline: Headline, previous: Headline) -> None:
        if incident is None or self.engine is None:
            return
        now = time.monotonic()
        recovered_now = headline.name == RECOVERED and previous.name != RECOVERED
        due = now - self._last_ticket_look >= min(self.limits.ticket_every, self.row.every_s * 10)
        if not (due or recovered_now):
            return
        self._last_ticket_look = now
        said = await review_tickets(
            self.services, self.row, incident, self.engine, self.notes, recovered_now=recovered_now
        )
        if said:
            self.messages.extend(said)
            await asyncio.to_thread(
                self.services.store().save_watch,
                self.row.id,
                tick=self.row.tick,
                expected_tick=self.row.tick,
                state=self.state(),
            )

    async def finish(self, how: str, *, by: str | None = None) -> None:
        """End the watch (``ended``: time ran out); the message shows the final state."""
        store = self.services.store()
        ended = await asyncio.to_thread(store.end_watch, self.row.id, status=how)
        if ended:
            await finalize(self.services, self.row, how, by=by, job=self)
        await asyncio.to_thread(
            store.release_lease, lease_name(self.row.id), self.supervisor.holder
        )


async def finalize(
    services: Any, row: WatchRow, how: str, *, by: str | None = None, job: WatchJob | None = None
) -> None:
    """After a watch ended or was stopped: its final view, and one timeline entry."""
    store = services.store()
    row = await asyncio.to_thread(store.watch, row.id)
    job = job or WatchJob(supervisor_for(services), row)
    job.row = row
    view = job.view(ended=how, by=by)
    if row.message_ts:
        text, blocks = message(view)
        await services.outbound.update(row.channel_id, row.message_ts, text, blocks)
    if row.incident_id is not None:
        lasted = format_duration((services.clock() - row.started_at).total_seconds())
        verb = "stopped" if how == "stopped" else "ended"
        await asyncio.to_thread(
            store.add_timeline,
            row.incident_id,
            "watch",
            f"Watch #{row.id} {verb} after {lasted}: {TITLES[view.headline.name].lower()}",
            actor=by,
            ref=f"watch:{row.id}",
            now=services.clock(),
        )


def first_message(row: WatchRow) -> tuple[str, list[dict[str, Any]]]:
    """The watch message before its first tick: every check listed, nothing run yet."""
    view = WatchView(
        watch_id=row.id,
        env=row.env,
        every=row.every_s,
        ends_at=row.ends_at,
        tracks=[CheckTrack(cid) for cid in row.check_ids],
        headline=Headline(detail="the first tick is running"),
    )
    return message(view)


def _offers_monitoring(headline: Headline, incident: Any) -> bool:
    return (
        headline.name == RECOVERED
        and incident is not None
        and incident.status in ("investigating", "identified")
    )


def _until_next_tick(every: float) -> float:
    """Seconds to the next multiple of ``every`` on the clock: watches with the same interval
    tick together and share AWS answers."""
    return every - (time.time() % every)
