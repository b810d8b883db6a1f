"""Who answered: the load balancer, FastAPI, MLflow, nginx or something else, and why."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from bot.config import EcsService
from bot.diagnosis.probe import Responder, probe, responder_for_service, who_answered

ELB_PAGE = (
    "<html>\r\n<head><title>{0}</title></head>\r\n<body>\r\n"
    "<center><h1>{0}</h1></center>\r\n</body>\r\n</html>\r\n"
)
# The page mlflow 3.17 serves for a path it does not know (Werkzeug's, from its Flask app).
MLFLOW_404 = (
    "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
    "<p>The requested URL was not found on the server. If you entered the URL manually please "
    "check your spelling and try again.</p>\n"
)
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@pytest.mark.parametrize(
    ("status", "headers", "body", "responder", "reason_words"),
    [
        (
            404,
            {"server": "awselb/2.0", "content-type": "text/plain"},
            "Not Found",
            Responder.LOAD_BALANCER,
            ["awselb/2.0", "fixed-response"],
        ),
        (
            502,
            {"server": "awselb/2.0", "content-type": "text/html"},
            ELB_PAGE.format("502 Bad Gateway"),
            Responder.LOAD_BALANCER,
            ["502 error page"],
        ),
        (
            503,
            {"server": "awselb/2.0", "content-type": "text/html"},
            ELB_PAGE.format("503 Service Temporarily Unavailable"),
            Responder.LOAD_BALANCER,
            ["503 error page"],
        ),
        (
            504,
            {"server": "awselb/2.0", "content-type": "text/html"},
            ELB_PAGE.format("504 Gateway Time-out"),
            Responder.LOAD_BALANCER,
            ["504 error page"],
        ),
        (
            404,
            {"server": "uvicorn", "content-type": "application/json"},
            '{"detail": "Not Found"}',
            Responder.FASTAPI,
            ["detail", "FastAPI"],
        ),
        (
            401,
            {"server": "uvicorn", "content-type": "application/json"},
            '{"detail": "API key required"}',
            Responder.FASTAPI,
            ["FastAPI"],
        ),
        (
            404,
            {"server": "uvicorn", "content-type": "application/json"},
            json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No Experiment"}),
            Responder.MLFLOW,
            ["RESOURCE_DOES_NOT_EXIST"],
        ),
        (
            404,
            {"server": "uvicorn", "content-type": "text/html; charset=utf-8"},
            MLFLOW_404,
            Responder.MLFLOW,
            ["HTML 404", "Werkzeug"],
        ),
        (
            403,
            {"server": "uvicorn", "content-type": "text/plain"},
            "Invalid Host header - possible DNS rebinding attack detected",
            Responder.MLFLOW,
            ["Host-header", "--allowed-hosts"],
        ),
        (
            404,
            {"server": "nginx/1.25.3", "content-type": "text/html"},
            "<html>404</html>",
            Responder.NGINX,
            ["nginx"],
        ),
        (502, {"content-type": "text/html"}, NGINX_502, Responder.NGINX, ["nginx"]),
        (
            418,
            {"server": "teapot", "content-type": "text/plain"},
            "short and stout",
            Responder.UNKNOWN,
            ["teapot"],
        ),
    ],
    ids=[
        "alb-fixed-404",
        "elb-502",
        "elb-503",
        "elb-504",
        "fastapi-404",
        "fastapi-401",
        "mlflow-error-code",
        "mlflow-html-404",
        "mlflow-invalid-host",
        "nginx-header",
        "nginx-page",
        "unknown",
    ],
)
def test_who_answered(status, headers, body, responder, reason_words):
    attribution = who_answered(status, headers, body)
    assert attribution.responder == responder
    for word in reason_words:
        assert word in attribution.reason


def test_elb_5xx_is_not_mistaken_for_a_fixed_response():
    page = who_answered(503, {"server": "awselb/2.0"}, ELB_PAGE.format("503 Service"))
    fixed = who_answered(503, {"server": "awselb/2.0"}, "maintenance")
    assert "error page" in page.reason and "fixed-response" not in page.reason
    assert "fixed-response" in fixed.reason


@pytest.mark.parametrize(
    ("service", "responder"),
    [
        (EcsService(name="hokusai-mlflow-development", port=5000), Responder.MLFLOW),
        (EcsService(name="hokusai-api-development", port=8001), Responder.FASTAPI),
        (EcsService(name="registry", port=5000, kind="mlflow"), Responder.MLFLOW),
        (EcsService(name="mlflow-gateway", port=80, kind="nginx"), Responder.NGINX),
        (None, Responder.UNKNOWN),
    ],
)
def test_responder_for_service(service, responder):
    assert responder_for_service(service) == responder


@respx.mock
async def test_probe_records_the_request_with_the_key_masked(api_key):
    url = "https://registry.hokus.ai/api/mlflow/api/2.0/mlflow/experiments/search"
    respx.get(url).mock(
        return_value=httpx.Response(
            404,
            json={"detail": "Not Found", "echo": api_key},
            headers={"server": "uvicorn", "x-amzn-trace-id": "Root=1-abc", "set-cookie": "x=1"},
        )
    )
    async with httpx.AsyncClient() as http:
        result = await probe(
            http,
            "GET",
            f"{url}?max_results=1&api_key={api_key}",
            headers={"Authorization": f"Bearer {api_key}", "X-API-Key": api_key},
            timeout=2,
            secrets=[api_key],
        )
    shown = json.dumps(result.evidence())
    assert api_key not in shown
    assert result.request_headers == {
        "Authorization": "Bearer [redacted]",
        "X-API-Key": "[redacted]",
    }
    assert result.path.startswith("/api/mlflow/api/2.0/mlflow/experiments/search?max_results=1")
    assert "api_key=[redacted]" in result.path
    assert result.status == 404
    assert result.answered_by == Responder.FASTAPI
    assert result.headers["x-amzn-trace-id"] == "Root=1-abc"
    assert "set-cookie" not in result.headers


@respx.mock
async def test_probe_never_raises_on_connection_errors():
    respx.get("https://registry.hokus.ai/x").mock(side_effect=httpx.ConnectError("refused"))
    async with httpx.AsyncClient() as http:
        result = await probe(http, "GET", "https://registry.hokus.ai/x", timeout=1)
    assert result.status is None
    assert result.error_kind == "connect"
    assert "connection failed" in result.describe_answer()


async def test_probe_bounds_the_whole_exchange(silent_server, http):
    result = await probe(http, "GET", silent_server.url + "/health", timeout=0.5)
    assert result.error_kind == "timeout"
    assert 400 <= result.latency_ms < 1500
