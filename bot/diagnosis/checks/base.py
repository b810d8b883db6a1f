"""The check model: a small declaration plus one async function.

A check declares its ``id``, ``layer``, the AWS operations it ``reads``, a ``timeout`` and the
checks it ``needs``; ``run(ctx)`` returns a ``CheckResult``. Checks never raise: the runner
turns exceptions and timeouts into ``error``/``timeout`` results.

Example::

    @check(id="data.rds", layer="data", reads=["rds:DescribeDBInstances"], timeout=5,
           description="The RDS instance is available; its endpoint and port.")
    async def rds_available(ctx: CheckContext) -> CheckResult:
        resp = await ctx.aws("rds", "describe_db_instances", DBInstanceIdentifier=...)
        ...
        return CheckResult.passed("hokusai-mlflow-development is available", endpoint=...)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from bot.config import EcsService, Environment, Route

# The request path, in order. The first failing hop is the earliest of these with a `fail`.
HOP_LAYERS: tuple[str, ...] = (
    "dns",
    "edge",
    "routing",
    "targets",
    "compute",
    "network",
    "app",
    "auth",
    "data",
)
# Context layers explain; they are never the first failing hop.
CONTEXT_LAYERS: tuple[str, ...] = ("logs", "changes")
LAYERS: tuple[str, ...] = HOP_LAYERS + CONTEXT_LAYERS

HOP_TITLES: dict[str, str] = {
    "dns": "DNS",
    "edge": "Load balancer",
    "routing": "Listener rules",
    "targets": "Target groups",
    "compute": "ECS",
    "network": "Network",
    "app": "Application",
    "auth": "Auth",
    "data": "Database",
    "logs": "Logs",
    "changes": "Recent changes",
}


_T = TypeVar("_T")


def first_failing_hop(found: Iterable[_T]) -> _T | None:
    """The earliest request-path layer with a ``fail``; context layers never count.

    Works on anything with ``status`` and ``layer``: outcomes of a run, findings in the log.
    """
    failing = [f for f in found if f.status == "fail" and f.layer in HOP_LAYERS]  # type: ignore[attr-defined]
    return min(failing, key=lambda f: HOP_LAYERS.index(f.layer)) if failing else None  # type: ignore[attr-defined]


class Status(StrEnum):
    """A check's outcome, and everything it means: whether it is a problem, how it is drawn.

    Renderers, summaries, walkthroughs and the CLI read the meaning from here, never their own
    table. ``Status.of("fail")`` accepts the stored string as well as the enum.
    """

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"

    @classmethod
    def of(cls, value: str | Status) -> Status:
        return cls(value)

    @property
    def is_problem(self) -> bool:
        """Failed, or could not tell: a problem a responder has to look at."""
        return self in (Status.FAIL, Status.ERROR, Status.TIMEOUT)

    @property
    def emoji(self) -> str:
        """How Slack shows it."""
        return _STATUS_LOOK[self][0]

    @property
    def symbol(self) -> str:
        """How a terminal shows it."""
        return _STATUS_LOOK[self][1]

    @property
    def rank(self) -> int:
        """Most urgent first: fail, error, timeout, warn, pass, skipped."""
        return list(_STATUS_LOOK).index(self)


# In order of urgency: (Slack emoji, terminal symbol).
_STATUS_LOOK: dict[Status, tuple[str, str]] = {
    Status.FAIL: (":x:", "✗"),
    Status.ERROR: (":exclamation:", "E"),
    Status.TIMEOUT: (":hourglass:", "T"),
    Status.WARN: (":warning:", "!"),
    Status.PASS: (":white_check_mark:", "✓"),
    Status.SKIPPED: (":white_circle:", "-"),
}
PROBLEM_STATUSES: tuple[Status, ...] = tuple(s for s in Status if s.is_problem)


class Classification(StrEnum):
    INFRASTRUCTURE = "infrastructure"
    APPLICATION = "application"
    CONFIGURATION = "configuration"
    # An unauthenticated 200 on a protected path: the seed warns fixes must not bypass auth.
    SECURITY = "security"


@dataclass
class CheckResult:
    """What a check found. ``evidence`` is structured and JSON-serialisable.

    ``data`` carries values for dependent checks (e.g. the load balancer ARNs the DNS check
    found); it is not reported.
    """

    status: Status
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    classification: Classification | None = None
    hint: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, summary: str, **evidence: Any) -> CheckResult:
        return cls(Status.PASS, summary, evidence)

    @classmethod
    def warned(cls, summary: str, hint: str | None = None, **evidence: Any) -> CheckResult:
        return cls(Status.WARN, summary, evidence, hint=hint)

    @classmethod
    def failed(
        cls,
        summary: str,
        classification: Classification,
        hint: str | None = None,
        **evidence: Any,
    ) -> CheckResult:
        return cls(Status.FAIL, summary, evidence, classification, hint)

    @classmethod
    def skipped(cls, summary: str, **evidence: Any) -> CheckResult:
        return cls(Status.SKIPPED, summary, evidence)

    @classmethod
    def errored(cls, summary: str, hint: str | None = None, **evidence: Any) -> CheckResult:
        return cls(Status.ERROR, summary, evidence, hint=hint)


# What a check is instantiated per. `None`: once per run.
Per = Literal["route", "service", "load_balancer"] | None


@dataclass(frozen=True)
class Check:
    """A registered check. ``run`` is called once per subject (route, service, ...)."""

    id: str
    layer: str
    description: str
    run: Callable[[CheckContext], Awaitable[CheckResult]]
    reads: tuple[str, ...] = ()
    timeout: float = 10.0
    needs: tuple[str, ...] = ()
    per: Per = None

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise ValueError(f"check {self.id}: unknown layer {self.layer!r}")


@dataclass(frozen=True)
class CheckInstance:
    """One check applied to one subject: ``routing.listener-rules[mlflow-proxy]``."""

    check: Check
    subject: str | None = None

    @property
    def id(self) -> str:
        return f"{self.check.id}[{self.subject}]" if self.subject else self.check.id

    @property
    def layer(self) -> str:
        return self.check.layer


@dataclass
class CheckOutcome:
    """A result as reported: the instance's id and layer, timing, and the result."""

    id: str
    check_id: str
    layer: str
    subject: str | None
    result: CheckResult
    duration_ms: int

    @property
    def status(self) -> Status:
        return self.result.status

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "id": self.id,
            "layer": self.layer,
            "status": str(r.status),
            "summary": r.summary,
            "classification": str(r.classification) if r.classification else None,
            "evidence": r.evidence,
            "duration_ms": self.duration_ms,
            "hint": r.hint,  # beyond the report contract: what to look at next
        }


class CheckContext:
    """What a running check may use. Built by the runner; checks never build clients.

    Attributes:
        env: the environment being diagnosed.
        subject: the route/service/load balancer name this instance runs for, or None.
        route / service: the config object of the subject when ``per`` is route/service.
    """

    def __init__(
        self,
        env: Environment,
        *,
        subject: str | None = None,
        aws_call: Callable[..., Awaitable[Any]] | None = None,
        http: Any = None,
        upstream: dict[str, CheckOutcome] | None = None,
        secrets: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> None:
        self.env = env
        self.subject = subject
        self._aws_call = aws_call
        self.http = http  # an httpx.AsyncClient shared by the run
        self._upstream = upstream or {}
        self.secrets = secrets or {}
        self.deadline = deadline

    @property
    def route(self) -> Route | None:
        return next((r for r in self.env.routes if r.name == self.subject), None)

    @property
    def service(self) -> EcsService | None:
        return self.env.service(self.subject) if self.subject else None

    async def aws(self, service: str, operation: str, **params: Any) -> Any:
        """Call a read-only AWS operation in a thread.

        Example: ``await ctx.aws("elbv2", "describe_rules", ListenerArn=arn)``.
        """
        if self._aws_call is None:
            raise RuntimeError("no AWS session in this context")
        return await self._aws_call(service, operation, **params)

    def upstream(self, check_id: str, subject: str | None = None) -> CheckOutcome | None:
        """The outcome of a check this one ``needs`` (by check id, optionally one subject)."""
        key = f"{check_id}[{subject}]" if subject else check_id
        return self._upstream.get(key)

    def upstream_all(self, check_id: str) -> list[CheckOutcome]:
        return [o for o in self._upstream.values() if o.check_id == check_id]


REGISTRY: dict[str, Check] = {}


def check(
    *,
    id: str,
    layer: str,
    description: str,
    reads: Iterable[str] = (),
    timeout: float = 10.0,
    needs: Iterable[str] = (),
    per: Per = None,
) -> Callable[[Callable[[CheckContext], Awaitable[CheckResult]]], Check]:
    """Register a check function. The decorated name becomes the ``Check``."""

    def register(fn: Callable[[CheckContext], Awaitable[CheckResult]]) -> Check:
        if id in REGISTRY:
            raise ValueError(f"check {id} registered twice")
        made = Check(
            id=id,
            layer=layer,
            description=description,
            run=fn,
            reads=tuple(reads),
            timeout=timeout,
            needs=tuple(needs),
            per=per,
        )
        REGISTRY[id] = made
        return made

    return register
