"""HTTP mode: the Bolt app under uvicorn (ASGI), plus ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp

from bot import metrics
from bot.slack.gate import RequestGate
from bot.slack.services import response_sent
from bot.tls import client_context

EVENTS_PATH = "/slack/events"
LOOP_SWITCH_INTERVAL = 0.001


def asgi_app(app: AsyncApp, signing_secret: str | None = None) -> Callable[..., Any]:
    """The ASGI application: ``POST /slack/events`` to Bolt, ``GET /healthz`` answered here.

    Every request to the events path passes :class:`RequestGate` first: Bolt only ever sees
    signed, well-formed bodies of a size Slack sends.
    """
    bolt = AsyncSlackRequestHandler(app, path=EVENTS_PATH)
    if signing_secret is None:
        settings = app.hokusai_services.settings  # type: ignore[attr-defined]
        signing_secret = settings.slack_signing_secret.get_secret_value()
    gate = RequestGate(signing_secret)

    async def application(scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await _answer(send, 200, b'{"ok": true}')
            return
        if scope["path"] == "/metrics" and scope["method"] == "GET":
            page, content_type = metrics.render()
            await _answer(send, 200, page, content_type.encode())
            return
        if scope["path"] != EVENTS_PATH:
            await _answer(send, 404, b'{"error": "not found"}')
            return
        if scope["method"] != "POST":
            await _answer(send, 405, b'{"error": "method not allowed"}')
            return
        arrived = time.monotonic()
        verdict = await gate.admit(scope, receive)
        if verdict.refused:
            await _answer(send, verdict.status, b'{"error": "invalid request"}')
            metrics.ACKS.labels("refused").observe(time.monotonic() - arrived)
            return
        send = _timed(send, arrived)
        sent = asyncio.Event()
        token = response_sent.set(sent)
        try:
            await bolt(scope, _replay(verdict.body), send)
        finally:
            sent.set()  # the ack is written: work spawned by the listener may start
            response_sent.reset(token)

    return application


def _timed(send: Callable, arrived: float) -> Callable:
    """``send`` that records how long the ack took, when its first byte goes out."""

    async def timed_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            metrics.ACKS.labels("acked").observe(time.monotonic() - arrived)
        await send(message)

    return timed_send


def _replay(body: bytes) -> Callable[[], Any]:
    """An ASGI ``receive`` that hands Bolt the body the gate has already read."""
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _answer(
    send: Callable, status: int, body: bytes, content_type: bytes = b"application/json"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type)],
        }
    )
    await send({"type": "http.response.body", "body": body})


def uvicorn_config(
    app: AsyncApp, host: str, port: int, signing_secret: str | None = None
) -> uvicorn.Config:
    return uvicorn.Config(
        asgi_app(app, signing_secret),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # uvicorn's own config gives its loggers handlers that bypass the redacting filter on
        # the root handlers; None makes its records propagate there.
        log_config=None,
        # Slack gives up after 3 s; a slow client must not hold a worker longer than that.
        timeout_keep_alive=5,
    )


def bound_port(server: uvicorn.Server) -> int:
    return server.servers[0].sockets[0].getsockname()[1]


class BotServer:
    """Runs the app under uvicorn in a background thread: tests and the demo use it.

    Example::

        with BotServer(app) as server:
            httpx.post(server.events_url, content=body, headers=headers)
    """

    def __init__(
        self,
        app: AsyncApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        signing_secret: str | None = None,
    ) -> None:
        self.app = app
        self._server = uvicorn.Server(uvicorn_config(app, host, port, signing_secret))
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._run, name="hokusai-bot", daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.host = host
        self.port = port

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._server.serve())

    def start(self, timeout: float = 10.0) -> BotServer:
        self._thread.start()
        deadline = threading.Event()
        waited = 0.0
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the bot's HTTP server did not start")
            deadline.wait(0.01)
            waited += 0.01
            if waited > timeout:
                raise TimeoutError("the bot's HTTP server did not start in time")
        self.port = bound_port(self._server)
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def events_url(self) -> str:
        return self.url + EVENTS_PATH

    def run_coroutine(self, coro: Any, timeout: float = 60.0) -> Any:
        """Run a coroutine on the server's loop (e.g. ``services.drain()``) and wait for it."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until the app's background work (after acks) has finished."""
        services = self.app.hokusai_services  # type: ignore[attr-defined]
        self.run_coroutine(services.drain(timeout), timeout + 1)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def __enter__(self) -> BotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _GracefulServer(uvicorn.Server):
    """uvicorn's server, but a SIGTERM ends ``serve()`` instead of killing the process after it.

    uvicorn finishes the requests in flight (the acks), then re-raises the signal, which would
    end the process before the caller hands its summary leases back to the other replicas.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


# Collections of the middle generation between two full ones (Python's default: 10).
FULL_COLLECTION_EVERY = 100


def settle_process() -> None:
    """Ready a long-running bot process to answer Slack quickly while diagnoses run.

    - When AWS and CPU threads are busy, the loop thread asks for the interpreter back after
      1 ms instead of Python's default 5 ms: acks wait less behind a burst of diagnoses.
    - The CA bundle is loaded now, not by the first diagnose on the loop.
    - What start-up built (modules, the app and its settings) is moved out of the garbage
      collector's sight: a full collection walks every tracked object while holding the
      interpreter, about 100 ms with the bot's imports, and during a burst of diagnoses those
      pauses were the slowest acks. Objects made later are collected as usual, but a full
      collection comes after 100 younger ones instead of 10: with the AWS clients and models
      the first diagnoses build, each still takes ~100 ms, and a burst of 50 diagnoses met
      six of them (one now), at ~5 MB more resident memory.
    """
    sys.setswitchinterval(LOOP_SWITCH_INTERVAL)
    client_context()
    gc.collect()
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, FULL_COLLECTION_EVERY)


async def serve_forever(
    app: AsyncApp, host: str, port: int, on_ready: Callable[[int], None]
) -> None:
    server = _GracefulServer(uvicorn_config(app, host, port))
    settle_process()

    async def announce() -> None:
        while not server.started:
            await asyncio.sleep(0.01)
        on_ready(bound_port(server))

    watcher = asyncio.create_task(announce())
    scheduler = start_scheduler(app)
    try:
        await server.serve()
    finally:
        watcher.cancel()
        if scheduler is not None:
            await scheduler.stop()


def start_scheduler(app: AsyncApp) -> Any:
    """Start the periodic incident summaries, the watches and the in-flight bookkeeping (which
    first marks work a dead process left running as interrupted) on the running loop (every
    process may: leases in the database decide who posts and who runs each watch).

    Returns what was started; ``await started.stop()`` stops it all and gives the leases back.
    """
    from bot.slack.scheduler import SummaryScheduler
    from bot.watch.supervisor import supervisor_for

    services = app.hokusai_services  # type: ignore[attr-defined]
    scheduler = SummaryScheduler(services)
    scheduler.start()
    watches = supervisor_for(services)
    watches.start()
    # First thing: tell channels about the work a dead process left "running".
    services.in_flight.start()
    return _Background(scheduler, watches, services.in_flight)


class _Background:
    """Background loops started together, stopped together."""

    def __init__(self, *parts: Any) -> None:
        self.parts = parts

    async def stop(self) -> None:
        for part in self.parts:
            await part.stop()
