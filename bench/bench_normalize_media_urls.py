"""Time `manage.py normalize_media_urls` (dry run, --apply), with verification on, against the naive loop.

Starts a throwaway PostgreSQL cluster and, for each media storage:

- cloudinary (django-cloudinary-storage on the test suite's Cloudinary emulator, in this process):
  fills bench/mediabench's Picture table with generate_series (500,000 rows x 2 file fields =
  1,000,000 references at scale 1; 10% malformed, spread evenly over every shape: full URL,
  protocol-relative URL with transformations and a query, /media/ + URL, collapsed slashes,
  percent-encoded, nested URL, doubled prefix, leading /media/, external, unknown) and seeds the
  emulator with the files the repairs point at (2% of them left out: those are broken); then at 1x
  and 2x the data: the dry run and --apply, each verifying every repair through the Admin API
  (the calls each spent, counted by the emulator, are printed), and the naive loop (every object
  loaded, fixed by shape with the same parser, ``save()``d) on a sample of rows, in a copy of the
  database, extrapolated linearly to the whole table: the output says so;
- local (FileSystemStorage): ``--rows`` x 2 rows with one image each (1,000,000 references at scale
  1, the same 10% malformed in local shapes: /media/ glued, doubled prefix, the old repair's
  media/ folder, absolute path, backslashes, blanks, a client path, a missing file, external,
  data:), a file in MEDIA_ROOT for every name meant to exist (folders of 1,000): the dry run and
  --apply, each looking every name up.

Wall time and peak RSS (wait4's ru_maxrss) are of whole ``manage.py`` processes.

    .venv/bin/python bench/bench_normalize_media_urls.py [--rows 500000] [--naive-sample 20000] [--no-double]
        [--storage both|cloudinary|local]

tests/test_bench_normalize_media_urls.py runs it at a tiny scale so it cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cloudinary_emulator.emulator import CloudinaryEmulator  # noqa: E402
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


# Local disk: the file of row i is gallery/<i / 1000>/img_<i>.jpg (folders of 1,000, like upload_to
# folders by date); rows whose i % 100 < 10 hold it in one malformed shape each.
LOCAL_NAME = "'gallery/' || (i / 1000) || '/img_' || i || '.jpg'"


def local_shapes(media_root: Path) -> list[str]:
    assert "'" not in str(media_root)
    return [
        f"'/media/' || {LOCAL_NAME}",
        f"'media/media/' || {LOCAL_NAME}",
        # What the shape-only repair wrote for a doubled prefix: canonical in shape, its file a folder up.
        f"'media/' || {LOCAL_NAME}",
        f"'{media_root}/' || {LOCAL_NAME}",
        f"replace({LOCAL_NAME}, '/', '\\')",
        f"' ' || {LOCAL_NAME} || ' '",
        "'C:\\fakepath\\img_' || i || '.jpg'",
        "'gallery/missing/img_' || i || '.jpg'",
        "'https://images.example.org/img_' || i || '.jpg'",
        "'data:image/png;base64,AAAA' || i",
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


def _run_child(argv: list[str], env: dict[str, str]) -> tuple[int, float, float, str, str]:
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    return (
        os.waitstatus_to_exitcode(status),
        time.monotonic() - started,
        usage.ru_maxrss / 1024,
        stdout.decode(),
        stderr.decode(),
    )


class Spawner:
    """Starts the measured children from a small process of its own.

    A child's ru_maxrss counts its parent's memory at the moment it was forked (Linux records the
    forked address space's high-water mark at exec): children of this process, which holds the
    emulator and its seeded files, would report the emulator's size. The spawner is started first,
    while this process is small, and forks every measured child.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--spawner"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def run(self, argv: list[str], env: dict[str, str]) -> tuple[int, float, float, str, str]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"argv": argv, "env": env}) + "\n")
        self.process.stdin.flush()
        code, seconds, rss, stdout, stderr = json.loads(self.process.stdout.readline())
        return int(code), float(seconds), float(rss), str(stdout), str(stderr)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def spawner_loop() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        print(json.dumps(_run_child(request["argv"], request["env"])), flush=True)


SPAWNER: Spawner | None = None


def run_measured(argv: list[str], env: dict[str, str]) -> Run:
    """Run a child and read its own peak RSS (wait4), not the maximum over every child so far."""
    code, seconds, rss, stdout, stderr = (SPAWNER.run if SPAWNER else _run_child)(argv, env)
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({code}):\n{stderr[-3000:]}")
    return Run(seconds, rss, stdout)


def django_env(
    server: PostgresServer,
    database: str,
    work: Path,
    emulator: CloudinaryEmulator | None = None,
    media_root: Path | None = None,
) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings_media"
        if media_root is None
        else "bench.settings_media_local",
        "BENCH_DATABASE_URL": server.url(database),
        "BENCH_UNDO_DIR": str(work / "undo"),
        "BENCH_BACKUP_DIR": str(work / "backups"),
    }
    if emulator is not None:
        env["BENCH_CLOUDINARY_CONFIG"] = json.dumps(emulator.sdk_config())
    if media_root is not None:
        env["BENCH_MEDIA_ROOT"] = str(media_root)
    return env


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


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def seed_emulator(emulator: CloudinaryEmulator, rows: int) -> tuple[int, int]:
    """The files the malformed Cloudinary shapes point at, 2% left out (broken): (seeded, left out)."""
    emulator.reset()
    emulator.admin_rate_limit = 10**9  # the benchmark counts calls; the hourly allowance is not its subject
    image = tiny_png()  # one bytes object shared by every resource: the emulator's memory stays small
    seeded = left_out = 0
    for i in range(1, rows + 1):
        if i % 100 >= len(IMAGE_SHAPES) - 2:
            continue  # canonical, external or unknown: nothing to look up
        if (i // 100) % 50 == 0:
            left_out += 2
            continue
        emulator.seed_resource(f"media/gallery/img_{i}", image, resource_type="image", format="jpg")
        emulator.seed_resource(f"media/docs/doc_{i}.pdf", b"%PDF-1.4", resource_type="raw")
        seeded += 2
    return seeded, left_out


def generate_local(server: PostgresServer, database: str, rows: int, media_root: Path) -> int:
    """``rows`` pictures with one image each on local disk, and their files; returns the files made."""
    conn = server.connect(database)
    conn.autocommit = True
    image = shape_case(local_shapes(media_root), LOCAL_NAME)
    with conn.cursor() as cur:
        cur.execute("TRUNCATE mediabench_picture RESTART IDENTITY")
        cur.execute(
            "INSERT INTO mediabench_picture (title, image, document) "
            f"SELECT 'Picture ' || i, {image}, NULL FROM generate_series(1, %s) i",
            [rows],
        )
        cur.execute("VACUUM ANALYZE mediabench_picture")
    conn.close()
    made = 0
    for i in range(1, rows + 1):
        folder = media_root / "gallery" / str(i // 1000)
        if i % 1000 == 0 or i == 1:
            folder.mkdir(parents=True, exist_ok=True)
        # Every row's file exists, except for the "missing file" shape (it names another folder).
        os.close(os.open(folder / f"img_{i}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
        made += 1
    return made


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


def measure(
    server: PostgresServer, rows: int, sample: int, work: Path, label: str, emulator: CloudinaryEmulator
) -> dict[str, float]:
    database = f"media_{label}"
    create_database(server, database)
    env = django_env(server, database, work / label, emulator)
    manage(env, "migrate", "-v", "0")
    started = time.monotonic()
    generate(server, database, rows)
    seeded, left_out = seed_emulator(emulator, rows)
    print(
        f"[{label}] generated {rows:,} rows ({2 * rows:,} file references), {seeded:,} files on the "
        f"emulator ({left_out:,} repair targets left out) in {time.monotonic() - started:.1f} s"
    )

    calls = emulator.calls["admin"]
    dry = manage(env, "normalize_media_urls", "--model", "mediabench.Picture")
    dry_calls = emulator.calls["admin"] - calls
    print(f"[{label}] dry run: {dry.stdout.splitlines()[0]} [emulator: {dry_calls} Admin API calls]")
    create_database(server, f"{database}_naive", template=database)
    naive_env = django_env(server, f"{database}_naive", work / f"{label}-naive", emulator)
    naive = run_measured([sys.executable, __file__, "--naive-worker", str(sample)], naive_env)
    naive_rows = min(sample, rows)
    naive_seconds = float(naive.stdout.strip().splitlines()[-1])
    calls = emulator.calls["admin"]
    applied = manage(env, "normalize_media_urls", "--model", "mediabench.Picture", "--apply", "--no-input")
    apply_calls = emulator.calls["admin"] - calls
    print(f"[{label}] apply:   {applied.stdout.splitlines()[0]} [emulator: {apply_calls} Admin API calls]")
    # The timed run includes storing its undo log (compressed, read back) in the repository.
    assert list((work / label / "backups").rglob("undo/*.zst")), "the undo log was not stored"
    second = manage(env, "normalize_media_urls", "--model", "mediabench.Picture")
    assert " 0 would fix (verified)" in second.stdout, second.stdout
    return {
        "dry_s": dry.seconds,
        "dry_rss": dry.peak_rss_mb,
        "dry_calls": dry_calls,
        "apply_s": applied.seconds,
        "apply_rss": applied.peak_rss_mb,
        "apply_calls": apply_calls,
        "naive_sample_s": naive_seconds,
        "naive_rows": naive_rows,
        "naive_full_s": naive_seconds * rows / naive_rows,
    }


def measure_local(server: PostgresServer, rows: int, work: Path, label: str) -> dict[str, float]:
    database = f"media_local_{label}"
    create_database(server, database)
    media_root = work / f"local-{label}" / "media"
    env = django_env(server, database, work / f"local-{label}", media_root=media_root)
    manage(env, "migrate", "-v", "0")
    started = time.monotonic()
    made = generate_local(server, database, rows, media_root)
    print(
        f"[local {label}] generated {rows:,} rows ({rows:,} file references), {made:,} files in "
        f"MEDIA_ROOT in {time.monotonic() - started:.1f} s"
    )
    dry = manage(env, "normalize_media_urls", "--model", "mediabench.Picture")
    print(f"[local {label}] dry run: {dry.stdout.splitlines()[0]}")
    applied = manage(env, "normalize_media_urls", "--model", "mediabench.Picture", "--apply", "--no-input")
    print(f"[local {label}] apply:   {applied.stdout.splitlines()[0]}")
    second = manage(env, "normalize_media_urls", "--model", "mediabench.Picture")
    assert " 0 would fix (verified)" in second.stdout, second.stdout
    return {
        "dry_s": dry.seconds,
        "dry_rss": dry.peak_rss_mb,
        "apply_s": applied.seconds,
        "apply_rss": applied.peak_rss_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--naive-sample", type=int, default=20_000)
    parser.add_argument("--no-double", action="store_true")
    parser.add_argument("--storage", choices=("both", "cloudinary", "local"), default="both")
    parser.add_argument("--naive-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--spawner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_worker is not None:
        naive_worker(args.naive_worker)
        return
    if args.spawner:
        spawner_loop()
        return
    global SPAWNER  # one per run, started while this process is small
    SPAWNER = Spawner()
    results: dict[str, dict[str, float]] = {}
    local: dict[str, dict[str, float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-media-") as scratch,
        throwaway_cluster() as server,
        CloudinaryEmulator("bench") as emulator,
    ):
        work = Path(scratch)
        if args.storage in ("both", "local"):
            # Twice the rows, one reference each: the same number of references as the Cloudinary run.
            local["1x"] = measure_local(server, 2 * args.rows, work, "1x")
        if args.storage in ("both", "cloudinary"):
            results["1x"] = measure(server, args.rows, args.naive_sample, work, "1x", emulator)
            if not args.no_double:
                results["2x"] = measure(server, 2 * args.rows, args.naive_sample, work, "2x", emulator)
    print()
    for label, r in local.items():
        print(
            f"local {label}: {2 * args.rows:,} references, verified: dry run {r['dry_s']:.1f} s "
            f"({r['dry_rss']:.0f} MB), apply {r['apply_s']:.1f} s ({r['apply_rss']:.0f} MB)"
        )
    SPAWNER.close()
    if not results:
        return
    print(
        f"{'data':<6}{'refs':>11}{'dry run s':>11}{'dry MB':>8}{'dry calls':>10}{'apply s':>9}"
        f"{'apply MB':>10}{'apply calls':>12}{'naive s*':>11}{'naive/apply':>13}"
    )
    for label, r in results.items():
        rows = args.rows * (2 if label == "2x" else 1)
        print(
            f"{label:<6}{2 * rows:>11,}{r['dry_s']:>11.1f}{r['dry_rss']:>8.0f}{r['dry_calls']:>10.0f}"
            f"{r['apply_s']:>9.1f}{r['apply_rss']:>10.0f}{r['apply_calls']:>12.0f}"
            f"{r['naive_full_s']:>11.1f}{r['naive_full_s'] / r['apply_s']:>12.1f}x"
        )
    first = results["1x"]
    print(
        "* naive: load each object, fix it by shape (no verification), save(): "
        f"{first['naive_rows']:,.0f} rows measured in {first['naive_sample_s']:.1f} s, "
        "extrapolated linearly to the whole table."
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
