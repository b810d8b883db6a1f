"""The ``hokusai.yml`` models: what the bot diagnoses and who may run it.

A bad file stops with one line naming the file, the field and what is wrong
(``ConfigError``); the CLI turns it into exit code 2.

Unknown keys are errors, with a did-you-mean: a typo such as ``acess:`` would otherwise be
read as "no access rules" and silently turn access control off. Keys starting with ``x-`` are
ignored at every level, for teams that annotate their config.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bot.errors import HokusaiError

MAX_CONFIG_BYTES = 1_000_000
MAX_NESTING = 64  # hokusai.yml needs 6; deeper is a broken or hostile file
MAX_NODES = 200_000  # counting what aliases expand to: no "billion laughs"


class ConfigError(HokusaiError):
    """hokusai.yml is missing or invalid; the message is one line naming file and field."""


def is_annotation(key: object) -> bool:
    """``x-owner: platform-team``: a key the bot ignores, for people's notes."""
    return isinstance(key, str) and key.lower().startswith(("x-", "x_"))


def did_you_mean(word: str, known: list[str]) -> str:
    """``did you mean `access`?`` for a near miss, else the keys that are known."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    return f"known: {', '.join(known)}" if known else "none are known here"


class _Model(BaseModel):
    # Unknown keys are refused: a typo must not silently drop a setting (see is_annotation).
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        # A field with an alias (``from``) is written by its alias in hokusai.yml.
        known = [f.alias or name for name, f in cls.model_fields.items() if name != "name"]
        for key in data:
            if is_annotation(key) or key in cls.model_fields or key in known:
                continue
            raise PydanticCustomError(
                "unknown_key",
                "unknown key; {hint}",
                {"key": str(key), "hint": did_you_mean(str(key), known)},
            )
        return {k: v for k, v in data.items() if not is_annotation(k)}


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


class StatedDependency(_Model):
    """An edge of the dependency model stated in hokusai.yml: ``source`` needs ``target``.

    Inferred edges (the API's upstream URL, MLflow's backend store) need no entry; state one
    the bot cannot see, or switch an inferred one off with ``absent: true``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(alias="from", description="An ECS service name, or `public`.")
    target: str = Field(alias="to", description="An ECS service name, or `database`.")
    via: str | None = Field(None, description="What carries it, e.g. `MODEL_STORE_URL`.")
    absent: bool = Field(False, description="true: this edge does not exist; never infer it.")


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
    dependencies: list[StatedDependency] = Field(
        default_factory=list,
        description="Edges of the dependency model to add (or, with absent: true, drop).",
    )

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
        for i, edge in enumerate(self.dependencies):
            for side, name, extra in (
                ("from", edge.source, "public"),
                ("to", edge.target, "database"),
            ):
                if known and name not in known and name != extra:
                    raise ValueError(
                        f"dependencies.{i}.{side}: {name!r} is not one of ecs.services or {extra!r}"
                    )
        return self


_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_USERGROUP = re.compile(r"^(S[A-Z0-9]{2,}|@?[a-z0-9][a-z0-9._-]*)$")


class EnvironmentAccess(_Model):
    users: list[str] = Field(
        default_factory=list, description="Slack member ids (U…) allowed to use the environment."
    )
    usergroups: list[str] = Field(
        default_factory=list,
        description="User groups whose members are allowed: an id (S…) or a handle (@oncall).",
    )

    @field_validator("users")
    @classmethod
    def _member_ids(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _USER_ID.match(value):
                raise ValueError(
                    f"{value!r} is not a Slack member id (U…): copy it from the person's "
                    "profile, More → Copy member ID"
                )
        return values

    @field_validator("usergroups")
    @classmethod
    def _groups(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _USERGROUP.match(value):
                raise ValueError(f"{value!r} is not a user group id (S…) or handle (@oncall)")
        return values


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
        """Whether ``user_id`` (a member of ``usergroups``: ids or handles) may use ``env``.

        An environment without a rule is open to everyone who may use the channel.
        """
        rule = self.environments.get(env)
        if rule is None:
            return True
        wanted = {g.lstrip("@") for g in rule.usergroups}
        return user_id in rule.users or bool({g.lstrip("@") for g in usergroups} & wanted)


class IncidentSettings(_Model):
    channel_prefix: str = Field("inc", description="Prefix of dedicated incident channels.")
    summary_every_minutes: Annotated[int, Field(ge=0)] = Field(
        30, description="Minutes between automatic summaries while open; 0 turns them off."
    )
    archive_after_hours: Annotated[int, Field(ge=0)] = Field(
        0,
        description="Hours after resolve or cancel before an incident's own channel is "
        "archived; 0 never archives.",
    )
    ticket_poll_minutes: Annotated[int, Field(ge=0)] = Field(
        5,
        description="Minutes between tracker reads of an open incident's tickets (a ticket "
        "turning Done gets its checks re-run); 0 turns polling off.",
    )
    tracker: Literal["linear", "jira"] | None = Field(
        None, description="linear or jira; guessed from the credentials that are set if unset."
    )
    linear_team_id: str | None = Field(
        None, description="Linear team new issues go to; default: the first team."
    )
    jira_project: str | None = Field(
        None,
        pattern=r"^[A-Z][A-Z0-9_]{0,254}$",
        description="Jira project key new issues go to (OPS); required when Jira is the tracker.",
    )
    jira_issue_type: str = Field(
        "Task", min_length=1, description="Jira issue type of new issues (Task, Bug, Incident)."
    )


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

    @model_validator(mode="after")
    def _access_names_known_environments(self) -> HokusaiConfig:
        # A rule for a misspelt environment would leave the real one open to everyone.
        known = list(self.environments)
        for name in self.access.environments:
            if name not in self.environments:
                raise PydanticCustomError(
                    "unknown_environment",
                    "no environment of that name; {hint}",
                    {"key": f"access.environments.{name}", "hint": did_you_mean(name, known)},
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
        ctx = err.get("ctx") or {}
        if err["type"] == "unknown_key":
            field = f"{field}.{ctx['key']}" if field else ctx["key"]
        elif err["type"] == "unknown_environment":
            field = ctx["key"]
        msg = _one_line(err["msg"].removeprefix("Value error, "))
        where = f"{source}: {field}: " if field else f"{source}: "
        raise ConfigError(f"{where}{msg}") from None


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _StrictLoader(yaml.SafeLoader):
    """safe_load with bounds: nesting depth and the node count aliases expand to."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        self._depth += 1
        if self._depth > MAX_NESTING:
            mark = self.peek_event().start_mark
            raise _Bounded(f"line {mark.line + 1}: nested more than {MAX_NESTING} levels deep")
        try:
            if self.check_event(yaml.AliasEvent):
                anchor = self.peek_event().anchor
                node = super().compose_node(parent, index)
                self._count(self._sizes.get(id(node), 1), anchor)
                return node
            before = self._nodes
            node = super().compose_node(parent, index)
            self._count(1, None)
            self._sizes[id(node)] = self._nodes - before
            return node
        finally:
            self._depth -= 1

    def _count(self, n: int, anchor: str | None) -> None:
        self._nodes += n
        if self._nodes > MAX_NODES:
            what = f" (alias *{anchor})" if anchor else ""
            raise _Bounded(f"more than {MAX_NODES} values once aliases are expanded{what}")


class _Bounded(Exception):
    """The file is past one of _StrictLoader's bounds."""


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (set HOKUSAI_CONFIG or pass --config)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1_000_000} MB; not a config")
    nul = raw.find(b"\0")
    if nul >= 0:
        raise ConfigError(f"{path}: a binary file, not YAML (NUL byte at offset {nul})")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def load_config(path: str | Path) -> HokusaiConfig:
    """Load and validate ``hokusai.yml``.

    Raises:
        ConfigError: one line, ``FILE: FIELD: what is wrong``.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except _Bounded as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None)
        detail = f" ({_one_line(problem, 80)})" if problem else ""
        raise ConfigError(f"{path}: {where}not valid YAML{detail}") from None
    except RecursionError:  # belt and braces: the depth bound should come first
        raise ConfigError(f"{path}: nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return parse_config(data, str(path))
