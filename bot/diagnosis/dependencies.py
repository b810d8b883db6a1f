"""The platform's dependency model: which part needs which, and what revealed each edge.

Edges come from three places, weakest first:

- ``hokusai.yml`` routes: the public name reaches each route's service; a route whose probe
  is an MLflow API path but whose service is not MLflow means that service proxies MLflow.
- what the run read from AWS: the API's upstream URL matched against Cloud Map and the
  configured services (``compute.task-config``), MLflow's backend store URI against the RDS
  instance, the security-group paths between the hops (``network.security-groups``).
- ``hokusai.yml`` ``dependencies``: edges stated by hand, or inferred ones switched off
  (``absent: true``).

Example::

    model = DependencyModel.build(env, report.outcomes)
    model.upstreams("hokusai-api-development")   # {"hokusai-mlflow-development", "database"}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from bot.config import Environment
    from bot.diagnosis.checks.base import CheckOutcome

PUBLIC = "public"
DATABASE = "database"
MLFLOW_API = "/api/2.0/mlflow"


@dataclass(frozen=True)
class Dependency:
    """``source`` needs ``target``; ``via`` says what showed it."""

    source: str
    target: str
    kind: str  # route, upstream, backend-store, stated
    via: str

    def to_json(self) -> dict[str, str]:
        return {"from": self.source, "to": self.target, "kind": self.kind, "via": self.via}


class DependencyModel:
    """Edges between the public name, the services and the database."""

    def __init__(self, env: Environment, edges: Iterable[Dependency]) -> None:
        self.env = env
        self.edges: list[Dependency] = []
        for edge in edges:
            if not any((e.source, e.target) == (edge.source, edge.target) for e in self.edges):
                self.edges.append(edge)

    @classmethod
    def build(cls, env: Environment, outcomes: Iterable[CheckOutcome] = ()) -> DependencyModel:
        outcomes = list(outcomes)
        edges = [*_route_edges(env), *_observed_edges(env, outcomes), *_database_edges(env)]
        edges += _probe_edges(env)
        stated = list(getattr(env, "dependencies", None) or [])
        removed = {(d.source, d.target) for d in stated if d.absent}
        edges = [e for e in edges if (e.source, e.target) not in removed]
        edges += [
            Dependency(d.source, d.target, "stated", d.via or "hokusai.yml dependencies")
            for d in stated
            if not d.absent
        ]
        return cls(env, edges)

    # -- questions the attribution asks ------------------------------------------------------

    def needs(self, source: str) -> set[str]:
        """What ``source`` needs, directly."""
        return {e.target for e in self.edges if e.source == source}

    def upstreams(self, service: str) -> set[str]:
        """Everything ``service`` needs, transitively."""
        found: set[str] = set()
        pending = [service]
        while pending:
            for target in self.needs(pending.pop()):
                if target not in found and target != service:
                    found.add(target)
                    pending.append(target)
        return found

    def uses_database(self, service: str | None) -> bool:
        return service is not None and DATABASE in self.upstreams(service)

    def route_service(self, route_name: str | None) -> str | None:
        route = next((r for r in self.env.routes if r.name == route_name), None)
        return route.service if route else None

    def routes_of(self, outcome: CheckOutcome) -> set[str]:
        """The routes an outcome's probes went through."""
        route_names = {r.name for r in self.env.routes}
        if outcome.subject in route_names:
            return {outcome.subject}
        if outcome.check_id == "app.mlflow-health":
            return {r.name for r in self.env.routes if self._reaches_mlflow(r.service)}
        if outcome.check_id.startswith("app.mlflow") and self.env.mlflow is not None:
            route = tracking_route(self.env)
            return {route} if route else set()
        return set()

    def services_behind(self, outcome: CheckOutcome) -> set[str]:
        """The services a probe's answer depends on: the route's service and its upstreams."""
        found: set[str] = set()
        for route in self.routes_of(outcome):
            service = self.route_service(route)
            if service:
                found |= {service} | self.upstreams(service)
        return found

    def upstreams_behind(self, outcome: CheckOutcome) -> set[str]:
        """The services behind a probe's first service (reached through a proxy)."""
        found: set[str] = set()
        for route in self.routes_of(outcome):
            service = self.route_service(route)
            if service:
                found |= self.upstreams(service)
        return found

    def may_answer(self, service: str | None, responder: str) -> bool:
        """Whether ``responder`` can be ``service`` itself (or an upstream it passes through)."""
        if service is None or responder == "unknown":
            return True
        kinds = {_kind(self.env, service)} | {
            _kind(self.env, s) for s in self.upstreams(service) if s != DATABASE
        }
        return responder in kinds

    def shares_target_group(self, service_outcome: CheckOutcome, targets: CheckOutcome) -> bool:
        mine = set(service_outcome.result.evidence.get("target_groups") or [])
        theirs = {g.get("target_group") for g in targets.result.evidence.get("target_groups", [])}
        return bool(mine & theirs)

    def _reaches_mlflow(self, service: str) -> bool:
        return _kind(self.env, service) == "mlflow" or any(
            _kind(self.env, s) == "mlflow" for s in self.upstreams(service) if s != DATABASE
        )

    def to_json(self) -> list[dict[str, str]]:
        return [e.to_json() for e in self.edges]


def _kind(env: Environment, service: str) -> str:
    """The kind of server a service is, as ``who_answered`` names it."""
    spec = env.service(service)
    if spec is None:
        return "unknown"
    if spec.is_mlflow:
        return "mlflow"
    kind = (spec.kind or "").lower()
    return "nginx" if kind == "nginx" else "fastapi"


def tracking_route(env: Environment) -> str | None:
    """The route the tracking URI's path goes through (longest prefix)."""
    if env.mlflow is None:
        return None
    path = urlsplit(env.mlflow.tracking_uri).path or "/"
    best, best_len = None, -1
    for route in env.routes:
        prefix = route.path.rstrip("*").rstrip("/")
        if (path == prefix or path.startswith(prefix + "/")) and len(prefix) > best_len:
            best, best_len = route.name, len(prefix)
    return best


def _route_edges(env: Environment) -> list[Dependency]:
    return [
        Dependency(PUBLIC, r.service, "route", f"route {r.name} ({r.path})") for r in env.routes
    ]


def _probe_edges(env: Environment) -> list[Dependency]:
    """A non-MLflow service whose route probes an MLflow path proxies MLflow (weakest edge)."""
    mlflow = [s.name for s in (env.ecs.services if env.ecs else []) if s.is_mlflow]
    out = []
    for route in env.routes:
        spec = env.service(route.service)
        if spec is None or spec.is_mlflow or MLFLOW_API not in route.probe:
            continue
        for target in mlflow:
            out.append(
                Dependency(route.service, target, "upstream", f"route {route.name} probes MLflow")
            )
    return out


def _database_edges(env: Environment) -> list[Dependency]:
    if env.database is None:
        return []
    return [
        Dependency(
            s.name, DATABASE, "backend-store", f"database.rds_instance {env.database.rds_instance}"
        )
        for s in (env.ecs.services if env.ecs else [])
        if s.is_mlflow
    ]


def _observed_edges(env: Environment, outcomes: list[CheckOutcome]) -> list[Dependency]:
    """Edges the run read from AWS: upstream URLs matched to services (compute.task-config)."""
    out = []
    for outcome in outcomes:
        if outcome.check_id != "compute.task-config" or outcome.subject is None:
            continue
        for upstream in outcome.result.data.get("upstreams", []):
            target = upstream.get("service")
            if target:
                out.append(Dependency(outcome.subject, target, "upstream", _via(upstream)))
    return out


def _via(upstream: dict[str, Any]) -> str:
    return f"{upstream.get('variable')} ({upstream.get('host')}, {upstream.get('matched_by')})"
