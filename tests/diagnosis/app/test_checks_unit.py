"""The app and auth checks against answers arranged with respx: what each finding says."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from bot.diagnosis.checks.app import route_probe
from bot.diagnosis.checks.auth import api_key_accepted, unauthenticated_refused
from bot.diagnosis.checks.base import Classification, Status
from bot.diagnosis.checks.mlflow import explain_client_error

from .conftest import KEY_ENV, make_ctx, seed_environment

BASE = "https://registry.hokus.ai"
PROXY_PROBE = BASE + "/api/mlflow/api/2.0/mlflow/experiments/search?max_results=1"
DIRECT_PROBE = BASE + "/api/2.0/mlflow/experiments/search?max_results=1"
EXPERIMENTS = {"experiments": [{"experiment_id": "0", "name": "Default"}]}
ALB_404 = {"server": "awselb/2.0", "content-type": "text/plain; charset=utf-8"}
ELB_503 = (
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
)


def fastapi(status: int, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": detail}, headers={"server": "uvicorn"})


@pytest.fixture
def env():
    return seed_environment()


def assert_no_key(result, key):
    assert key not in json.dumps(result.evidence, default=str)
    assert key not in result.summary


# ------------------------------------------------------------------ app.route-probe


@respx.mock
async def test_route_probe_passes_when_the_configured_service_answers(env, http, api_key):
    seen = respx.get(PROXY_PROBE).mock(return_value=httpx.Response(200, json=EXPERIMENTS))
    result = await route_probe.run(make_ctx(env, http, subject="mlflow-proxy", key=api_key))
    assert result.status == Status.PASS, result.summary
    assert seen.calls.last.request.headers["Authorization"] == f"Bearer {api_key}"
    assert result.evidence["request"]["headers"] == {"Authorization": "Bearer [redacted]"}
    assert result.evidence["response"]["status"] == 200
    assert_no_key(result, api_key)


@respx.mock
async def test_route_probe_names_the_load_balancers_fixed_404(env, http, api_key):
    respx.get(PROXY_PROBE).mock(return_value=httpx.Response(404, text="Not Found", headers=ALB_404))
    result = await route_probe.run(make_ctx(env, http, subject="mlflow-proxy", key=api_key))
    assert result.status == Status.FAIL
    assert result.classification == Classification.CONFIGURATION
    assert (
        "/api/mlflow/api/2.0/mlflow/experiments/search was answered by the load balancer's "
        "fixed 404, not hokusai-api-development" in result.summary
    )
    assert result.evidence["answered_by"] == "load-balancer"


@respx.mock
async def test_route_probe_names_a_fastapi_answer_on_the_mlflow_route(env, http, api_key):
    respx.get(DIRECT_PROBE).mock(return_value=fastapi(404, "Not Found"))
    result = await route_probe.run(make_ctx(env, http, subject="mlflow-direct", key=api_key))
    assert result.status == Status.FAIL
    assert result.classification == Classification.CONFIGURATION
    assert 'answered by a FastAPI service (404 {"detail":"Not Found"})' in result.summary
    assert "not MLflow (hokusai-mlflow-development)" in result.summary


@respx.mock
async def test_route_probe_classifies_an_elb_503_as_infrastructure(env, http, api_key):
    respx.get(DIRECT_PROBE).mock(
        return_value=httpx.Response(503, text=ELB_503, headers={"server": "awselb/2.0"})
    )
    result = await route_probe.run(make_ctx(env, http, subject="mlflow-direct", key=api_key))
    assert result.status == Status.FAIL
    assert result.classification == Classification.INFRASTRUCTURE
    assert "503 from the load balancer itself" in result.summary


@respx.mock
async def test_route_probe_classifies_the_right_service_failing_as_application(env, http, api_key):
    respx.get(DIRECT_PROBE).mock(
        return_value=httpx.Response(
            500, json={"error_code": "INTERNAL_ERROR", "message": "database is locked"}
        )
    )
    result = await route_probe.run(make_ctx(env, http, subject="mlflow-direct", key=api_key))
    assert result.status == Status.FAIL
    assert result.classification == Classification.APPLICATION
    assert "hokusai-mlflow-development answered 500" in result.summary


@respx.mock
async def test_route_probe_reports_a_refused_connection_as_infrastructure(env, http, api_key):
    respx.get(DIRECT_PROBE).mock(side_effect=httpx.ConnectError("Connection refused"))
    result = await route_probe.run(make_ctx(env, http, subject="mlflow-direct", key=api_key))
    assert result.status == Status.FAIL
    assert result.classification == Classification.INFRASTRUCTURE
    assert "connection failed" in result.summary


# ------------------------------------------------------------------ auth.api-key


def auth_service(key: str, *, accepts: str, missing: bool = False):
    """A respx side effect: accepts ``key`` only one way; says "required" when it saw none."""

    def answer(request: httpx.Request) -> httpx.Response:
        presented = {
            "bearer": request.headers.get("Authorization", "").removeprefix("Bearer "),
            "x-api-key": request.headers.get("X-API-Key", ""),
            "query": request.url.params.get("api_key", ""),
        }[accepts]
        if presented == key and not missing:
            return httpx.Response(200, json=EXPERIMENTS, headers={"server": "uvicorn"})
        if missing or not presented:
            return fastapi(401, "API key required")
        return fastapi(401, "Invalid API key")

    return answer


@respx.mock
async def test_api_key_accepted_the_configured_way(env, http, api_key):
    respx.get(url__startswith=BASE).mock(side_effect=auth_service(api_key, accepts="bearer"))
    result = await api_key_accepted.run(make_ctx(env, http, subject="mlflow-proxy", key=api_key))
    assert result.status == Status.PASS, result.summary
    assert "accepts the key sent as Authorization: Bearer" in result.summary
    assert len(result.evidence["attempts"]) == 1
    assert_no_key(result, api_key)


@respx.mock
@pytest.mark.parametrize(
    ("accepts", "named"), [("x-api-key", "X-API-Key"), ("query", "the api_key query parameter")]
)
async def test_api_key_accepted_only_another_way(env, http, api_key, accepts, named):
    respx.get(url__startswith=BASE).mock(side_effect=auth_service(api_key, accepts=accepts))
    result = await api_key_accepted.run(make_ctx(env, http, subject="mlflow-proxy", key=api_key))
    assert result.status == Status.FAIL
    assert result.classification == Classification.CONFIGURATION
    assert (
        f"hokusai-api-development accepts the key as {named}, "
        "not Authorization: Bearer as configured" in result.summary
    )
    assert result.evidence["accepted_way"] == named
    assert_no_key(result, api_key)


@respx.mock
async def test_api_key_refused_every_way(env, http, api_key):
    wrong = "hk_" + "test_" + "x" * 32
    respx.get(url__startswith=BASE).mock(side_effect=auth_service(wrong, accepts="bearer"))
    result = await api_key_accepted.run(make_ctx(env, http, subject="mlflow-proxy", key=api_key))
    assert result.status == Status.FAIL
    assert "refuses the key in HOKUSAI_API_KEY every way tried" in result.summary
    # The configured way (Bearer), then every other usual header and query variant: a key
    # is called bad only when no way of sending it works.
    assert [a["way"] for a in result.evidence["attempts"]] == [
        "Authorization: Bearer",
        "Authorization: Token",
        "X-API-Key",
        "Api-Key",
        "the api_key query parameter",
        "the apikey query parameter",
    ]
    assert_no_key(result, api_key)


@respx.mock
async def test_api_key_that_never_arrives_names_a_stripping_hop(env, http, api_key):
    respx.get(url__startswith=BASE).mock(
        side_effect=auth_service(api_key, accepts="bearer", missing=True)
    )
    result = await api_key_accepted.run(make_ctx(env, http, subject="mlflow-proxy", key=api_key))
    assert result.status == Status.FAIL
    assert "says no key arrived" in result.summary
    assert "strips it" in result.summary


async def test_api_key_without_a_key_is_skipped_with_the_variable_name(env, http, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    result = await api_key_accepted.run(make_ctx(env, http, subject="mlflow-proxy", key=None))
    assert result.status == Status.SKIPPED
    assert "HOKUSAI_API_KEY is not set" in result.summary


@respx.mock
async def test_api_key_is_read_from_the_environment_when_ctx_has_none(env, http, monkeypatch):
    key = "hk_" + "test_" + "k" * 32
    monkeypatch.setenv(KEY_ENV, key)
    route = respx.get(PROXY_PROBE).mock(return_value=httpx.Response(200, json=EXPERIMENTS))
    result = await api_key_accepted.run(make_ctx(env, http, subject="mlflow-proxy", key=None))
    assert result.status == Status.PASS
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {key}"


# ------------------------------------------------------------------ auth.unauthenticated


@respx.mock
async def test_unauthenticated_200_is_a_security_failure(env, http):
    seen = respx.get(PROXY_PROBE).mock(return_value=httpx.Response(200, json=EXPERIMENTS))
    result = await unauthenticated_refused.run(
        make_ctx(env, http, subject="mlflow-proxy", key=None)
    )
    assert "Authorization" not in seen.calls.last.request.headers
    assert result.status == Status.FAIL
    assert result.classification == Classification.SECURITY
    assert (
        "/api/mlflow/api/2.0/mlflow/experiments/search answered 200 without an API key: "
        "authentication is bypassed" in result.summary
    )


@respx.mock
async def test_unauthenticated_401_passes(env, http):
    respx.get(PROXY_PROBE).mock(return_value=fastapi(401, "API key required"))
    result = await unauthenticated_refused.run(
        make_ctx(env, http, subject="mlflow-proxy", key=None)
    )
    assert result.status == Status.PASS
    assert "refuses a request without a key" in result.summary


@respx.mock
async def test_unauthenticated_404_cannot_tell(env, http):
    respx.get(PROXY_PROBE).mock(return_value=httpx.Response(404, text="Not Found", headers=ALB_404))
    result = await unauthenticated_refused.run(
        make_ctx(env, http, subject="mlflow-proxy", key=None)
    )
    assert result.status == Status.WARN
    assert "cannot tell" in result.summary
    assert "the load balancer" in result.summary


async def test_unauthenticated_skips_unprotected_routes(env, http):
    routes = [r.model_copy(update={"protected": False}) for r in env.routes]
    open_env = env.model_copy(update={"routes": routes})
    result = await unauthenticated_refused.run(
        make_ctx(open_env, http, subject="mlflow-direct", key=None)
    )
    assert result.status == Status.SKIPPED


# ------------------------------------------------------------------ MlflowClient errors


def test_a_fastapi_404_behind_internal_error_is_named():
    from mlflow.exceptions import RestException

    finding = explain_client_error(RestException({"detail": "Not Found"}), attempts=2)
    assert "INTERNAL_ERROR" in finding.summary
    assert "FastAPI service's 404" in finding.summary
    assert finding.classification == Classification.CONFIGURATION


def test_a_plain_401_is_named_unauthenticated():
    from mlflow.exceptions import MlflowException, get_error_code

    exc = MlflowException(
        "API request to endpoint /api/2.0/mlflow/experiments/search failed with error code "
        "401 != 200. Response body: 'Unauthorized'",
        error_code=get_error_code(401),
    )
    finding = explain_client_error(exc, attempts=2)
    assert "UNAUTHENTICATED" in finding.summary
