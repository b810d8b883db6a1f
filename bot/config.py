"""The ``hokusai.yml`` models: what the bot diagnoses and who may run it.

A bad file stops with one line naming the file, the field and what is wrong
(``ConfigError``); the CLI turns it into exit code 2.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.errors import HokusaiError


class ConfigError(HokusaiError):
    """hokusai.yml is missing or invalid; the message is one line naming file and field."""


class _Model(BaseModel):
    # Extra keys are allowed: teams annotate their config (docs/architecture.md, the config schema).
    model_config = ConfigDict(extra="allow", frozen=True)


class PublicEndpoint(_Model):
    base_url: str = Field(description="What HTTP probes hit, e.g. https://registry.hokus.ai")
    hostname: str = Field(description="What DNS and Route 53 checks look up.")
    hosted_zone: str | None = Field(None, description="Route 53 zone holding the record.")
    listener_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Load balancer listener the public URL reaches; default: the URL's port. "
        "Set it when probes go through a tunnel or proxy on another port.",
    )

    @property
    def port(self) -> int:
        """The listener port the load balancer sees for public traffic."""
        if self.listener_port:
            return self.listener_port
        parts = urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class DnsSettings(_Model):
    nameservers: list[str] = Field(
        default_factory=list,
        description='Resolvers to ask; empty: the system resolver. "ip:port" works.',
    )

    @field_validator("nameservers")
    @classmethod
    def _hostports(cls, values: list[str]) -> list[str]:
        for value in values:
            host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
            if port and not port.isdigit():
                raise ValueError(f"{value!r}: port must be a number")
            if not (host or value):
                raise ValueError("empty nameserver")
        return values

    def parsed(self) -> list[tuple[str, int]]:
        out = []
        for value in self.nameservers:
            if value.count(":") == 1:
                host, port = value.split(":")
                out.append((host, int(port)))
            else:
                out.append((value, 53))
        return out


class Route(_Model):
    name: str = Field(description="Short name used in scopes and reports.")
    path: str = Field(description="Path pattern that must reach `service`, e.g. /api/mlflow/*")
    service: str = Field(description="ECS service that must answer this path.")
    probe: str = Field(description="A read-only request path that exercises the route.")
    protected: bool = Field(
        True, description="Whether the path must refuse requests without a key."
    )

    @field_validator("path", "probe")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value


class EcsService(_Model):
    name: str
    port: int = Field(ge=1, le=65535, description="Container port the service listens on.")
    log_group: str | None = Field(None, description="CloudWatch Logs group of its containers.")
    discovery: str | None = Field(None, description="Cloud Map name, e.g. mlflow.x.local")
    kind: str | None = Field(None, description="mlflow, api, ...; guessed from the name if unset.")

    @property
    def is_mlflow(self) -> bool:
        return (self.kind or "").lower() == "mlflow" or (
            self.kind is None and "mlflow" in self.name.lower()
        )


class EcsSettings(_Model):
    cluster: str
    services: list[EcsService] = Field(default_factory=list)


class DatabaseSettings(_Model):
    rds_instance: str = Field(description="RDS DB instance identifier.")
    port: int | None = Field(None, description="Expected port; the instance's own if unset.")


class AuthSettings(_Model):
    api_key_env: str = Field("HOKUSAI_API_KEY", description="Variable holding the probe API key.")
    header: str = Field("Authorization", description="Header the key is sent in.")
    scheme: str | None = Field("Bearer", description="Scheme before the key; null: the bare key.")


class MlflowSettings(_Model):
    tracking_uri: str = Field(description="What data scientists set MLFLOW_TRACKING_URI to.")


class Environment(_Model):
    name: str = ""
    region: str = "us-east-1"
    public: PublicEndpoint
    dns: DnsSettings = Field(default_factory=DnsSettings)
    load_balancers: list[str] = Field(default_factory=list)
    listener_ports: list[int] = Field(default_factory=lambda: [80, 443])
    routes: list[Route] = Field(default_factory=list)
    ecs: EcsSettings | None = None
    database: DatabaseSettings | None = None
    auth: AuthSettings | None = None
    mlflow: MlflowSettings | None = None

    def service(self, name: str) -> EcsService | None:
        for service in self.ecs.services if self.ecs else []:
            if service.name == name:
                return service
        return None

    @model_validator(mode="after")
    def _routes_name_known_services(self) -> Environment:
        known = {s.name for s in self.ecs.services} if self.ecs else set()
        for i, route in enumerate(self.routes):
            if known and route.service not in known:
                raise ValueError(
                    f"routes.{i}.service: {route.service!r} is not one of ecs.services"
                )
        return self


class EnvironmentAccess(_Model):
    users: list[str] = Field(default_factory=list)
    usergroups: list[str] = Field(default_factory=list)


class Access(_Model):
    channels: list[str] = Field(
        default_factory=list, description="Channel ids or name globs; empty: anywhere."
    )
    environments: dict[str, EnvironmentAccess] = Field(default_factory=dict)

    def channel_allowed(self, channel_id: str, channel_name: str | None) -> bool:
        if not self.channels:
            return True
        for pattern in self.channels:
            if pattern == channel_id or (
                channel_name and fnmatch.fnmatchcase(channel_name, pattern.lstrip("#"))
            ):
                return True
        return False

    def environment_allowed(
        self, env: str, user_id: str, usergroups: set[str] = frozenset()
    ) -> bool:
        rule = self.environments.get(env)
        if rule is None:
            return True
        return user_id in rule.users or bool(usergroups & set(rule.usergroups))


class IncidentSettings(_Model):
    channel_prefix: str = Field("inc", description="Prefix of dedicated incident channels.")
    summary_every_minutes: Annotated[int, Field(ge=0)] = Field(
        30, description="Minutes between automatic summaries while open; 0 turns them off."
    )
    tracker: str | None = Field(None, description="linear or jira; guessed from settings if unset.")
    linear_team_id: str | None = None
    jira_project: str | None = None


class HokusaiConfig(_Model):
    default_env: str
    environments: dict[str, Environment]
    access: Access = Field(default_factory=Access)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)

    @model_validator(mode="before")
    @classmethod
    def _name_environments(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("environments"), dict):
            envs = {}
            for name, env in data["environments"].items():
                envs[name] = {**env, "name": name} if isinstance(env, dict) else env
            data = {**data, "environments": envs}
        return data

    @model_validator(mode="after")
    def _default_exists(self) -> HokusaiConfig:
        if self.default_env not in self.environments:
            raise ValueError(
                f"default_env: {self.default_env!r} is not one of environments "
                f"({', '.join(self.environments) or 'none defined'})"
            )
        return self

    def environment(self, name: str | None = None) -> Environment:
        """The named environment, or the default one; ``ConfigError`` for an unknown name."""
        key = name or self.default_env
        try:
            return self.environments[key]
        except KeyError:
            raise ConfigError(
                f"unknown environment {key!r}; known: {', '.join(self.environments)}"
            ) from None


def _field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc if part not in ("function-after", "function-before"))


def parse_config(data: object, source: str = "hokusai.yml") -> HokusaiConfig:
    try:
        return HokusaiConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field_path(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        where = f"{source}: {field}: " if field else f"{source}: "
        raise ConfigError(f"{where}{msg}") from None


def load_config(path: str | Path) -> HokusaiConfig:
    """Load and validate ``hokusai.yml``.

    Raises:
        ConfigError: one line, ``FILE: FIELD: what is wrong``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (set HOKUSAI_CONFIG or pass --config)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{path}: {where}not valid YAML").with_traceback(None) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return parse_config(data, str(path))
