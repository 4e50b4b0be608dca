"""Time `manage.py normalize_media_urls` (dry run, --apply) against the naive load-fix-save() loop.

Starts a throwaway PostgreSQL cluster, fills bench/mediabench's Picture table with generate_series
(500,000 rows x 2 file fields = 1,000,000 references at scale 1; 10% malformed, spread evenly over
every shape: full URL, protocol-relative URL with transformations and a query, /media/ + URL,
collapsed slashes, percent-encoded, nested URL, doubled prefix, leading /media/, external, unknown),
then at 1x and 2x the data:

- the dry run and --apply as subprocesses: wall time and peak RSS (wait4's ru_maxrss);
- the naive loop (every object loaded, fixed with the same parser, ``save()``d) on a sample of rows,
  in a copy of the database, extrapolated linearly to the whole table: the output says so.

    .venv/bin/python bench/bench_normalize_media_urls.py [--rows 500000] [--naive-sample 20000] [--no-double]

tests/test_bench_normalize_media_urls.py runs it at a tiny scale so it cannot rot.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres_server import PostgresServer, throwaway_cluster  # noqa: E402

CLOUD = "https://res.cloudinary.com/bench"

# One SQL expression per shape, of the row number i; the kind decides image vs raw (extension).
IMAGE_SHAPES = [
    f"'{CLOUD}/image/upload/v1/media/gallery/img_' || i || '.jpg'",
    "'//res.cloudinary.com/bench/image/upload/c_fill,w_300/v17/media/gallery/img_' || i || '.png?_a=1'",
    f"'/media/{CLOUD}/image/upload/v1/media/gallery/img_' || i || '.jpg'",
    "'media/https:/res.cloudinary.com/bench/image/upload/v1/media/gallery/img_' || i",
    "'/media/https%3A//res.cloudinary.com/bench/image/upload/v1/media/gallery/img_' || i",
    f"'{CLOUD}/image/upload/v1/media/{CLOUD}/image/upload/v1/media/gallery/img_' || i",
    "'media/media/gallery/img_' || i",
    "'/media/gallery/img_' || i",
    "'https://images.example.org/img_' || i || '.jpg'",
    "'data:image/png;base64,AAAA' || i",
]
RAW_SHAPES = [shape.replace("image/upload", "raw/upload") for shape in IMAGE_SHAPES]
RAW_SHAPES = [
    s.replace("gallery/img_' || i || '.jpg'", "docs/doc_' || i || '.pdf'")
    .replace("gallery/img_' || i || '.png?_a=1'", "docs/doc_' || i || '.pdf?_a=1'")
    .replace("gallery/img_' || i", "docs/doc_' || i || '.pdf'")
    for s in RAW_SHAPES
]


def shape_case(shapes: list[str], canonical: str) -> str:
    """Rows whose i % 100 < 10 are malformed (10%), one shape per last digit; the rest canonical."""
    # %% : the statement also carries a %s parameter.
    whens = " ".join(f"WHEN i %% 100 = {n} THEN {sql.replace('%', '%%')}" for n, sql in enumerate(shapes))
    return f"CASE {whens} ELSE {canonical} END"


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    stdout: str


def run_measured(argv: list[str], env: dict[str, str]) -> Run:
    """Run a child and read its own peak RSS (wait4), not the maximum over every child so far."""
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}):\n{stderr.decode()[-3000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, stdout.decode())


def django_env(server: PostgresServer, database: str, work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings_media",
        "BENCH_DATABASE_URL": server.url(database),
        "BENCH_UNDO_DIR": str(work / "undo"),
        "BENCH_BACKUP_DIR": str(work / "backups"),
    }


def manage(env: dict[str, str], *args: str) -> Run:
    return run_measured([sys.executable, "manage.py", *args], env)


def create_database(server: PostgresServer, name: str, template: str | None = None) -> None:
    conn = server.connect("postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    conn.close()


def generate(server: PostgresServer, database: str, rows: int) -> None:
    conn = server.connect(database)
    conn.autocommit = True
    image = shape_case(IMAGE_SHAPES, "'media/gallery/img_' || i")
    document = shape_case(RAW_SHAPES, "'media/docs/doc_' || i || '.pdf'")
    with conn.cursor() as cur:
        cur.execute("TRUNCATE mediabench_picture RESTART IDENTITY")
        cur.execute(
            "INSERT INTO mediabench_picture (title, image, document) "
            f"SELECT 'Picture ' || i, {image}, {document} "
            "FROM generate_series(1, %s) i",
            [rows],
        )
        cur.execute("VACUUM ANALYZE mediabench_picture")
    conn.close()


def naive_worker(sample: int) -> None:
    """The loop the command replaces: load each object, fix it with the same parser, save() it."""
    import django

    django.setup()
    from bench.mediabench.models import Picture
    from ops.media.refs import MediaCategory, media_context_for, parse_media_value

    fields = [Picture._meta.get_field("image"), Picture._meta.get_field("document")]
    contexts = {f.name: media_context_for(f.storage) for f in fields}  # type: ignore[attr-defined]
    started = time.monotonic()
    for picture in Picture.objects.order_by("pk")[:sample]:
        for name, context in contexts.items():
            parsed = parse_media_value(getattr(picture, name).name, context)
            if parsed.category is MediaCategory.FIXABLE:
                setattr(picture, name, parsed.canonical_name)
        picture.save()
    print(f"{time.monotonic() - started:.3f}")


def measure(server: PostgresServer, rows: int, sample: int, work: Path, label: str) -> dict[str, float]:
    database = f"media_{label}"
    create_database(server, database)
    env = django_env(server, database, work / label)
    manage(env, "migrate", "-v", "0")
    started = time.monotonic()
    generate(server, database, rows)
    print(
        f"[{label}] generated {rows:,} rows ({2 * rows:,} file references) "
        f"in {time.monotonic() - started:.1f} s"
    )

    dry = manage(env, "normalize_media_urls", "--model", "mediabench.Picture")
    print(f"[{label}] dry run: {dry.stdout.splitlines()[0]}")
    create_database(server, f"{database}_naive", template=database)
    naive_env = django_env(server, f"{database}_naive", work / f"{label}-naive")
    naive = run_measured([sys.executable, __file__, "--naive-worker", str(sample)], naive_env)
    naive_rows = min(sample, rows)
    naive_seconds = float(naive.stdout.strip().splitlines()[-1])
    applied = manage(env, "normalize_media_urls", "--model", "mediabench.Picture", "--apply", "--no-input")
    print(f"[{label}] apply:   {applied.stdout.splitlines()[0]}")
    # The timed run includes storing its undo log (compressed, read back) in the repository.
    assert list((work / label / "backups").rglob("undo/*.zst")), "the undo log was not stored"
    second = manage(env, "normalize_media_urls", "--model", "mediabench.Picture")
    assert " 0 would fix" in second.stdout, second.stdout
    return {
        "dry_s": dry.seconds,
        "dry_rss": dry.peak_rss_mb,
        "apply_s": applied.seconds,
        "apply_rss": applied.peak_rss_mb,
        "naive_sample_s": naive_seconds,
        "naive_rows": naive_rows,
        "naive_full_s": naive_seconds * rows / naive_rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--naive-sample", type=int, default=20_000)
    parser.add_argument("--no-double", action="store_true")
    parser.add_argument("--naive-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_worker is not None:
        naive_worker(args.naive_worker)
        return
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-media-") as scratch, throwaway_cluster() as server:
        work = Path(scratch)
        results["1x"] = measure(server, args.rows, args.naive_sample, work, "1x")
        if not args.no_double:
            results["2x"] = measure(server, 2 * args.rows, args.naive_sample, work, "2x")
    print()
    print(
        f"{'data':<6}{'refs':>11}{'dry run s':>11}{'dry MB':>8}{'apply s':>9}{'apply MB':>10}"
        f"{'naive s*':>11}{'naive/apply':>13}"
    )
    for label, r in results.items():
        rows = args.rows * (2 if label == "2x" else 1)
        print(
            f"{label:<6}{2 * rows:>11,}{r['dry_s']:>11.1f}{r['dry_rss']:>8.0f}{r['apply_s']:>9.1f}"
            f"{r['apply_rss']:>10.0f}{r['naive_full_s']:>11.1f}{r['naive_full_s'] / r['apply_s']:>12.1f}x"
        )
    first = results["1x"]
    print(
        f"* naive: load each object, fix it, save(): {first['naive_rows']:,.0f} rows measured in "
        f"{first['naive_sample_s']:.1f} s, extrapolated linearly to the whole table."
    )
    print(f"naive / apply time: {first['naive_full_s'] / first['apply_s']:.1f}x")
    print(f"naive / dry run time: {first['naive_full_s'] / first['dry_s']:.1f}x")
    if "2x" in results:
        print(
            f"peak RSS 2x / 1x: dry run {results['2x']['dry_rss'] / first['dry_rss']:.2f}, "
            f"apply {results['2x']['apply_rss'] / first['apply_rss']:.2f}"
        )


if __name__ == "__main__":
    main()
