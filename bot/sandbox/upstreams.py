"""A stand-in for the Hokusai API service, served on loopback.

It answers like the FastAPI service does: JSON errors ``{"detail": ...}``, an API key checked
the way it is told (``Authorization: Bearer``, ``X-API-Key`` or the ``api_key`` query
parameter), ``GET /health``, and ``/api/mlflow/*`` proxied to an MLflow server with the prefix
stripped and the caller's credentials left behind. Scenario knobs break it the ways the seed
outage describes; they are plain attributes and may be changed while it runs.

Example::

    with ApiService(api_keys=[key], mlflow_url=mlflow.url) as api:
        httpx.get(api.url + "/api/mlflow/api/2.0/mlflow/experiments/search?max_results=1",
                  headers={"Authorization": f"Bearer {key}"})
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web

LOOPBACK = "127.0.0.1"
# Headers that describe one hop's connection, never forwarded (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
AUTH_WAYS = ("bearer", "token", "x-api-key", "query")
# What the service names in WWW-Authenticate when it refuses a request, by the way it reads keys.
_CHALLENGES = {"bearer": "Bearer", "token": "Token"}


class BackgroundServer:
    """An aiohttp application on 127.0.0.1, served from a thread with its own event loop.

    It can be started once per test session and used from any event loop or from plain code.
    """

    name = "server"

    def __init__(self, *, host: str = LOOPBACK, port: int = 0) -> None:
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None

    def build_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        """Bind and serve; returns once the port is listening."""
        if self._thread is not None:
            return self
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"{self.name}-{self.port}", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    async def _serve(self) -> None:
        # Upstream calls never go through an HTTP proxy from the environment.
        self.session = aiohttp.ClientSession(trust_env=False, auto_decompress=False)
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.session is not None:
            await self.session.close()

    def stop(self) -> None:
        """Stop serving and end the thread."""
        if self._loop is None or self._thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self._loop = self._thread = self._runner = self.session = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fastapi_error(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    """An error the way FastAPI/Starlette writes it."""
    return web.json_response({"detail": detail}, status=status, headers=headers)


class ApiService(BackgroundServer):
    """The API service stand-in (hokusai-api-development).

    Args:
        api_keys: keys it accepts.
        accept_auth: the ways it reads a key: "bearer", "token" (``Authorization: Token``),
            "x-api-key", "query" (one or several).
        require_auth: False turns authentication off, the bypass the seed warns about.
        mlflow_url: where ``{proxy_prefix}/*`` goes; None: the proxy is not configured (404).
            An upstream that refuses the connection gets 502, one that does not answer 504.
        upstream_timeout: seconds it waits for MLflow.
        proxy_prefix: the path it proxies to MLflow, stripped on the way.

    ``not_found_detail`` is the ``detail`` of its 404 answers (FastAPI's "Not Found"); tests
    put hostile text there to see what the bot makes of an error body.
    """

    name = "api-service"

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (),
        accept_auth: str | Iterable[str] = "bearer",
        require_auth: bool = True,
        mlflow_url: str | None = None,
        upstream_timeout: float = 10.0,
        proxy_prefix: str = "/api/mlflow",
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.proxy_prefix = "/" + proxy_prefix.strip("/")
        self.api_keys = set(api_keys)
        ways = (accept_auth,) if isinstance(accept_auth, str) else tuple(accept_auth)
        unknown = set(ways) - set(AUTH_WAYS)
        if unknown:
            raise ValueError(f"accept_auth: unknown way(s) {sorted(unknown)}; know {AUTH_WAYS}")
        self.accept_auth = ways
        self.require_auth = require_auth
        self.mlflow_url = mlflow_url
        self.upstream_timeout = upstream_timeout
        self.not_found_detail = "Not Found"
        self.requests_seen: list[dict[str, str]] = []

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/health", self._health)
        app.router.add_route("*", self.proxy_prefix + "/{tail:.*}", self._mlflow_proxy)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        app.on_response_prepare.append(_server_header("uvicorn"))
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # Header names only: a test asks "did Authorization arrive", never for its value.
        self.requests_seen.append({"path": request.path, "headers": ",".join(request.headers)})
        return await handler(request)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    async def _not_found(self, request: web.Request) -> web.Response:
        return fastapi_error(404, self.not_found_detail)

    def presented_key(self, request: web.Request) -> str | None:
        """The key in the first accepted place that holds one."""
        for way in self.accept_auth:
            if way in _CHALLENGES:
                scheme, _, value = request.headers.get("Authorization", "").partition(" ")
                if scheme.lower() == way and value.strip():
                    return value.strip()
            elif way == "x-api-key" and request.headers.get("X-API-Key"):
                return request.headers["X-API-Key"].strip()
            elif way == "query" and request.query.get("api_key"):
                return request.query["api_key"]
        return None

    async def _mlflow_proxy(self, request: web.Request) -> web.Response:
        if self.require_auth:
            key = self.presented_key(request)
            challenge = self._challenge()
            if key is None:
                return fastapi_error(401, "API key required", challenge)
            if key not in self.api_keys:
                return fastapi_error(401, "Invalid API key", challenge)
        if not self.mlflow_url:
            return fastapi_error(404, self.not_found_detail)
        assert self.session is not None
        query = [(k, v) for k, v in request.query.items() if k != "api_key"]
        target = f"{self.mlflow_url.rstrip('/')}/{request.match_info['tail']}"
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in HOP_BY_HOP | {"host", "authorization", "x-api-key"}
        }
        body = await request.read()
        try:
            async with self.session.request(
                request.method,
                target,
                params=query,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.upstream_timeout),
            ) as upstream:
                payload = await upstream.read()
                return web.Response(
                    status=upstream.status,
                    body=payload,
                    headers={
                        k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP
                    },
                )
        except TimeoutError:
            return fastapi_error(504, "MLflow upstream timed out")
        except aiohttp.ClientError:
            return fastapi_error(502, "MLflow upstream unavailable")

    def _challenge(self) -> dict[str, str] | None:
        """``WWW-Authenticate`` naming the scheme it reads, as FastAPI's security classes do."""
        scheme = next((_CHALLENGES[w] for w in self.accept_auth if w in _CHALLENGES), None)
        return {"WWW-Authenticate": scheme} if scheme else None


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    return f"http://{LOOPBACK}:{port}"


class Blackhole:
    """A loopback port that accepts connections and never answers: what a peer sees when a
    security group drops its packets (its request times out), without leaving 127.0.0.1."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Blackhole:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for conn in self._held:
            conn.close()
        if self._sock is not None:
            self._sock.close()


def _server_header(value: str) -> Any:
    async def set_server(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = value

    return set_server
