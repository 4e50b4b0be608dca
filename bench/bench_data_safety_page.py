"""Time the data-safety admin page with 100 backups and 365 size samples.

Starts a throwaway PostgreSQL cluster, migrates the site's database on it, takes N real backups of
it into a local backup folder and records a year of daily size samples, then renders
/admin/data-safety/ in-process (Django's test client, logged in as a superuser) and prints the
median and worst render time, cold (the repository listing and the manifests read again) and warm
(the minute-long listing cache hit), beside the anchors that gather the same data from a shell:
`backup --list` and `db_size --format json`, also in-process. Target: under 300 ms warm.

    .venv/bin/python bench/bench_data_safety_page.py [--backups 100] [--samples 365] [--repeat 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres_server import throwaway_cluster  # noqa: E402


def timed(function: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def summary(name: str, times: list[float], anchor: float | None = None) -> str:
    median = statistics.median(times)
    ratio = f"  {median / anchor:5.2f}x the anchor" if anchor else ""
    return f"{name:<38} median {median * 1000:7.1f} ms   worst {max(times) * 1000:7.1f} ms{ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backups", type=int, default=100)
    parser.add_argument("--samples", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    with throwaway_cluster() as server, tempfile.TemporaryDirectory(prefix="bench-page-") as scratch:
        server.create_database("bench_page")
        os.environ.update(
            {
                "DATABASE_URL": server.url("bench_page"),
                "DJANGO_SETTINGS_MODULE": "kidoo_preschool.settings",
                "SECRET_KEY": "bench-only-secret-key-bench-only-secret-key-bench-only",
                "DEBUG": "1",
            }
        )
        import django
        from django.conf import settings

        django.setup()
        settings.OPS = {
            **settings.OPS,
            "BACKUP_REPOSITORY": "local",
            "BACKUP_DIR": str(Path(scratch) / "backups"),
        }
        settings.ALLOWED_HOSTS = ["testserver"]
        from django.contrib.auth.models import User
        from django.core.cache import cache
        from django.core.management import call_command
        from django.test import Client
        from django.utils import timezone

        from ops.models import SizeSample

        call_command("migrate", verbosity=0)
        call_command("seed_demo", verbosity=0)
        started = time.perf_counter()
        for _ in range(args.backups):
            call_command("backup", verbosity=0, stdout=io.StringIO())
        print(f"{args.backups} backups taken in {time.perf_counter() - started:.1f} s")
        now = timezone.now()
        SizeSample.objects.bulk_create(
            # One a day for a year, the newest an hour ago, as the daily cron job records them.
            SizeSample(
                taken_at=now - dt.timedelta(days=day, hours=1),
                size_bytes=50_000_000 + (args.samples - day) * 200_000,
            )
            for day in range(args.samples - 1, -1, -1)
        )
        client = Client()
        client.force_login(User.objects.create_superuser("bench", "bench@example.org", "bench"))

        def page() -> None:
            response = client.get("/admin/data-safety/")
            assert response.status_code == 200, response.status_code
            html = response.content.decode()
            assert html.count('class="ops-verify"') == min(args.backups, 50)
            assert html.count('<circle class="sample"') == args.samples

        def cold_page() -> None:
            cache.clear()
            page()

        def backup_list() -> None:
            call_command("backup", list=True, stdout=io.StringIO())

        def db_size_json() -> None:
            call_command("db_size", format="json", stdout=io.StringIO())

        page()  # templates compiled, connections open
        anchors = {
            "backup --list": timed(backup_list, args.repeat),
            "db_size --format json": timed(db_size_json, args.repeat),
        }
        cold = timed(cold_page, args.repeat)
        warm = timed(page, args.repeat)
        anchor = statistics.median(anchors["backup --list"]) + statistics.median(
            anchors["db_size --format json"]
        )
        print(f"data: {args.backups} backups, {args.samples} size samples, PostgreSQL {server.port}")
        for name, times in anchors.items():
            print(summary(name, times))
        print(summary("page, cold (listing + manifests read)", cold, anchor))
        print(summary("page, warm (listing cached)", warm, anchor))
        print("anchor: backup --list + db_size --format json, the same data from a shell")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {peak:.0f} MB")
        verdict = "within" if statistics.median(warm) < 0.3 else "OVER"
        print(f"warm median {statistics.median(warm) * 1000:.0f} ms: {verdict} the 300 ms target")


if __name__ == "__main__":
    main()
