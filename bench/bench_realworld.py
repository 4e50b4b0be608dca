"""Time `restore` of a real Wagtail site against `pg_restore -j 2`, Django start-up included.

The site of tests/realworld (``wagtail start`` + the tutorial's blog, filled through Wagtail's APIs:
195 migrations, 62 tables) in its own virtualenv (built and cached as the suite does). On a
throwaway PostgreSQL cluster (or TEST_DATABASE_URL's server):

- ours: ``manage.py restore FILE --no-input`` as a whole process into an empty database, with
  ``OPS["RESTORE_JOBS"] = 2``;
- theirs: ``pg_restore -j 2`` of a ``pg_dump -Fc`` of the same database into an empty database
  (2 connections on both sides).

Each is run ``--runs`` times (median printed) and the ratio printed, with the floor under ours:
``manage.py check`` of the same project (Django's start-up and system checks, which a restore
pays before its first query). Figures: bench/README.md.

    .venv/bin/python bench/bench_realworld.py [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres_server import PostgresServer, client_bindir, server_from_url, throwaway_cluster  # noqa: E402
from tests.realworld.harness import driver, virtualenv  # noqa: E402
from tests.realworld.sites import wagtail_site  # noqa: E402


@contextlib.contextmanager
def server() -> Iterator[PostgresServer]:
    if os.environ.get("TEST_DATABASE_URL"):
        yield server_from_url(os.environ["TEST_DATABASE_URL"])
    else:
        with throwaway_cluster() as started:
            yield started


def timed(argv: list[str], **kwargs: object) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-realworld-") as folder, server() as pg:
        # pg_dump and pg_restore at least as new as the server (not always in the server's folder).
        bindir = client_bindir(pg.major())
        project = wagtail_site(Path(folder) / "site", virtualenv("wagtail", driver()))
        source = "bench_rw_source"
        pg.drop_database(source)
        pg.create_database(source)
        url = pg.url(source)
        project.manage(url, "migrate", "--no-input", "-v0")
        project.script(url, "wagtail_populate")
        archive = Path(folder) / "site.ops"
        dump = Path(folder) / "site.dump"
        project.manage(url, "backup", "-o", str(archive))
        auth = {"PGPASSWORD": pg.password} if pg.password else {}
        connection = ["-h", pg.host, "-p", str(pg.port), "-U", pg.user]
        env = {**os.environ, **auth}
        subprocess.run(
            [str(bindir / "pg_dump"), *connection, "-Fc", "-f", str(dump), source], check=True, env=env
        )
        ours, theirs, startup = [], [], []
        for number in range(args.runs):
            # The floor under ours: the same project's Django start-up and system checks, which
            # every manage.py command pays before it does anything (restore runs the checks too),
            # and Django's own command's exit (Python's final collection, which ops commands skip).
            startup.append(
                timed(
                    [str(project.venv / "bin" / "python"), "manage.py", "check"],
                    cwd=project.root,
                    env=project.environment(url),
                )
            )
            target = f"bench_rw_ours_{number}"
            pg.drop_database(target)
            pg.create_database(target)
            restore = [
                str(project.venv / "bin" / "python"),
                "manage.py",
                "restore",
                str(archive),
                "--no-input",
            ]
            ours.append(
                timed(
                    restore, cwd=project.root, env=project.environment(pg.url(target), OPS_RESTORE_JOBS="2")
                )
            )
            pg.drop_database(target)
            target = f"bench_rw_theirs_{number}"
            pg.drop_database(target)
            pg.create_database(target)
            theirs.append(
                timed([str(bindir / "pg_restore"), *connection, "-j", "2", "-d", target, str(dump)], env=env)
            )
            pg.drop_database(target)
        pg.drop_database(source)
    mine, base, floor = statistics.median(ours), statistics.median(theirs), statistics.median(startup)
    print(f"Wagtail site ({driver()}), {args.runs} runs, median wall time, 2 connections on both sides:")
    print(f"  restore (manage.py, Django start-up included): {mine:.2f} s  {[round(s, 2) for s in ours]}")
    print(f"  pg_restore -j 2:                               {base:.2f} s  {[round(s, 2) for s in theirs]}")
    print(f"  manage.py check (start-up, checks and exit):   {floor:.2f} s  {[round(s, 2) for s in startup]}")
    print(f"  restore / pg_restore -j 2 = {mine / base:.2f}x")
    print(f"  start-up alone / pg_restore -j 2 = {floor / base:.2f}x")
    own = mine - floor
    print(f"  the restore's own work (restore - start-up): {own:.2f} s = {own / base:.2f}x")


if __name__ == "__main__":
    main()
