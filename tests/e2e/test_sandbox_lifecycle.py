"""Two sandboxes at once on one machine, and nothing left running after one stops."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

from bot.sandbox.world import Sandbox

# A sandbox in its own process, sharing the session's MLflow (its URL passed in).
_CHILD = r"""
import asyncio, json, sys
from bot.diagnosis.runner import Runner
from bot.sandbox.world import Sandbox

class SharedMlflow:
    def __init__(self, url): self.url = url
    def stop(self): pass

with Sandbox(sys.argv[1], mlflow=SharedMlflow(sys.argv[2])) as sandbox:
    report = asyncio.run(Runner(sandbox.env).run(["dns", "edge", "routing"]))
    first = report.first_failure
    print(json.dumps({"edge": sandbox.edge.url, "moto": sandbox.moto.url,
                      "first": first.layer if first else None}))
"""


def _refuses(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, int(port.split("/")[0]))) != 0


def test_two_sandboxes_run_at_once_on_their_own_ports(shared_mlflow):
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, scenario, shared_mlflow.url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for scenario in ("seed-outage", "dns-stale")
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    seed, stale = results
    assert (seed["first"], stale["first"]) == ("routing", "dns")
    assert seed["edge"] != stale["edge"] and seed["moto"] != stale["moto"]
    for result in results:  # each child stopped its servers on exit
        assert _refuses(result["edge"]) and _refuses(result["moto"])


def test_stop_leaves_nothing_running(shared_mlflow, tmp_path):
    before = {t.ident for t in threading.enumerate()}
    sandbox = Sandbox("healthy", mlflow=shared_mlflow, workdir=tmp_path / "sb").start()
    urls = [sandbox.edge.url, sandbox.api.url, sandbox.moto.url, "http://" + sandbox.dns.address]
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    assert endpoint == sandbox.moto.url
    sandbox.stop()
    for url in urls:
        assert _refuses(url), f"{url} still listens after stop()"
    assert os.environ.get("AWS_ENDPOINT_URL") != endpoint  # the process's AWS is its own again
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"threads still running after stop(): {[t.name for t in left]}"
    # And the next sandbox in this process starts from an empty AWS account.
    with Sandbox("dns-stale", mlflow=shared_mlflow, workdir=tmp_path / "sb2") as again:
        assert again.platform.scenario == "dns-stale"
