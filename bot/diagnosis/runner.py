"""Runs checks concurrently along the request path and finds the first failing hop.

Independent checks run at the same time, each under its own timeout; a check that ``needs``
another starts when that one has finished and sees its outcome through ``ctx.upstream``. A
check never raises out of the runner: exceptions become ``error`` outcomes, overruns become
``timeout`` outcomes, so a hung check costs its timeout and no more.

Scopes (``/hokusai diagnose edge mlflow-proxy``) narrow a run:

- a layer (``routing``): every check of that layer;
- a check id (``targets.health``) or one instance (``targets.health[mlflow-proxy]``);
- a route name (``mlflow-proxy``): the route's whole path, i.e. every check that is not
  bound to another route or to a service other than the route's own;
- an ECS service name (``hokusai-mlflow-development``): that service's checks.

Checks a selected check ``needs`` are pulled in and reported too (``report.pulled_in``).

Example::

    report = await Runner(env).run(["routing"])
    print(report.verdict)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from bot.diagnosis.aws import (
    AwsAccessDenied,
    AwsCaller,
    AwsNotChecked,
    ReadOnlyViolation,
    allowed_actions,
    current_check,
    describe_error,
    read_only_session,
)
from bot.diagnosis.aws_cache import AwsReadCache
from bot.diagnosis.cause import Cause, attribute
from bot.diagnosis.checks.base import (
    LAYERS,
    Check,
    CheckContext,
    CheckInstance,
    CheckOutcome,
    CheckResult,
    Classification,
    Status,
    first_failing_hop,
)
from bot.diagnosis.dependencies import DependencyModel
from bot.diagnosis.verdict import build_verdict
from bot.errors import HokusaiError
from bot.offload import offload
from bot.redaction import default_redactor
from bot.tls import client_context

if TYPE_CHECKING:
    from bot.config import Environment

log = logging.getLogger(__name__)

OutcomeCallback = Callable[[CheckOutcome], Awaitable[None] | None]

# Timeout of the HTTP client the runner builds when none is given (checks have their own budget).
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class UnknownScope(HokusaiError, ValueError):
    """A scope that is neither a layer, a check, a route nor a service."""

    def __init__(self, scope: str, valid: Sequence[str]) -> None:
        self.scope = scope
        self.valid = list(valid)
        super().__init__(f"unknown scope {scope!r}; valid scopes: {', '.join(self.valid)}")


@dataclass
class DiagnoseReport:
    """The result of one diagnose run; ``to_json()`` is the ``--json`` contract."""

    env: str
    scopes: list[str]
    started_at: str
    duration_ms: int
    outcomes: list[CheckOutcome]
    first_failure: CheckOutcome | None
    verdict: str
    pulled_in: list[str] = field(default_factory=list)
    # What broke, which may sit downstream of the first failing hop (bot.diagnosis.cause).
    cause: Cause | None = None
    dependencies: DependencyModel | None = None

    def outcome(self, instance_id: str) -> CheckOutcome | None:
        return next((o for o in self.outcomes if o.id == instance_id), None)

    def to_json(self) -> dict[str, Any]:
        first = self.first_failure
        return {
            "env": self.env,
            "scopes": list(self.scopes),
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
            # Each check as CheckOutcome.to_json: the contract's keys plus the hint.
            "checks": [o.to_json() for o in self.outcomes],
            "first_failure": (
                {
                    "id": first.id,
                    "layer": first.layer,
                    "classification": (
                        str(first.result.classification) if first.result.classification else None
                    ),
                    "summary": first.result.summary,
                }
                if first
                else None
            ),
            "cause": self.cause.to_json() if self.cause else None,
            "verdict": self.verdict,
            # The edges the cause was traced along, each with what revealed it.
            "dependencies": self.dependencies.to_json() if self.dependencies else [],
        }


class Runner:
    """Selects and runs checks for one environment.

    Args:
        env: the environment to diagnose.
        aws: the read-only caller; built from ``read_only_session(env.region)`` if None.
        http: the HTTP client the checks share; one is built per run if None.
        secrets: values checks may use (the API key); by default the variable named by
            ``env.auth.api_key_env``, when set.
        checks: the checks to choose from; default: every registered check.
        http_latency: seconds added to every HTTP request (benchmarks).
        concurrency: at most this many checks at once; None: no limit, 1: one at a time.
    """

    def __init__(
        self,
        env: Environment,
        *,
        aws: AwsCaller | None = None,
        http: httpx.AsyncClient | None = None,
        secrets: dict[str, str] | None = None,
        checks: dict[str, Check] | None = None,
        http_latency: float = 0.0,
        concurrency: int | None = None,
    ) -> None:
        self.env = env
        self.aws = aws
        self.http = http
        self.secrets = secrets if secrets is not None else _secrets_from_environment(env)
        if checks is None:
            import bot.diagnosis.checks  # registers the built-in checks

            checks = dict(bot.diagnosis.checks.REGISTRY)
        self.checks = checks
        self.http_latency = http_latency
        self.concurrency = concurrency

    # -- selection -------------------------------------------------------------------------

    def _subjects(self, check: Check) -> list[str | None]:
        if check.per == "route":
            return [r.name for r in self.env.routes]
        if check.per == "service":
            return [s.name for s in self.env.ecs.services] if self.env.ecs else []
        if check.per == "load_balancer":
            return list(self.env.load_balancers)
        return [None]

    def instances(self) -> list[CheckInstance]:
        """Every instance of every check, in request-path order."""
        order = {cid: i for i, cid in enumerate(self.checks)}
        out = [
            CheckInstance(c, subject) for c in self.checks.values() for subject in self._subjects(c)
        ]
        return sorted(out, key=lambda i: (_layer_index(i.layer), order[i.check.id]))

    def valid_scopes(self) -> list[str]:
        """Layers, check ids, route names and service names, in that order."""
        services = [s.name for s in self.env.ecs.services] if self.env.ecs else []
        return [*LAYERS, *self.checks, *(r.name for r in self.env.routes), *services]

    def _matches(self, instance: CheckInstance, scope: str) -> bool:
        check = instance.check
        routes = {r.name: r for r in self.env.routes}
        if scope in (check.layer, check.id, instance.id):
            return True
        if scope in routes:
            if check.per == "route":
                return instance.subject == scope
            if check.per == "service":
                return instance.subject == routes[scope].service
            return True
        if self.env.service(scope) is not None:
            return check.per == "service" and instance.subject == scope
        return False

    def _is_scope(self, scope: str) -> bool:
        if scope in self.valid_scopes():
            return True
        return any(i.id == scope for i in self.instances())

    def select(self, scopes: Sequence[str] = ()) -> list[CheckInstance]:
        """The instances a run over ``scopes`` executes, with the ones they need, in path order.

        Raises:
            UnknownScope: a scope names nothing known.
        """
        for scope in scopes:
            if not self._is_scope(scope):
                raise UnknownScope(scope, self.valid_scopes())
        everything = self.instances()
        if not scopes:
            return everything
        chosen = {i for i in everything if any(self._matches(i, s) for s in scopes)}
        pending = list(chosen)
        while pending:
            for need in self.needs_of(pending.pop(), everything):
                if need not in chosen:
                    chosen.add(need)
                    pending.append(need)
        return [i for i in everything if i in chosen]

    def requested(self, scopes: Sequence[str]) -> list[CheckInstance]:
        """The instances ``scopes`` name themselves, without the ones they need, in path order
        (everything when there is no scope).

        Raises:
            UnknownScope: a scope names nothing known.
        """
        return [i for i in self.select(scopes) if not scopes or self._requested_by(i, scopes)]

    def _requested_by(self, instance: CheckInstance, scopes: Sequence[str]) -> bool:
        return any(self._matches(instance, s) for s in scopes)

    def needs_of(
        self, instance: CheckInstance, pool: Sequence[CheckInstance]
    ) -> list[CheckInstance]:
        """The instances ``instance`` waits for: the same subject when both are per the same
        kind of subject, every instance otherwise."""
        out = []
        for need_id in instance.check.needs:
            need = self.checks.get(need_id)
            if need is None:  # its module is not installed: the check sees no upstream
                continue
            same_kind = need.per is not None and need.per == instance.check.per
            out.extend(
                i
                for i in pool
                if i.check.id == need_id and (not same_kind or i.subject == instance.subject)
            )
        return out

    # -- running ---------------------------------------------------------------------------

    async def run(
        self, scopes: Sequence[str] = (), on_outcome: OutcomeCallback | None = None
    ) -> DiagnoseReport:
        """Run the checks selected by ``scopes`` and build the report."""
        instances = self.select(scopes)
        requested = self._requested(scopes) if scopes else set(instances)
        started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        loop = asyncio.get_running_loop()
        start = loop.time()
        own_aws = self.aws is None
        aws = self.aws or AwsCaller(
            read_only_session(self.env.region, allowed=allowed_actions(self.checks.values()))
        )
        own_http = self.http is None
        http = self.http or httpx.AsyncClient(
            timeout=HTTP_TIMEOUT, follow_redirects=False, verify=client_context()
        )
        hook = self._latency_hook() if self.http_latency else None
        if hook:
            http.event_hooks["request"].append(hook)
        try:
            # One run is one snapshot: checks asking the same read share one call.
            reads = AwsReadCache(aws.call)
            outcomes = await self._run_all(instances, reads, http, on_outcome)
        finally:
            if hook:
                http.event_hooks["request"].remove(hook)
            if own_http:
                await http.aclose()
            if own_aws:
                aws.close()
        ordered = [outcomes[i.id] for i in instances]
        first = first_failing_hop(ordered)
        model = DependencyModel.build(self.env, ordered)
        cause = attribute(ordered, first, model)
        return DiagnoseReport(
            env=self.env.name,
            scopes=list(scopes),
            started_at=started_at,
            duration_ms=round((loop.time() - start) * 1000),
            outcomes=ordered,
            first_failure=first,
            verdict=build_verdict(ordered, first, cause, scopes=scopes),
            pulled_in=[i.id for i in instances if i not in requested],
            cause=cause,
            dependencies=model,
        )

    def _requested(self, scopes: Sequence[str]) -> set[CheckInstance]:
        return {i for i in self.instances() if any(self._matches(i, s) for s in scopes)}

    def _latency_hook(self) -> Callable[[httpx.Request], Awaitable[None]]:
        async def delay(_: httpx.Request) -> None:
            await asyncio.sleep(self.http_latency)

        return delay

    async def _run_all(
        self,
        instances: list[CheckInstance],
        aws: AwsReadCache,
        http: httpx.AsyncClient,
        on_outcome: OutcomeCallback | None,
    ) -> dict[str, CheckOutcome]:
        done: dict[str, asyncio.Future[CheckOutcome]] = {
            i.id: asyncio.get_running_loop().create_future() for i in instances
        }
        limit = asyncio.Semaphore(self.concurrency) if self.concurrency else None

        async def run_one(instance: CheckInstance) -> None:
            needs = self.needs_of(instance, instances)
            upstream = {n.id: await done[n.id] for n in needs}
            if limit is None:
                outcome = await self._execute(instance, aws, http, upstream)
            else:
                async with limit:
                    outcome = await self._execute(instance, aws, http, upstream)
            done[instance.id].set_result(outcome)
            if on_outcome is not None:
                await _notify(on_outcome, outcome)

        _check_acyclic(instances, self.needs_of)
        await asyncio.gather(*(run_one(i) for i in instances))
        return {key: future.result() for key, future in done.items()}

    async def _execute(
        self,
        instance: CheckInstance,
        aws: AwsReadCache,
        http: httpx.AsyncClient,
        upstream: dict[str, CheckOutcome],
    ) -> CheckOutcome:
        """Run one instance under its timeout; whatever happens, return an outcome."""
        check = instance.check
        ctx = CheckContext(
            self.env,
            subject=instance.subject,
            aws_call=aws.call,
            http=http,
            upstream=upstream,
            secrets=self.secrets,
            deadline=time.monotonic() + check.timeout,
        )
        token = current_check.set(check.id)
        started = time.monotonic()
        try:
            async with asyncio.timeout(check.timeout):
                result = await check.run(ctx)
            if not isinstance(result, CheckResult):
                result = CheckResult.errored(
                    f"check returned {type(result).__name__}, not a result"
                )
        except TimeoutError:
            result = CheckResult(
                Status.TIMEOUT,
                f"did not answer within {check.timeout:g}s",
                {"timeout_s": check.timeout},
                hint="the service it asks is slow or hung; run it alone to see its own error",
            )
        except AwsAccessDenied as exc:
            result = CheckResult.errored(
                f"not checked: {exc.reason}",
                hint=f"grant {exc.permission} to the bot's role (hokusai diagnose --iam-policy); "
                "this says nothing about whether the resource exists",
                permission=exc.permission,
                aws_message=exc.detail,
            )
        except AwsNotChecked as exc:
            result = CheckResult.errored(
                f"not checked: {exc.reason}",
                hint="AWS did not answer the read; run it again, or check AWS_ENDPOINT_URL and "
                "the network path to AWS",
                action=exc.action,
                aws_message=exc.detail,
            )
        except ReadOnlyViolation as exc:
            result = CheckResult.errored(str(exc), operation=f"{exc.service}:{exc.operation}")
        except Exception as exc:
            log.warning("check %s raised %s", instance.id, type(exc).__name__)
            result = CheckResult.errored(describe_error(exc))
        finally:
            current_check.reset(token)
        # Evidence can be large (log lines): redacting it is CPU work, kept off the loop.
        await offload(_redact_result, result)
        return CheckOutcome(
            id=instance.id,
            check_id=check.id,
            layer=check.layer,
            subject=instance.subject,
            result=result,
            duration_ms=round((time.monotonic() - started) * 1000),
        )


def _redact_result(result: CheckResult) -> None:
    """Redact what a check reports while it is still structured: key names (``DB_PASSWORD``
    in an ECS environment, ``api_key`` in a body) say what is secret, and rendered text no
    longer can. The outbound choke point redacts the rendered text again."""
    redactor = default_redactor()
    result.summary = redactor.redact_text(result.summary)
    if result.hint:
        result.hint = redactor.redact_text(result.hint)
    result.evidence = redactor.redact(result.evidence)


async def _notify(callback: OutcomeCallback, outcome: CheckOutcome) -> None:
    """Tell the progress display; its failure must not stop the run."""
    try:
        value = callback(outcome)
        if inspect.isawaitable(value):
            await value
    except Exception:
        log.exception("on_outcome callback failed for %s", outcome.id)


def _check_acyclic(
    instances: list[CheckInstance],
    needs: Callable[[CheckInstance, Sequence[CheckInstance]], list[CheckInstance]],
) -> None:
    """Refuse a needs cycle up front: it would wait forever."""
    state: dict[str, int] = {}

    def visit(instance: CheckInstance, path: tuple[str, ...]) -> None:
        if state.get(instance.id) == 2:
            return
        if state.get(instance.id) == 1:
            raise ValueError(f"checks need each other in a cycle: {' -> '.join(path)}")
        state[instance.id] = 1
        for need in needs(instance, instances):
            visit(need, (*path, need.id))
        state[instance.id] = 2

    for instance in instances:
        visit(instance, (instance.id,))


def _layer_index(layer: str) -> int:
    return LAYERS.index(layer) if layer in LAYERS else len(LAYERS)


def _secrets_from_environment(env: Environment) -> dict[str, str]:
    if env.auth is None:
        return {}
    value = os.environ.get(env.auth.api_key_env)
    return {env.auth.api_key_env: value} if value else {}


__all__ = [
    "Classification",
    "DiagnoseReport",
    "Runner",
    "UnknownScope",
    "build_verdict",
    "first_failing_hop",
]
