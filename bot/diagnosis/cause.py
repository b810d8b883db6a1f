"""Cause attribution: which failing check explains the others along the platform's dependencies.

The first failing hop is where a request first goes wrong; the *cause* is what broke. They
differ when a symptom shows upstream of its cause: MLflow answers 503 because its database is
stopped, the targets are unhealthy because the tasks crash, the targets time out because a
security group drops the load balancer. A failing check *explains* another when a dependency
edge joins them (see ``bot.diagnosis.dependencies``) and, for ``confirmed``, an observation
links them too: the 503 body names the database error, the stopped tasks are the target
group's, the blocked security-group path is the one between the two hops.

Attribution abstains rather than guesses: when the first failure is an application answer
and checks that could explain it did not finish, the cause is ``inconclusive`` and names what
was not checked.

Example::

    cause = attribute(report.outcomes, report.first_failure, model)
    cause.to_json()  # {"id": "data.rds", "layer": "data", ..., "confidence": "confirmed"}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.diagnosis.checks.base import HOP_LAYERS, CheckOutcome, Status
from bot.diagnosis.dependencies import DependencyModel

CONFIRMED = "confirmed"
LIKELY = "likely"
INCONCLUSIVE = "inconclusive"
_RANK = {CONFIRMED: 2, LIKELY: 1, INCONCLUSIVE: 0}

# Words an answer carries when the application behind it cannot use its database.
DATABASE_MARKERS = (
    "psycopg2",
    "operationalerror",
    "temporarily_unavailable",
    "password authentication failed",
    "could not connect to server",
    "connection to server at",
    "database system is",
    "sqlalchemy.exc",
)
_LB_ERRORS = frozenset({502, 503, 504})


# -- what the checks saw on the wire ------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange found in a check's evidence: who answered, with what."""

    status: int | None
    answered_by: str
    error_kind: str | None
    text: str

    @property
    def from_load_balancer(self) -> bool:
        return self.answered_by == "load-balancer"

    @property
    def gateway_error(self) -> bool:
        """The load balancer (or a CDN) answered 502/503/504 itself, or nothing answered."""
        if self.status is None:
            return self.error_kind in ("timeout", "connect")
        return self.answered_by in ("load-balancer", "cdn") and self.status in _LB_ERRORS

    @property
    def names_database_error(self) -> bool:
        lowered = self.text.lower()
        return any(marker in lowered for marker in DATABASE_MARKERS)

    @property
    def refused_by_auth(self) -> bool:
        return self.status in (401, 403) and "invalid host header" not in self.text.lower()


def answers_in(evidence: Any) -> list[Answer]:
    """Every recorded exchange in ``evidence`` (a probe's record, nested anywhere)."""
    found: list[Answer] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            response = value.get("response")
            if isinstance(response, dict) and "status" in response:
                found.append(
                    Answer(
                        response.get("status"),
                        str(value.get("answered_by") or "unknown"),
                        None,
                        str(response.get("excerpt") or ""),
                    )
                )
            elif value.get("error_kind"):
                found.append(
                    Answer(None, "nobody", value["error_kind"], str(value.get("error") or ""))
                )
            for key, item in value.items():
                if key != "response":
                    visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(evidence)
    return found


def _answers(outcome: CheckOutcome) -> list[Answer]:
    found = answers_in(outcome.result.evidence)
    text = " ".join(
        str(outcome.result.evidence.get(k) or "") for k in ("error", "wire_excerpt", "detail")
    )
    if text.strip():
        found.append(Answer(None, "unknown", None, text))
    return found


def _text(outcome: CheckOutcome) -> str:
    return (outcome.result.summary + " " + " ".join(a.text for a in _answers(outcome))).lower()


# -- links ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """``cause`` explains ``effect``: the edge between them and what was seen to link them."""

    cause: str
    effect: str
    confidence: str
    observation: str


Rule = Callable[[CheckOutcome, CheckOutcome, DependencyModel], tuple[str, str] | None]


def _is(outcome: CheckOutcome, *check_ids: str) -> bool:
    return outcome.check_id in check_ids


def _probe_checks(outcome: CheckOutcome) -> bool:
    return outcome.layer in ("app", "auth")


def _dns_explains(cause: CheckOutcome, effect: CheckOutcome, model: DependencyModel):
    if cause.layer != "dns":
        return None
    if _is(cause, "dns.route53-alias") and _is(effect, "dns.resolve"):
        return CONFIRMED, "the address the name resolves to comes from that record"
    if _probe_checks(effect):
        answers = _answers(effect)
        if answers and all(a.status is None and a.error_kind == "connect" for a in answers):
            return CONFIRMED, "the probes could not connect to the public name"
    return None


def _edge_explains(cause: CheckOutcome, effect: CheckOutcome, model: DependencyModel):
    if not (_is(cause, "edge.load-balancer") and _is(effect, "routing.listener-rules")):
        return None
    evidence = effect.result.evidence
    if evidence.get("load_balancer") == cause.subject or "load balancers exists" in (
        effect.result.summary
    ):
        return CONFIRMED, f"the route's rules live on load balancer {cause.subject}"
    return None


def _routing_explains(cause: CheckOutcome, effect: CheckOutcome, model: DependencyModel):
    if not _is(cause, "routing.listener-rules") or not _probe_checks(effect):
        return None
    if cause.subject not in model.routes_of(effect):
        return None
    service = model.route_service(cause.subject)
    for answer in _answers(effect):
        if answer.from_load_balancer and answer.status not in _LB_ERRORS:
            return CONFIRMED, "the load balancer answered the probe itself, as the rules say"
        if answer.status is not None and not model.may_answer(service, answer.answered_by):
            return CONFIRMED, (
                f"the probe was answered by {answer.answered_by}, where the rule sends it, "
                f"not by {service}"
            )
    return None


def _targets_explain(cause: CheckOutcome, effect: CheckOutcome, model: DependencyModel):
    if not _is(cause, "targets.health") or not _probe_checks(effect):
        return None
    if cause.subject not in model.routes_of(effect):
        return None
    if any(a.gateway_error for a in _answers(effect)):
        return CONFIRMED, "the load balancer answered the route itself: no healthy target"
    return None


def _service_explains(cause: CheckOutcome, effect: CheckOutcome, model: DependencyModel):
    if not _is(cause, "compute.ecs-service"):
        return None
    service = cause.subject
    if _is(effect, "targets.health") and model.route_service(effect.subject) == service:
        if model.shares_target_group(cause, effect):
            return CONFIRMED, f"the target group's tasks are {service}'s"
        return LIKELY, f"the route's targets are {service}'s tasks"
    if _is(effect, "compute.cloud-map") and effect.subject == service:
        return CONFIRMED, f"Cloud Map registers {service}'s running tasks"
    on_path = _probe_checks(effect) and service in model.services_behind(effect)
    if on_path and any(a.gateway_error or _proxy_error(a, model) for a in _answers(effect)):
        return LIKELY, f"{service} is on the probe's path and has no running tasks"
    return None


def _proxy_error(answer: Answer, model: DependencyModel) -> bool:
    """A proxy in front of another service answered 5xx (its upstream failed)."""
    return (
        answer.status is not None
        and answer.status >= 500
        and answer.answered_by
        in (
            "fastapi",
            "nginx",
        )
    )


def _discovery_explains(cause: CheckOutcome, effect: CheckOutcome, model: DependencyModel):
    if not _is(cause, "compute.cloud-map") or not _probe_checks(effect):
        return None
    behind = cause.subject in model.upstreams_behind(effect)
    if behind and any(_proxy_error(a, model) for a in _answers(effect)):
        return LIKELY, f"the proxy finds {cause.subject} through its Cloud Map name"
    return None


def _network_explains(cause: CheckOutcome, effect: CheckOutcome, model: DependencyModel):
    if not _is(cause, "network.security-groups"):
        return None
    for path in _blocked_paths(cause):
        source, dest = path.get("from", ""), path.get("to", "")
        from_lb = source.startswith("load balancer")
        where = f"{', '.join(path.get('to_groups', []))} between {source} and {dest}"
        if (
            _is(effect, "targets.health")
            and from_lb
            and model.route_service(effect.subject) == dest
            and _timed_out_targets(effect)
        ):
            return CONFIRMED, f"the targets time out and the security group {where} drops it"
        answers = _answers(effect) if _probe_checks(effect) else []
        if (
            from_lb
            and dest in model.services_behind(effect)
            and any(a.gateway_error for a in answers)
        ):
            return CONFIRMED, f"the load balancer gets no answer through {where}"
        if (
            not from_lb
            and dest in model.upstreams_behind(effect)
            and any(_proxy_error(a, model) or a.status is None for a in answers)
        ):
            return CONFIRMED, f"the proxy gets no answer through {where}"
        if _is(effect, "data.backend-store") and dest.startswith("RDS"):
            return CONFIRMED, f"MLflow's connection to the database crosses {where}"
    return None


def _blocked_paths(outcome: CheckOutcome) -> list[dict[str, Any]]:
    return [
        p
        for p in outcome.result.evidence.get("paths", [])
        if not (p.get("inbound_allowed") and p.get("outbound_allowed"))
    ]


def _timed_out_targets(outcome: CheckOutcome) -> bool:
    for group in outcome.result.evidence.get("target_groups", []):
        for target in group.get("targets", []):
            if target.get("reason") in ("Target.Timeout", "Target.FailedHealthChecks"):
                return True
    return False


def _task_config_explains(cause: CheckOutcome, effect: CheckOutcome, model: DependencyModel):
    if not _is(cause, "compute.task-config"):
        return None
    failed = [f for f in cause.result.evidence.get("findings", []) if f.get("status") == "fail"]
    settings = {f.get("setting") for f in failed}
    if _is(effect, "data.backend-store") and "--backend-store-uri" in settings:
        return CONFIRMED, "the backend store URI MLflow uses is the one the finding names"
    if not _probe_checks(effect):
        return None
    answers = _answers(effect)
    text = _text(effect)
    host_settings = {"--allowed-hosts", "MLFLOW_SERVER_ALLOWED_HOSTS"}
    if settings & host_settings and "invalid host header" in text:
        return CONFIRMED, "MLflow refused the Host header the finding names"
    if "--static-prefix" in settings and any(
        a.status == 404 and a.answered_by == "mlflow" for a in answers
    ):
        return CONFIRMED, "MLflow answered 404 for a path outside its static prefix"
    proxy = cause.subject
    upstream_settings = settings - host_settings - {"--static-prefix", "--backend-store-uri"}
    if (
        upstream_settings
        and proxy in model.services_behind(effect)
        and any(
            _proxy_error(a, model) or (a.status == 404 and a.answered_by == "fastapi")
            for a in answers
        )
    ):
        names = ", ".join(sorted(upstream_settings))
        return CONFIRMED, f"{proxy} answered with an upstream error; its {names} is wrong"
    return None


def _database_explains(cause: CheckOutcome, effect: CheckOutcome, model: DependencyModel):
    if not _is(cause, "data.rds", "data.backend-store"):
        return None
    if _is(cause, "data.rds") and _is(effect, "data.backend-store"):
        return CONFIRMED, "MLflow's database connections go to that instance"
    if _probe_checks(effect) and any(a.names_database_error for a in _answers(effect)):
        return CONFIRMED, "the answer names the database error"
    if _is(effect, "compute.ecs-service") and model.uses_database(effect.subject):
        evidence = cause.result.evidence
        if evidence.get("source") == "logs" and evidence.get("service") == effect.subject:
            return CONFIRMED, "the stopped tasks' own log names the database error"
        return LIKELY, f"{effect.subject} needs the database to start"
    return None


def _auth_explains(cause: CheckOutcome, effect: CheckOutcome, model: DependencyModel):
    if not _is(cause, "auth.api-key") or effect.layer != "app":
        return None
    if cause.subject in model.routes_of(effect) and any(
        a.refused_by_auth for a in _answers(effect)
    ):
        return CONFIRMED, "the probe was refused by the same key check"
    return None


RULES: tuple[Rule, ...] = (
    _dns_explains,
    _edge_explains,
    _routing_explains,
    _targets_explain,
    _service_explains,
    _discovery_explains,
    _network_explains,
    _task_config_explains,
    _database_explains,
    _auth_explains,
)


def links(outcomes: Sequence[CheckOutcome], model: DependencyModel) -> list[Link]:
    """Every (cause, effect) pair among failing hops that a rule joins."""
    failing = [o for o in outcomes if o.status is Status.FAIL and o.layer in HOP_LAYERS]
    found = []
    for effect in failing:
        for cause in failing:
            if cause is effect:
                continue
            for rule in RULES:
                joined = rule(cause, effect, model)
                if joined:
                    found.append(Link(cause.id, effect.id, *joined))
                    break
    return found


# -- the cause ------------------------------------------------------------------------------


@dataclass
class Cause:
    """What broke, what it explains, and how sure the run is."""

    id: str | None
    layer: str | None
    classification: str | None
    summary: str
    explains: list[str] = field(default_factory=list)
    confidence: str = CONFIRMED
    observations: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "layer": self.layer,
            "classification": self.classification,
            "summary": self.summary,
            "explains": list(self.explains),
            "confidence": self.confidence,
            "observations": list(self.observations),
        }


def attribute(
    outcomes: Sequence[CheckOutcome], first: CheckOutcome | None, model: DependencyModel
) -> Cause | None:
    """The cause behind ``first`` (the first failing hop), or None when nothing failed."""
    if first is None:
        return None
    by_id = {o.id: o for o in outcomes}
    joined = links(outcomes, model)
    parents: dict[str, list[Link]] = {}
    children: dict[str, list[Link]] = {}
    for link in joined:
        parents.setdefault(link.effect, []).append(link)
        children.setdefault(link.cause, []).append(link)

    path: list[Link] = []
    current = first.id
    seen = {current}
    while parents.get(current):
        best = max(parents[current], key=lambda lk: (_RANK[lk.confidence], _depth(by_id[lk.cause])))
        if best.cause in seen:
            break
        path.append(best)
        seen.add(best.cause)
        current = best.cause
    root = by_id[current]
    explained = _descendants(root.id, children)
    unfinished = _unfinished(outcomes)
    reasons = unfinished_reasons(outcomes)
    if path:
        confidence = min((lk.confidence for lk in path), key=lambda c: _RANK[c])
    else:
        confidence = _direct_confidence(root, unfinished)
    if confidence == INCONCLUSIVE:
        return Cause(
            id=None,
            layer=None,
            classification=None,
            summary=(
                f"{root.id} may be explained by what was not checked: "
                + "; ".join(f"{reason} ({', '.join(ids[:2])})" for reason, ids in reasons[:3])
            ),
            confidence=INCONCLUSIVE,
            not_checked=unfinished,
        )
    classification = root.result.classification
    return Cause(
        id=root.id,
        layer=root.layer,
        classification=str(classification) if classification else None,
        summary=root.result.summary,
        explains=[o.id for o in outcomes if o.id in explained],
        confidence=confidence,
        observations=[lk.observation for lk in reversed(path)],
        not_checked=unfinished,
    )


def _depth(outcome: CheckOutcome) -> int:
    return HOP_LAYERS.index(outcome.layer) if outcome.layer in HOP_LAYERS else -1


def _descendants(root: str, children: dict[str, list[Link]]) -> set[str]:
    found: set[str] = set()
    pending = [root]
    while pending:
        for link in children.get(pending.pop(), []):
            if link.effect not in found and link.effect != root:
                found.add(link.effect)
                pending.append(link.effect)
    return found


def _unfinished(outcomes: Iterable[CheckOutcome]) -> list[str]:
    return [
        o.id
        for o in outcomes
        if o.layer in HOP_LAYERS and o.status in (Status.ERROR, Status.TIMEOUT)
    ]


def _direct_confidence(root: CheckOutcome, unfinished: list[str]) -> str:
    """How sure a failure nothing explains is its own cause.

    A configuration or infrastructure fact a check read (a rule, a stopped instance) is its
    own cause. An application's error answer may hide a cause further down: with checks that
    could have shown it unfinished, abstain; otherwise it is likely, not confirmed.
    """
    if root.layer not in ("app", "auth"):
        return CONFIRMED
    if unfinished:
        return INCONCLUSIVE
    answers = _answers(root)
    if any(a.status is not None and a.status >= 500 for a in answers):
        return LIKELY
    return CONFIRMED


NOT_CHECKED = "not checked: "


def unfinished_reasons(outcomes: Iterable[CheckOutcome]) -> list[tuple[str, list[str]]]:
    """Why checks did not finish, most common reason first: ``("AccessDenied on x:Y", [ids])``."""
    groups: dict[str, list[str]] = {}
    for outcome in outcomes:
        if outcome.status not in (Status.ERROR, Status.TIMEOUT):
            continue
        summary = outcome.result.summary.rstrip(". ")
        if outcome.status is Status.TIMEOUT:
            reason = f"timed out ({summary})"
        elif summary.startswith(NOT_CHECKED):
            reason = summary[len(NOT_CHECKED) :]
        else:
            # The same error text, the check-specific part stripped, names a shared cause.
            reason = summary.split(": ", 1)[-1][:160]
        groups.setdefault(reason, []).append(outcome.id)
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))
