"""Fix a running sandbox, or break it again: what a responder's change would do, on demand.

``fix(sandbox)`` undoes its scenario's breakage the way the platform team would (delete the
catch-all listener rule, deregister the stale target, read the key from the documented
header); ``break_again(sandbox)`` puts it back. The AWS changes go to moto, so the edge, the
checks and a running ``/hokusai watch`` see them exactly as they would see a real change.

``ControlServer`` exposes both on loopback for ``hokusai demo --keep``::

    curl -X POST http://127.0.0.1:PORT/fix
    curl -X POST http://127.0.0.1:PORT/break
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import boto3
from aiohttp import web

from bot.sandbox.upstreams import BackgroundServer

CATCH_ALL_PRIORITY = "10"
# The address of the API task left registered in MLflow's target group (``intermittent``).
STALE_TARGET = "10.0.11.77"


class Sandbox(Protocol):
    """What the controls need of a running ``bot.sandbox.world.Sandbox``."""

    scenario: str
    moto: Any
    platform: Any
    api: Any

    @property
    def env(self) -> Any: ...


class NoControl(KeyError):
    """The scenario has no fix (or break) the sandbox knows how to apply."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no control"


def _elbv2(sandbox: Sandbox) -> Any:
    assert sandbox.moto is not None, "start() the sandbox first"
    return boto3.client("elbv2", endpoint_url=sandbox.moto.url, region_name=sandbox.env.region)


def _listener(sandbox: Sandbox) -> str:
    assert sandbox.platform is not None
    return sandbox.platform.registry_lb.listeners[443]


def _service(sandbox: Sandbox, mlflow: bool) -> str:
    return next(s.name for s in sandbox.env.ecs.services if s.is_mlflow == mlflow)


def _fix_catch_all(sandbox: Sandbox) -> str:
    elbv2 = _elbv2(sandbox)
    rules = elbv2.describe_rules(ListenerArn=_listener(sandbox), PageSize=400)["Rules"]
    broad = [r for r in rules if r["Priority"] == CATCH_ALL_PRIORITY]
    for rule in broad:
        elbv2.delete_rule(RuleArn=rule["RuleArn"])
    return f"deleted the catch-all listener rule /api/* (priority {CATCH_ALL_PRIORITY})"


def _break_catch_all(to_mlflow: bool) -> Callable[[Sandbox], str]:
    def apply(sandbox: Sandbox) -> str:
        assert sandbox.platform is not None
        service = _service(sandbox, to_mlflow)
        _fix_catch_all(sandbox)  # at most one such rule
        _elbv2(sandbox).create_rule(
            ListenerArn=_listener(sandbox),
            Priority=int(CATCH_ALL_PRIORITY),
            Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
            Actions=[
                {"Type": "forward", "TargetGroupArn": sandbox.platform.target_groups[service]}
            ],
        )
        return f"added the catch-all listener rule /api/* -> {service} at priority 10"

    return apply


def _fix_stale_target(sandbox: Sandbox) -> str:
    assert sandbox.platform is not None
    service = _service(sandbox, True)
    stale = STALE_TARGET
    _elbv2(sandbox).deregister_targets(
        TargetGroupArn=sandbox.platform.target_groups[service], Targets=[{"Id": stale}]
    )
    return f"deregistered the stale target {stale} from {service}'s target group"


def _break_stale_target(sandbox: Sandbox) -> str:
    assert sandbox.platform is not None
    service = _service(sandbox, True)
    port = sandbox.env.service(service).port
    _elbv2(sandbox).register_targets(
        TargetGroupArn=sandbox.platform.target_groups[service],
        Targets=[{"Id": STALE_TARGET, "Port": port}],
    )
    return f"registered the stale target {STALE_TARGET} in {service}'s target group"


def _auth_header(accepted: str) -> Callable[[Sandbox], str]:
    def apply(sandbox: Sandbox) -> str:
        assert sandbox.api is not None
        sandbox.api.accept_auth = (accepted,)
        header = "Authorization: Bearer" if accepted == "bearer" else "X-API-Key"
        return f"the API service now reads the key from {header}"

    return apply


FIXES: dict[str, Callable[[Sandbox], str]] = {
    "seed-outage": _fix_catch_all,
    "shadowed-rule": _fix_catch_all,
    "intermittent": _fix_stale_target,
    "auth-header": _auth_header("bearer"),
}
BREAKS: dict[str, Callable[[Sandbox], str]] = {
    "seed-outage": _break_catch_all(to_mlflow=False),
    "shadowed-rule": _break_catch_all(to_mlflow=True),
    "intermittent": _break_stale_target,
    "auth-header": _auth_header("x-api-key"),
}


def fix(sandbox: Sandbox) -> str:
    """Undo the scenario's breakage; returns what was done, in words.

    Raises:
        NoControl: the scenario has no known fix.
    """
    if sandbox.scenario not in FIXES:
        raise NoControl(f"scenario {sandbox.scenario!r} has no fix; fixable: {', '.join(FIXES)}")
    return FIXES[sandbox.scenario](sandbox)


def break_again(sandbox: Sandbox) -> str:
    """Apply the scenario's breakage again after a fix; returns what was done."""
    if sandbox.scenario not in BREAKS:
        raise NoControl(f"scenario {sandbox.scenario!r} cannot be broken again")
    return BREAKS[sandbox.scenario](sandbox)


class ControlServer(BackgroundServer):
    """``POST /fix`` and ``POST /break`` on loopback, for a sandbox kept running."""

    name = "sandbox-control"

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__()
        self.sandbox = sandbox

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/fix", self._control(fix))
        app.router.add_post("/break", self._control(break_again))
        return app

    def _control(self, action: Callable[[Sandbox], str]) -> Any:
        async def handler(request: web.Request) -> web.Response:
            try:
                done = action(self.sandbox)
            except NoControl as exc:
                return web.Response(status=409, text=f"{exc}\n")
            return web.Response(text=f"{done}\n")

        return handler
