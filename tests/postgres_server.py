"""A real PostgreSQL server for the test suite.

Either the one named by ``TEST_DATABASE_URL``, or a throwaway cluster started from the local server
binaries on a free loopback port and removed afterwards. ``initdb`` and ``postgres`` refuse to run
as root (these machines and CI run as root), so the cluster then runs as an unprivileged user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg2
from psycopg2 import sql


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    # The database named by TEST_DATABASE_URL; tests create their own databases beside it.
    maintenance_db: str = "postgres"

    def url(self, dbname: str) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgres://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def connect(self, dbname: str | None = None) -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname or self.maintenance_db,
        )

    def create_database(self, name: str, *, template: str = "template0") -> None:
        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {} ENCODING 'UTF8'").format(
                        sql.Identifier(name), sql.Identifier(template)
                    )
                )
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        finally:
            conn.close()

    def database_settings(self, name: str) -> dict[str, object]:
        """A Django DATABASES entry for database ``name`` on this server."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": self.user,
            "PASSWORD": self.password,
            "HOST": self.host,
            "PORT": str(self.port),
        }


@dataclass(frozen=True)
class ThrowawayPostgresServer(PostgresServer):
    """A throwaway cluster this process started: it can also be stopped and started again."""

    _pg_ctl: tuple[str, ...] = field(default=(), repr=False, compare=False)
    _options: str = field(default="", repr=False, compare=False)

    def stop(self) -> None:
        """Stop the server at once (connections are cut, as when a database host goes away)."""
        _run_as(None, [*self._pg_ctl, "-m", "immediate", "-w", "stop"])

    def start(self) -> None:
        _run_as(None, [*self._pg_ctl, "-o", self._options, "-w", "-t", "60", "start"])


def server_from_url(url: str) -> PostgresServer:
    parts = urlsplit(url)
    return PostgresServer(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or "",
        maintenance_db=(parts.path or "/postgres").lstrip("/") or "postgres",
    )


def _server_bindir() -> Path:
    """The newest installed PostgreSQL server's bin directory (initdb next to postgres)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    raise RuntimeError(
        "No PostgreSQL server binaries found (initdb). Install them "
        "(Debian/Ubuntu: `apt-get install postgresql`) or set TEST_DATABASE_URL."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as(user: str | None, argv: list[str]) -> None:
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[PostgresServer]:
    bindir = _server_bindir()
    run_user: str | None = None
    if os.geteuid() == 0:
        run_user = "postgres"
        try:
            pwd.getpwnam(run_user)
        except KeyError:
            run_user = "nobody"
    workdir = Path(tempfile.mkdtemp(prefix="kidoo-pg-"))
    datadir = workdir / "data"
    datadir.mkdir()
    if run_user is not None:
        entry = pwd.getpwnam(run_user)
        for path in (workdir, datadir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        workdir.chmod(0o755)
    port = _free_port()
    try:
        _run_as(
            run_user,
            [
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )
        # Durability is pointless for a throwaway cluster and costs most of the suite's time.
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -k {datadir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        _run_as(
            run_user,
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(datadir),
                "-l",
                str(datadir / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        runner = ["runuser", "-u", run_user, "--"] if run_user is not None else []
        pg_ctl = (*runner, str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(datadir / "server.log"))
        yield ThrowawayPostgresServer(
            host="127.0.0.1", port=port, user="postgres", password="", _pg_ctl=pg_ctl, _options=options
        )
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            _run_as(
                run_user,
                [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"],
            )
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def test_postgres_server() -> Iterator[PostgresServer]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield server_from_url(url)
    else:
        with throwaway_cluster() as server:
            yield server
