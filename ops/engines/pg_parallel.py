"""A restore's load on several connections at once, still all or nothing.

One transaction runs on one connection, and one connection keeps at most one CPU of the server
busy with COPY. With ``OPS["RESTORE_JOBS"]`` above 1 a restore therefore builds the backup's
database *beside* the live one, in a private schema ``ops_restore_<hex>``, and swaps it in:

A backup that recorded its schema (ops/engines/pg_schema.py) is rebuilt there from that record
(``build_recorded``: tables, functions, views, then the rows, indexes, keys, checks, foreign keys,
triggers and sequence values; no migration runs), and the swap moves its views, functions and free
sequences along. An older backup is built by its migrations (``build``):

1. migrations to the backup's recorded state, on a connection whose ``search_path`` is the private
   schema and then the live ones (for the types of extensions installed there); every name used
   resolves in the private schema first, and its ``django_migrations`` exists before any migration
   runs. That connection stands in for the live alias meanwhile (``migration_state.standing_in``):
   a data migration writing through the default connection writes into the private schema, never
   into the live tables. Then indexes and constraints are dropped (ops/engines/pg_load.py);
2. ``RESTORE_JOBS`` worker connections COPY the tables in, largest first, and build each table's
   indexes (its keys' too) as soon as its rows are in, each in a transaction of its own; then, on
   one connection, the keys are attached to their indexes, the foreign keys added and validated,
   and the sequences reset;
3. in the caller's transaction on the live schema: drop its tables, move the new ones in
   (``ALTER TABLE ... SET SCHEMA`` takes their indexes, constraints and sequences along; relocatable
   extensions the migrations installed move first) and drop the then empty private schema
   (``RESTRICT``: anything left in it fails the swap, which rolls back).

Nothing of the live schema is written before step 3, which is one transaction: a failure or a kill
before its COMMIT leaves the database as it was. A private schema left by a killed restore is
dropped by the next restore of that database (under the same advisory lock).

``ShadowUnsupported`` sends the caller back to the one-connection load (ops/engines/pg_load.py) when the
private schema cannot hold the backup: no right to create a schema, a ``search_path`` naming
schemas that need quoting, migrations that fail there, or that create anything but tables and
relocatable extensions (views, functions, types would not move with the tables).
"""

from __future__ import annotations

import contextlib
import copy
import heapq
import itertools
import queue
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.recorder import MigrationRecorder
from django.db.utils import load_backend

from ops.archive.format import Manifest, Readable, TableEntry, table_at, table_offsets
from ops.engines import pg_copy, pg_load, pg_schema
from ops.engines.migration_state import migrate_to_recorded, standing_in
from ops.errors import redact
from ops.progress import ProgressCallback, TableProgress

SHADOW_PREFIX = "ops_restore_"
# A table is loaded by several COPY streams only if it is this big and holds more than a
# RESTORE_JOBS-th of all rows: below, the streams' start-up costs more than they gain.
_SPLIT_MIN_ROWS = 100_000
# Tables below this many rows are created with their indexes and loaded several to a transaction
# (``build_recorded``): per table, the tasks and round trips of separate index builds cost more
# than maintaining the indexes row by row.
_BATCH_MAX_ROWS = 10_000
# What building one index of a table costs, and validating one of its foreign keys, per row, in
# COPYs of a row (bench, 2 M rows: COPY 2.6 s, index builds 0.6-1.1 s, the validation 0.45-0.55 s).
# The load runs the ready task with the most such work still ahead of it first (``_load``).
_BUILD_COST = 0.4
_VALIDATE_COST = 0.25
_SIMPLE_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class ShadowUnsupported(Exception):
    """The backup cannot be built in a private schema here: load it on one connection instead."""


@dataclass(frozen=True)
class Shadow:
    schema: str
    connection: BaseDatabaseWrapper


def drop_leftovers(connection: BaseDatabaseWrapper) -> int:
    """Drop the private schemas of restores that were killed; call it under the restore lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT quote_ident(nspname) FROM pg_namespace WHERE nspname LIKE %s "
            "AND pg_has_role(nspowner, 'USAGE')",
            [SHADOW_PREFIX.replace("_", "\\_") + "%"],
        )
        names = [str(row[0]) for row in cursor.fetchall()]
        for name in names:
            cursor.execute(f"DROP SCHEMA {name} CASCADE")
    return len(names)


@contextlib.contextmanager
def shadow_schema(database: str) -> Iterator[Shadow]:
    """A private schema and a Django connection that resolves names there first; both gone after."""
    main = connections[database]
    schema = SHADOW_PREFIX + secrets.token_hex(6)
    with main.cursor() as cursor:
        # The live schemas stay on the path after the private one, for the types of extensions
        # installed there (hstore, citext...). Every name the restore uses resolves in the private
        # schema first: its django_migrations is created before any migration runs (``build``).
        cursor.execute("SELECT current_schemas(false)")
        row = cursor.fetchone()
        live = [str(name) for name in (row[0] if row else [])]
        if not all(_SIMPLE_NAME.fullmatch(name) for name in live):
            raise ShadowUnsupported("the search_path names schemas that need quoting")
        try:
            cursor.execute(f"CREATE SCHEMA {schema}")
        except DatabaseError as error:
            raise ShadowUnsupported(f"cannot create a schema ({redact(str(error).strip())})") from None
    settings = copy.deepcopy(connections.settings[database])
    options = dict(settings.get("OPTIONS") or {})
    search_path = ",".join([schema, *live])
    options["options"] = f"{options.get('options', '')} -c search_path={search_path}".strip()
    settings["OPTIONS"] = options
    # Under the live alias's own name but registered nowhere: ``build`` makes it stand in for
    # that alias while the migrations run (their data migrations write through it), and nothing
    # else ever gets it from ``connections``.
    shadow = load_backend(str(settings["ENGINE"])).DatabaseWrapper(settings, database)
    try:
        yield Shadow(schema, shadow)
    finally:
        with contextlib.suppress(Exception):
            shadow.close()
        with contextlib.suppress(Exception), main.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _member(catalog: str, oid: str) -> str:
    """SQL: whether the object ``oid`` of ``catalog`` belongs to an extension (it moves with it)."""
    return (
        f"EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass "  # noqa: S608
        f"AND d.objid = {oid} AND d.deptype = 'e')"
    )


# Anything in the private schema but tables (with their indexes, owned sequences and row types) and
# relocatable extensions would not move into the live schema (``swap_in``).
_FOREIGN_OBJECTS = f"""
SELECT
  (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid AND NOT {_member("pg_class", "c.oid")}
     AND (c.relkind NOT IN ('r', 'p', 'i', 'I', 'S')
          OR (c.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM pg_depend d
              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))))
  + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = n.oid AND NOT {_member("pg_proc", "p.oid")})
  + (SELECT count(*) FROM pg_extension e WHERE e.extnamespace = n.oid AND NOT e.extrelocatable)
  + (SELECT count(*) FROM pg_type t WHERE t.typnamespace = n.oid AND t.typtype <> 'c'
     AND NOT {_member("pg_type", "t.oid")}
     AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.oid = t.typelem
                     AND (e.typrelid <> 0 OR {_member("pg_type", "e.oid")})))
FROM pg_namespace n WHERE n.nspname = current_schema()
"""  # noqa: S608 -- no input: catalog names only


def build(
    shadow: Shadow,
    database: str,
    archive: BinaryIO,
    manifest: Manifest,
    jobs: int,
    progress: ProgressCallback,
) -> int:
    """The backup's database in ``shadow``, every table loaded and constrained; returns the rows."""
    with standing_in(shadow.connection):
        return _build(shadow, database, archive, manifest, jobs, progress)


def _build(
    shadow: Shadow,
    database: str,
    archive: BinaryIO,
    manifest: Manifest,
    jobs: int,
    progress: ProgressCallback,
) -> int:
    connection = shadow.connection
    # Here, not in the live schema further down the path: the migrations are recorded where they run.
    with connection.schema_editor() as editor:
        editor.create_model(MigrationRecorder.Migration)
    try:
        migrate_to_recorded(connection, manifest.migrations)
    except DatabaseError as error:
        raise ShadowUnsupported(
            f"the migrations fail in a private schema ({redact(str(error).strip())})"
        ) from None
    with connection.cursor() as cursor:
        cursor.execute(_FOREIGN_OBJECTS)
        row = cursor.fetchone()
        if row is None or int(row[0]):
            raise ShadowUnsupported("migrations create objects other than tables")
    tables = [entry.name for entry in manifest.tables]
    pg_load.check_tables_present(connection, tables)
    deferred = pg_load.drop_indexes_and_constraints(connection, tables)
    plain = pg_load.plain_tables(connection, tables)
    rows = _load(shadow, archive, manifest, deferred, plain, jobs, progress)
    with connection.cursor() as cursor:
        for statement in deferred.foreign:
            cursor.execute(statement)
    pg_load.reset_sequences(connection, database, manifest)
    return rows


def build_recorded(
    shadow: Shadow,
    archive: BinaryIO,
    manifest: Manifest,
    schema: pg_schema.RecordedSchema,
    jobs: int,
    progress: ProgressCallback,
) -> int:
    """The backup's database in ``shadow`` from the schema it recorded (no migration runs).

    As pg_restore does it: the tables, functions and views first, then the rows on ``jobs``
    connections with each table's indexes built as soon as its rows are in, its keys then, and
    each check and foreign key as soon as the tables it needs are keyed; then the exclusions,
    triggers and the sequences' values. Returns the rows loaded.
    """
    connection = shadow.connection
    plan = pg_schema.plan(schema, pg_load.quote_ident(shadow.schema))
    recorded = set(schema.tables)
    missing = [entry.name for entry in manifest.tables if entry.name not in recorded]
    if missing:
        raise pg_schema.UnsafeDefinition(
            f"The backup holds tables its recorded schema does not describe: {', '.join(missing)}."
        )
    # Small tables get their indexes while still empty, with the tables: the rows then go into
    # them as they are copied, instead of a task, a transaction and a scan per index afterwards
    # (the Wagtail site of tests/realworld: 62 tables, most of a few rows, ~500 indexes). Built
    # here, on one connection: spread over the load's connections they took longer (0.35 s of
    # DDL at once on two connections vs 0.1 s on one, measured).
    rows_of = {entry.name: entry.rows for entry in manifest.tables}
    small = frozenset(name for name in recorded if rows_of.get(name, 0) < _BATCH_MAX_ROWS)
    early = tuple(statement for name in sorted(small) for statement in plan.indexes.get(name, ()))
    # Each block one transaction: a commit (and its WAL flush) per statement cost more than the
    # statements themselves on a schema of a hundred objects. Nothing here is live until the swap.
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        pg_schema.prepare_session(cursor)
        pg_schema.execute(cursor, (*plan.before_load, *early))
    later = {name: statements for name, statements in plan.indexes.items() if name not in small}
    deferred = pg_load.DeferredDDL(later, (), ())
    finishing = _Finishing(frozenset(recorded), plan.keys, plan.constraints)
    rows = _load(shadow, archive, manifest, deferred, set(recorded), jobs, progress, small, finishing)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        pg_load.set_setting(cursor, "maintenance_work_mem", pg_load.maintenance_work_mem(), local=True)
        pg_schema.prepare_session(cursor)
        pg_schema.execute(cursor, plan.rest)
        pg_schema.set_sequences(cursor, plan)
    return rows


@dataclass(frozen=True)
class _Finishing:
    """What a recorded schema adds to its tables on the load's connections, once their rows are in.

    ``keys``: per table, the statements attaching its keys to their (built) indexes.
    ``constraints``: checks and foreign keys, each added and validated once the tables it waits
    for are keyed. ``tables``: every table of the schema, loaded or not (those the backup holds
    no rows of are small: their keys go with the small tables').
    """

    tables: frozenset[str]
    keys: dict[str, tuple[str, ...]]
    constraints: tuple[pg_schema.Constraint, ...]


class _Aborted(Exception):
    """A stream of a split table stopped because another part of the load failed."""


class _RowSplitter:
    """One table's COPY text dealt to several COPY streams, whole rows at a time (a thread of its own).

    COPY text ends every row with a newline (newlines inside values are escaped), so any cut after
    a newline is a cut between rows. Streams take the next piece from one queue as they are ready:
    memory holds a few pieces, and a stream that starts late or not at all blocks nobody.
    """

    def __init__(self, data: Iterator[bytes], streams: int) -> None:
        self._data = data
        self._streams = streams
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=2 * streams)
        self._stopped = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._deal, name="ops-restore-split", daemon=True)
        self._thread.start()

    def _put(self, piece: bytes | None) -> bool:
        while not self._stopped.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(piece, timeout=0.1)
                return True
        return False

    def _deal(self) -> None:
        try:
            rest = b""
            for chunk in self._data:
                chunk = rest + chunk if rest else chunk
                cut = chunk.rfind(b"\n") + 1
                rest = chunk[cut:]
                if cut and not self._put(chunk[:cut]):
                    return
            if rest:  # not a whole row: COPY reports it
                self._put(rest)
            for _ in range(self._streams):
                self._put(None)
        except BaseException as error:
            self.error = error
            self._stopped.set()

    def stop(self) -> None:
        self._stopped.set()

    def join(self) -> None:
        self._thread.join()

    def read(self, size: int = -1, /) -> bytes:
        """The next piece for whichever stream asks; b"" once the table is dealt."""
        while True:
            if self._stopped.is_set():
                raise self.error if self.error is not None else _Aborted()
            try:
                piece = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            return b"" if piece is None else piece


# A task handed to the load's pool, ordered by the work left on the longest path through it (most
# first; ``_load``), then by when it became ready. ``exclusive``, ``shared``: the tables it needs
# to itself, or shared with other such tasks, while it runs.
@dataclass(order=True)
class _Task:
    negative_path: float
    sequence: int
    run: Callable[..., list[tuple[str, str, int]]] = field(compare=False)
    arguments: tuple[Any, ...] = field(compare=False)
    exclusive: frozenset[str] = field(compare=False, default=frozenset())
    shared: frozenset[str] = field(compare=False, default=frozenset())


def _load(
    shadow: Shadow,
    archive: BinaryIO,
    manifest: Manifest,
    deferred: pg_load.DeferredDDL,
    plain: set[str],
    jobs: int,
    progress: ProgressCallback,
    batched: frozenset[str] = frozenset(),
    finishing: _Finishing | None = None,
) -> int:
    """COPY every table, build its indexes, then its keys and constraints, on ``jobs`` connections.

    Each table is loaded in a transaction of its own with the TRUNCATE that lets COPY freeze its
    rows. A table holding more than a ``jobs``-th of all rows is loaded by ``jobs`` COPY streams
    at once instead (``_RowSplitter``; its rows are not frozen: that needs one transaction). A
    table's indexes are built as soon as its rows are in, one task each, so the indexes of the
    largest table are built side by side.

    ``finishing`` (a recorded schema's): a table's keys are attached as soon as its indexes are
    built, and each check or foreign key added and validated as soon as the tables it waits for
    are keyed. A validation is one query the server runs on one CPU (parallel workers take no part
    in it): run after all the rest, it kept one connection busy while the other had nothing left
    to do (bench, 1x: 0.45 s of 4.2). Tasks that lock the same tables in conflicting modes never
    run at once (pg_restore's rule): a lock wait would hold a connection idle, and two foreign keys
    between the same tables in opposite directions could deadlock. Without ``finishing`` (the
    migration path), the caller attaches the keys afterwards.

    The ready task with the most work left on the longest path through it runs first (critical
    path list scheduling), that work estimated from the rows: a table referenced by a big table's
    foreign key is loaded early, as its key's validation waits for it.

    ``batched``: small, empty tables whose indexes the caller built already. They are loaded
    several to a transaction, in at most ``jobs`` batches of about equal rows, with no TRUNCATE
    (a task, a transaction and a new file per table cost more than freezing saves on few rows),
    and their keys and the constraints between them are added in one transaction once all are in.
    """
    finishing = finishing or _Finishing(frozenset(), {}, ())
    fd = archive.fileno()
    offsets = table_offsets(fd, manifest)
    maintenance_work_mem = pg_load.maintenance_work_mem()
    local = threading.local()
    opened: list[Any] = []
    opened_lock = threading.Lock()

    def worker() -> Any:
        if getattr(local, "connection", None) is None:
            # The private schema's settings: search_path and the driver Django uses.
            local.connection = pg_copy.connect(shadow.connection)
            with opened_lock:
                opened.append(local.connection)
            with pg_copy.transaction(local.connection), local.connection.cursor() as cursor:
                pg_load.set_setting(cursor, "maintenance_work_mem", maintenance_work_mem, local=False)
                # Private until the swap, whose commit flushes all of it: no flush per table here.
                cursor.execute("SET synchronous_commit = off")
                if jobs > 1:
                    # The load's connections are the parallelism: index builds starting parallel
                    # workers of their own on top overloaded the server (1x bench, 2 cores: 3.51-3.80
                    # s without them, 3.84-4.32 s with; pg_restore -j 2 3.42-3.60 s). One connection
                    # keeps them: there they are the only parallelism (40% faster builds).
                    cursor.execute("SET max_parallel_maintenance_workers = 0")
                # For the recorded definitions of keys and constraints (pg_schema's checks).
                pg_schema.prepare_session(cursor)
        return local.connection

    def qualified(entry: TableEntry) -> str:
        # Qualified: nothing a worker does may reach the live schema.
        return f"{shadow.schema}.{pg_load.quote_ident(entry.name)}"

    @contextlib.contextmanager
    def in_transaction() -> Iterator[Any]:
        """A cursor in a transaction of its own on this thread's connection (Django's errors)."""
        with (
            shadow.connection.wrap_database_errors,
            pg_copy.transaction(worker()) as connection,
            connection.cursor() as cursor,
        ):
            yield cursor

    def run(*statements: str) -> None:
        """``statements`` in one transaction on this thread's connection."""
        with in_transaction() as cursor:
            pg_schema.execute(cursor, statements)

    # Each task returns what it finished, as (event, table, rows) for the loop below.
    def copy(entry: TableEntry, source: Readable | None = None) -> list[tuple[str, str, int]]:
        """COPY the whole table (``source`` None), or the rows one stream of a split table gets."""
        with in_transaction() as cursor:
            if source is None:
                # Truncated in this transaction, so COPY may write the rows frozen (see pg_load).
                cursor.execute(f"TRUNCATE {qualified(entry)}")
            freeze = source is None and entry.name in plain
            data = source if source is not None else table_at(fd, offsets[entry.name], entry)
            rows = pg_load.copy_in(cursor, qualified(entry), entry, data, freeze=freeze, whole=source is None)
            return [("rows", entry.name, rows)]

    def copy_batch(entries: list[TableEntry]) -> list[tuple[str, str, int]]:
        """COPY several small tables in one transaction (their indexes exist already)."""
        with in_transaction() as cursor:
            return [
                (
                    "rows",
                    entry.name,
                    pg_load.copy_in(
                        cursor,
                        qualified(entry),
                        entry,
                        table_at(fd, offsets[entry.name], entry),
                        freeze=False,
                    ),
                )
                for entry in entries
            ]

    def build(table: str, statement: str) -> list[tuple[str, str, int]]:
        run(statement)
        return [("built", table, 0)]

    def attach_keys(table: str) -> list[tuple[str, str, int]]:
        run(*finishing.keys[table])
        return [("keyed", table, 0)]

    def constrain(constraint: pg_schema.Constraint) -> list[tuple[str, str, int]]:
        # Two transactions: adding it locks the referenced table against other keys' additions,
        # validating it does not.
        run(constraint.unvalidated)
        if constraint.validate is not None:
            run(constraint.validate)
        return []

    def finish_small(
        tables: frozenset[str], constraints: list[pg_schema.Constraint]
    ) -> list[tuple[str, str, int]]:
        # The keys and constraints of the small tables, all in one transaction: a task, a
        # transaction and a round trip each cost more than they do (Wagtail: 97 keys, 111 foreign
        # keys on 918 rows in all).
        keys = (statement for name in sorted(tables) for statement in finishing.keys.get(name, ()))
        run(*keys, *(constraint.add for constraint in constraints))
        return [("keyed", name, 0) for name in sorted(tables)]

    entries = {entry.name: entry for entry in manifest.tables}
    total = max(1, manifest.rows)
    order = sorted(manifest.tables, key=lambda entry: entry.rows, reverse=True)
    split = [entry for entry in order if entry.rows >= _SPLIT_MIN_ROWS and entry.rows * jobs > total]
    splitters: dict[str, _RowSplitter] = {}
    streams_left: dict[str, int] = {}
    rows_in: dict[str, int] = {}
    builds_left: dict[str, int] = {}
    keyed: set[str] = set()
    waiting = list(finishing.constraints)

    # The work left after each step, in rows (see _BUILD_COST).
    def validation(constraint: pg_schema.Constraint) -> float:
        rows = entries[constraint.table].rows if constraint.table in entries else 0
        return _VALIDATE_COST * rows if constraint.validate is not None else 0.0

    after_keys: dict[str, float] = {}  # the longest validation waiting for the table's keys
    for constraint in finishing.constraints:
        for name in constraint.waits_for:
            after_keys[name] = max(after_keys.get(name, 0.0), validation(constraint))

    def after_rows(name: str) -> float:
        builds = _BUILD_COST * entries[name].rows if name in entries and deferred.builds(name) else 0.0
        return builds + after_keys.get(name, 0.0)

    # Tasks ready to run, most work left first: when a big table's rows are in, its index builds
    # go before the COPY of smaller tables (a FIFO queue left them behind every smaller table's
    # COPY and builds). Only ``jobs`` tasks are handed to the pool at a time, so this order is the
    # order they run in.
    ready: list[_Task] = []
    sequence = itertools.count()

    def make_ready(path: float, task: Callable[..., Any], *arguments: Any, **locks: frozenset[str]) -> None:
        heapq.heappush(ready, _Task(-path, next(sequence), task, arguments, **locks))

    # The small tables (``batched``, and those of the schema the backup holds no rows of) are
    # finished together once their rows are all in: their keys, and the constraints between them.
    small = batched | (finishing.tables - entries.keys())
    small_left = sum(1 for entry in manifest.tables if entry.name in batched)
    among_small = [constraint for constraint in waiting if constraint.waits_for <= small]
    waiting = [constraint for constraint in waiting if constraint not in among_small]

    def small_done() -> None:
        if any(name in finishing.keys for name in small) or among_small:
            # As urgent as what waits for their keys.
            path = max((after_keys.get(name, 0.0) for name in small), default=0.0)
            make_ready(path, finish_small, small, among_small, exclusive=small)
        else:
            for name in small:
                keys_done(name)

    def rows_done(name: str) -> None:
        nonlocal small_left
        if name in small:
            small_left -= 1
            if not small_left:
                small_done()
            return
        builds = deferred.builds(name)
        builds_left[name] = len(builds)
        for statement in builds:
            make_ready(_BUILD_COST * entries[name].rows + after_keys.get(name, 0.0), build, name, statement)
        if not builds:
            indexes_done(name)

    def indexes_done(name: str) -> None:
        if finishing.keys.get(name):
            make_ready(after_keys.get(name, 0.0), attach_keys, name, exclusive=frozenset({name}))
        else:
            keys_done(name)

    def keys_done(name: str) -> None:
        keyed.add(name)
        for constraint in [c for c in waiting if c.waits_for <= keyed]:
            waiting.remove(constraint)
            own, others = frozenset({constraint.table}), constraint.waits_for - {constraint.table}
            make_ready(validation(constraint), constrain, constraint, exclusive=own, shared=others)

    try:
        with shadow.connection.cursor() as cursor:
            for entry in split:  # data migrations may have created rows: the archive's replace them
                cursor.execute(f"TRUNCATE {qualified(entry)}")
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ops-restore") as pool:
            pending: dict[Future[Any], _Task] = {}
            exclusive_held: set[str] = set()
            shared_held: dict[str, int] = {}

            def start_ready() -> None:
                blocked: list[_Task] = []
                while ready and len(pending) < jobs:
                    task = heapq.heappop(ready)
                    if task.exclusive & (exclusive_held | shared_held.keys()) or task.shared & exclusive_held:
                        blocked.append(task)
                        continue
                    exclusive_held.update(task.exclusive)
                    for name in task.shared:
                        shared_held[name] = shared_held.get(name, 0) + 1
                    pending[pool.submit(task.run, *task.arguments)] = task
                for task in blocked:
                    heapq.heappush(ready, task)

            def release(task: _Task) -> None:
                exclusive_held.difference_update(task.exclusive)
                for name in task.shared:
                    shared_held[name] -= 1
                    if not shared_held[name]:
                        del shared_held[name]

            batches: list[list[TableEntry]] = [[] for _ in range(max(1, jobs))]
            for entry in order:
                if entry.name in batched:  # dealt largest first to the batch with the fewest rows
                    min(batches, key=lambda batch: sum(e.rows for e in batch)).append(entry)
                elif entry in split:
                    splitter = _RowSplitter(iter(table_at(fd, offsets[entry.name], entry)), jobs)
                    splitters[entry.name] = splitter
                    streams_left[entry.name] = jobs
                    for _ in range(jobs):
                        make_ready(entry.rows + after_rows(entry.name), copy, entry, splitter)
                else:
                    make_ready(entry.rows + after_rows(entry.name), copy, entry)
            for batch in batches:
                if batch:
                    path = sum(e.rows for e in batch) + max(after_rows(e.name) for e in batch)
                    make_ready(path, copy_batch, batch)
            if small and not small_left:
                small_done()
            start_ready()
            loaded = 0
            while pending:
                # FIRST_COMPLETED: a task's end hands its connection the next ready task at once
                # (FIRST_EXCEPTION waits for every task in flight when none fails).
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    release(pending.pop(future))
                if any(future.exception() is not None for future in done):
                    for splitter in splitters.values():
                        splitter.stop()
                    for other in pending:
                        other.cancel()
                    wait(pending)
                    finished = [*done, *pending]
                    errors = [f.exception() for f in finished if not f.cancelled() and f.exception()]
                    # The cause, not the streams it stopped.
                    raise next((e for e in errors if not isinstance(e, _Aborted)), errors[0])  # type: ignore[misc]
                for event, name, rows in (item for future in done for item in future.result()):
                    if event == "built":
                        builds_left[name] -= 1
                        if not builds_left[name]:
                            indexes_done(name)
                        continue
                    if event == "keyed":
                        keys_done(name)
                        continue
                    rows_in[name] = rows_in.get(name, 0) + rows
                    if name in streams_left:
                        streams_left[name] -= 1
                        if streams_left[name]:
                            continue
                        splitters[name].join()
                        pg_load.check_rows(entries[name], rows_in[name])
                    loaded += 1
                    progress(TableProgress("load", name, loaded, len(manifest.tables), entries[name].rows))
                    rows_done(name)
                start_ready()
    finally:
        for splitter in splitters.values():
            splitter.stop()
        for connection in opened:
            with contextlib.suppress(Exception):
                connection.close()
    if waiting:  # none can be left: every table of the schema is keyed by now
        raise AssertionError(f"constraints never started: {waiting}")
    with shadow.connection.cursor() as cursor:
        for statement in deferred.attachments:
            cursor.execute(statement)
    return manifest.rows


def shadow_tables(connection: BaseDatabaseWrapper, shadow: Shadow) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace AND relkind IN ('r', 'p')",
            [shadow.schema],
        )
        return {str(row[0]) for row in cursor.fetchall()}


def drop_replaced_objects(connection: BaseDatabaseWrapper, shadow: Shadow) -> None:
    """Drop the live views, functions and free sequences that ``shadow`` holds again (same names)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT live.relkind::text, quote_ident(live.relname) FROM pg_class live "
            "JOIN pg_class new ON new.relname = live.relname AND new.relnamespace = %s::regnamespace "
            "WHERE live.relnamespace = current_schema()::regnamespace AND live.relkind IN ('v', 'S') "
            "AND new.relkind IN ('v', 'S') AND NOT EXISTS (SELECT 1 FROM pg_depend d "
            "WHERE d.classid = 'pg_class'::regclass AND d.objid = live.oid AND d.deptype IN ('a', 'i', 'e'))",
            [shadow.schema],
        )
        for kind, name in cursor.fetchall():
            cursor.execute(f"DROP {'VIEW' if kind == 'v' else 'SEQUENCE'} IF EXISTS {name} CASCADE")
        cursor.execute(
            "SELECT CASE live.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, "
            "live.oid::regprocedure::text FROM pg_proc live JOIN pg_proc new ON new.proname = live.proname "
            "AND new.pronamespace = %s::regnamespace "
            "AND pg_get_function_identity_arguments(new.oid) = pg_get_function_identity_arguments(live.oid) "
            "WHERE live.pronamespace = current_schema()::regnamespace "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass "
            "AND d.objid = live.oid AND d.deptype = 'e')",
            [shadow.schema],
        )
        for kind, signature in cursor.fetchall():
            cursor.execute(f"DROP {kind} IF EXISTS {signature} CASCADE")


def swap_in(connection: BaseDatabaseWrapper, shadow: Shadow) -> None:
    """In the caller's transaction, after the live tables were dropped: move the new ones in."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT quote_ident(relname) FROM pg_class WHERE relnamespace = %s::regnamespace "
            "AND relkind IN ('r', 'p') ORDER BY relname",
            [shadow.schema],
        )
        names = [str(row[0]) for row in cursor.fetchall()]
        cursor.execute("SELECT quote_ident(current_schema())")
        row = cursor.fetchone()
        assert row is not None
        target = str(row[0])
        # Extensions the migrations installed (hstore on a new database): their types first.
        cursor.execute(
            "SELECT quote_ident(extname) FROM pg_extension WHERE extnamespace = %s::regnamespace",
            [shadow.schema],
        )
        for (extension,) in cursor.fetchall():
            cursor.execute(f"ALTER EXTENSION {extension} SET SCHEMA {target}")
        for name in names:
            cursor.execute(f"ALTER TABLE {shadow.schema}.{name} SET SCHEMA {target}")
        # A rebuilt recorded schema (build_recorded) also holds views, functions and sequences no
        # table owns; migrations leave none there (``_FOREIGN_OBJECTS``), so this moves nothing then.
        cursor.execute(
            "SELECT c.relkind::text, quote_ident(c.relname) FROM pg_class c "
            "WHERE c.relnamespace = %s::regnamespace AND (c.relkind = 'v' OR (c.relkind = 'S' "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
            "AND d.objid = c.oid AND d.deptype IN ('a', 'i')))) ORDER BY c.oid",
            [shadow.schema],
        )
        for kind, name in cursor.fetchall():
            what = "VIEW" if kind == "v" else "SEQUENCE"
            cursor.execute(f"ALTER {what} {shadow.schema}.{name} SET SCHEMA {target}")
        cursor.execute(
            "SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, p.oid::regprocedure::text "
            "FROM pg_proc p WHERE p.pronamespace = %s::regnamespace "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass "
            "AND d.objid = p.oid AND d.deptype = 'e') ORDER BY p.oid",
            [shadow.schema],
        )
        for kind, signature in cursor.fetchall():
            cursor.execute(f"ALTER {kind} {signature} SET SCHEMA {target}")
        cursor.execute(f"DROP SCHEMA {shadow.schema} RESTRICT")
