"""The platform shapes the sandbox can build, so no check may assume one topology.

``hokusai`` is the repository's own hokusai.yml: two load balancers, MLflow reachable both
directly (``/api/2.0/mlflow/*``) and through the API's proxy (``/api/mlflow/*``), the key as
``Authorization: Bearer``, us-east-1.

``compact`` is built from the same kind of AWS facts but shaped otherwise: one load balancer,
MLflow reachable only through the gateway's proxy (no route, no target group of its own),
other names (no service is called "mlflow"), the upstream URL in ``MODEL_STORE_URL`` pointing
at the Cloud Map name ``models.svc.local``, the key sent as ``X-Api-Key``, eu-west-2.

A scenario's expected cause names a role (``{mlflow_service}``), filled in per shape.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent.parent

_COMPACT: dict[str, Any] = {
    "default_env": "staging",
    "environments": {
        "staging": {
            "region": "eu-west-2",
            "public": {
                "base_url": "https://models.kumo.example",
                "hostname": "models.kumo.example",
                "hosted_zone": "kumo.example",
            },
            "dns": {"nameservers": []},
            "load_balancers": ["kumo-edge-staging"],
            "routes": [
                {
                    "name": "registry",
                    "path": "/models/*",
                    "service": "kumo-gateway-staging",
                    "probe": "/models/api/2.0/mlflow/experiments/search?max_results=1",
                }
            ],
            "ecs": {
                "cluster": "kumo-staging",
                "services": [
                    {
                        "name": "kumo-gateway-staging",
                        "port": 8080,
                        "kind": "api",
                        "log_group": "/ecs/kumo-gateway-staging",
                    },
                    {
                        "name": "kumo-models-staging",
                        "port": 5000,
                        "kind": "mlflow",
                        "log_group": "/ecs/kumo-models-staging",
                        "discovery": "models.svc.local",
                    },
                ],
            },
            "database": {"rds_instance": "kumo-models-staging"},
            "auth": {"api_key_env": "HOKUSAI_API_KEY", "header": "X-Api-Key", "scheme": None},
            "mlflow": {"tracking_uri": "https://models.kumo.example/models"},
        }
    },
}


@dataclass(frozen=True)
class Shape:
    """How one platform is laid out, and what the sandbox's stand-ins must do to match it."""

    name: str
    proxy_prefix: str  # the API/gateway path that proxies MLflow, prefix stripped
    accept_auth: str  # how the API/gateway reads the key ("bearer", "x-api-key", "token")
    upstream_variables: tuple[str, ...]  # where the API's task definition keeps MLflow's URL
    # What the public name resolves to (public addresses of the internet-facing LB).
    public_addresses: tuple[str, ...] = ("52.44.61.20", "3.215.87.113")
    # Scenarios that make sense on this shape (a break needs the part it breaks).
    scenarios: tuple[str, ...] = ()
    roles: dict[str, str] = field(default_factory=dict)

    def config_data(self) -> dict[str, Any]:
        """The hokusai.yml this shape is described by, as data (a fresh copy)."""
        if self.name == "hokusai":
            return yaml.safe_load((REPO / "hokusai.yml").read_text())
        return copy.deepcopy(_COMPACT)

    def fill(self, check_id: str | None) -> str | None:
        """An expected check id with this shape's names: ``{mlflow_service}`` -> the name."""
        return check_id.format(**self.roles) if check_id else None


# Scenarios both shapes have (every break that does not need a second load balancer or a
# direct MLflow route).
COMMON_SCENARIOS = (
    "healthy",
    "red-herring",
    "rule-missing",
    "dns-stale",
    "dns-internal",
    "db-stopped",
    "db-missing",
    "db-password-rejected",
    "mlflow-down",
    "crash-loop",
    "auth-scheme",
    "bad-allowed-hosts",
    "stale-discovery",
    "proxy-upstream-wrong-port",
    "sg-blocked",
    "sg-alb-blocked",
    "aws-access-denied",
)

SHAPES: dict[str, Shape] = {
    "hokusai": Shape(
        "hokusai",
        proxy_prefix="/api/mlflow",
        accept_auth="bearer",
        upstream_variables=("MLFLOW_SERVER_URL", "MLFLOW_TRACKING_URI"),
        scenarios=(
            *COMMON_SCENARIOS,
            "seed-outage",
            "shadowed-rule",
            "no-listener",
            "lb-missing",
            "unhealthy-targets",
            "auth-header",
        ),
        roles={
            "mlflow_service": "hokusai-mlflow-development",
            "api_service": "hokusai-api-development",
            "mlflow_route": "mlflow-direct",
            "proxy_route": "mlflow-proxy",
            "routed_mlflow": "mlflow-direct",
            "main_lb": "hokusai-main-development",
            "served_route": "mlflow-direct",
        },
    ),
    "compact": Shape(
        "compact",
        proxy_prefix="/models",
        accept_auth="x-api-key",
        upstream_variables=("MODEL_STORE_URL",),
        public_addresses=("18.130.45.12", "35.177.201.9"),
        scenarios=COMMON_SCENARIOS,
        roles={
            "mlflow_service": "kumo-models-staging",
            "api_service": "kumo-gateway-staging",
            "mlflow_route": "registry",
            "proxy_route": "registry",
            "routed_mlflow": "registry",
            "main_lb": "kumo-edge-staging",
            "served_route": "registry",
        },
    ),
}
