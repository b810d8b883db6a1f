"""A real PostgreSQL on 127.0.0.1 as MLflow's backend store, so database failures cascade the
way they do on RDS: stop it and MLflow answers registry calls ``503 TEMPORARILY_UNAVAILABLE``
with psycopg2's ``OperationalError`` while ``/health`` stays 200; change its user's password
and new connections are refused with ``password authentication failed``.

PostgreSQL's ``initdb`` refuses to run as root: as root, the cluster belongs to the
``postgres`` user (``runuser``), in a directory of its own under the system temp dir.

Example::

    with DatabaseBackedMlflow() as backed:
        backed.break_database("db-stopped")   # MLflow now answers 503
        backed.restore()
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from bot.sandbox.mlflow_server import MlflowServer, free_port
from bot.sandbox.upstreams import LOOPBACK

DB_NAME = "mlflow"
DB_USER = "mlflow"
# The scenarios a database-backed MLflow can play.
DATABASE_SCENARIOS = frozenset({"db-stopped", "db-password-rejected"})


def postgres_available() -> bool:
    """Whether this machine has PostgreSQL's server programs and psycopg2."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return False
    return all(shutil.which(p) for p in ("initdb", "pg_ctl", "postgres"))


class MlflowPostgres:
    """One PostgreSQL cluster on a free loopback port, with a database and user for MLflow."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hokusai-pg-"))
        self.password = secrets.token_urlsafe(18)
        self._admin_password = secrets.token_urlsafe(18)
        self._as_postgres = os.geteuid() == 0
        self.running = False

    @property
    def uri(self) -> str:
        """The backend store URI MLflow is given (holds the password: never shown)."""
        return f"postgresql+psycopg2://{DB_USER}:{self.password}@{LOOPBACK}:{self.port}/{DB_NAME}"

    def _run(self, *argv: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else list(argv)
        subprocess.run(command, check=True, capture_output=True, timeout=60, cwd=self.dir)

    def start(self) -> MlflowPostgres:
        pwfile = self.dir / "pw"
        pwfile.write_text(self._admin_password)
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")
            shutil.chown(pwfile, "postgres")
        self._run(
            "initdb", "-D", str(self.dir / "data"), "-A", "scram-sha-256",
            "-U", "postgres", f"--pwfile={pwfile}",
        )  # fmt: skip
        pwfile.unlink()
        self.start_database()
        self._admin(
            f"CREATE ROLE {DB_USER} LOGIN PASSWORD %s",
            (self.password,),
        )
        self._admin(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}", autocommit=True)
        return self

    def start_database(self) -> None:
        options = f"-h {LOOPBACK} -p {self.port} -k {self.dir}"
        self._run(
            "pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
        self.running = True

    def stop_database(self) -> None:
        """Stop the server, as someone stopping the RDS instance would."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
            self.running = False

    def reject_password(self) -> None:
        """Change the user's password (rotated in one place only) and end its sessions."""
        self._admin(f"ALTER ROLE {DB_USER} PASSWORD %s", (secrets.token_urlsafe(18),))
        self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            (DB_USER,),
        )

    def restore_password(self) -> None:
        self._admin(f"ALTER ROLE {DB_USER} PASSWORD %s", (self.password,))

    def _admin(self, sql: str, params: tuple = (), *, autocommit: bool = True) -> None:
        import psycopg2

        conn = psycopg2.connect(
            host=LOOPBACK,
            port=self.port,
            user="postgres",
            password=self._admin_password,
            dbname="postgres",
            connect_timeout=5,
        )
        try:
            conn.autocommit = autocommit
            with conn.cursor() as cur:
                cur.execute(sql, params)
            if not autocommit:
                conn.commit()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.running:
            try:
                self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
            finally:
                self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)


class DatabaseBackedMlflow:
    """A real MLflow server whose backend store is a real PostgreSQL, both on loopback."""

    def __init__(self, workdir: str | Path | None = None, *, allowed_hosts: list[str]) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="hokusai-mlflow-pg-"))
        self.postgres = MlflowPostgres()
        self.allowed_hosts = allowed_hosts
        self.mlflow: MlflowServer | None = None

    @property
    def url(self) -> str:
        assert self.mlflow is not None
        return self.mlflow.url

    def start(self) -> DatabaseBackedMlflow:
        self.postgres.start()
        try:
            self.mlflow = MlflowServer(
                self.workdir, allowed_hosts=self.allowed_hosts, backend_store_uri=self.postgres.uri
            )
            self.mlflow.start()
            self.mlflow.seed()
        except BaseException:
            self.stop()
            raise
        return self

    def break_database(self, scenario: str) -> None:
        """Break the database the way ``scenario`` says (one of DATABASE_SCENARIOS)."""
        if scenario == "db-stopped":
            self.postgres.stop_database()
        elif scenario == "db-password-rejected":
            self.postgres.reject_password()

    def restore(self) -> None:
        if not self.postgres.running:
            self.postgres.start_database()
        self.postgres.restore_password()

    def secrets(self) -> list[str]:
        return [self.postgres.password]

    def stop(self) -> None:
        if self.mlflow is not None:
            self.mlflow.stop()
        self.postgres.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> DatabaseBackedMlflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
