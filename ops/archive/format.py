"""The backup archive format: a self-describing, checksummed stream of per-table COPY text.

Layout (all integers big-endian)::

    header   b"KIDOOARC" + u16 format version + b"\\r\\n\\x1a\\n"   (PNG-style: text-mode
             mangling, a truncated first block or a foreign file is caught at once)
    frames   kind (1 byte) + u32 payload length + payload, in this order per table:
               b"T"  table start: JSON {"table", "columns"}
               b"D"  data: a piece of one zstd frame (content checksum on) holding the table's
                     rows in PostgreSQL COPY text format (ops/archive/copy_text.py), any number of these
               b"E"  table end: JSON {"rows", "bytes", "sha256"} of the table's D payloads
             then once:
               b"M"  the manifest: JSON (format version, created_at UTC, database vendor and
                     version, Django version, applied migrations per app, whether the database
                     held user data, and per table: columns, rows, bytes and SHA-256)
    trailer  b"KIDOOEND" + u64 offset of the M frame + SHA-256 of every byte before the trailer

The manifest comes last so the archive streams (to stdout, or into parts of a repository) with
memory independent of the database's size; a reader verifies it in one sequential pass
(``verify_archive``) and loads it in a second (``iter_tables``). Each table is its own zstd
frame, so a table decompresses on its own.

Layers, outermost first: a repository (ops/repository/backups.py) stores the bytes, optionally
age-encrypted (ops/repository/encryption.py) around this format; this module neither knows nor cares.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import zstandard

from ops.errors import OpsError

MAGIC = b"KIDOOARC"
FORMAT_VERSION = 1
HEADER_TAIL = b"\r\n\x1a\n"
HEADER = MAGIC + struct.pack(">H", FORMAT_VERSION) + HEADER_TAIL
TRAILER_MAGIC = b"KIDOOEND"
TRAILER_SIZE = len(TRAILER_MAGIC) + 8 + 32
MANIFEST_FORMAT = "kidoo-ops-archive"
DATA_ENCODING = "postgresql-copy-text"
_FRAME = struct.Struct(">cI")
# Above any sane manifest or table header; a larger length means a damaged or foreign file.
_MAX_META_FRAME = 64 * 1024 * 1024
_MAX_DATA_FRAME = 16 * 1024 * 1024
_READ_SIZE = 1024 * 1024
# Compressed bytes decompressed per ``TableData.read``: COPY text compresses 20-50 times, so a
# piece is 40-100 kB.
_FEED_SIZE = 2048
# zstd tuning for COPY text (measured on bench/bench_backup_restore.py's data, see bench/README.md):
# a table's rows repeat their values (dates, groups, notes) at distances beyond the 2 MB window of
# the fast levels, and the short matches found inside hex, UUID and digit runs cost more than
# the literals they replace. An 8 MB window and 7-byte minimum matches made the archive 16% smaller
# and compressing it faster. Readers need the window in memory: 8 MB, once per table being read.
_WINDOW_LOG = 23
_FAST_MIN_MATCH = 7
_ZSTD_DFAST = 2


class Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class CorruptArchive(OpsError):
    """The archive is damaged, truncated, foreign or of an unknown format version."""


@dataclass(frozen=True)
class Column:
    name: str
    # Django's internal type of the field stored in it ("BinaryField", ...), None if no field.
    type: str | None = None


@dataclass(frozen=True)
class TableEntry:
    name: str
    columns: tuple[Column, ...]
    rows: int
    bytes: int
    sha256: str
    model: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "columns": [{"name": c.name, "type": c.type} for c in self.columns],
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableEntry:
        return cls(
            name=str(data["name"]),
            model=data.get("model"),
            columns=tuple(Column(str(c["name"]), c.get("type")) for c in data["columns"]),
            rows=int(data["rows"]),
            bytes=int(data["bytes"]),
            sha256=str(data["sha256"]),
        )


@dataclass(frozen=True)
class Manifest:
    created_at: dt.datetime
    vendor: str
    server_version: str
    django_version: str
    migrations: dict[str, list[str]]
    holds_data: bool
    tables: tuple[TableEntry, ...]
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.tables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "version": self.format_version,
            "created_at": self.created_at.astimezone(dt.UTC).isoformat(),
            "database": {"vendor": self.vendor, "version": self.server_version},
            "django_version": self.django_version,
            "migrations": self.migrations,
            "holds_data": self.holds_data,
            "encoding": DATA_ENCODING,
            "compression": "zstd",
            "rows": self.rows,
            "tables": [table.as_dict() for table in self.tables],
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        known = {"format", "version", "created_at", "database", "django_version", "migrations"}
        known |= {"holds_data", "encoding", "compression", "rows", "tables"}
        return cls(
            created_at=dt.datetime.fromisoformat(data["created_at"]),
            vendor=str(data["database"]["vendor"]),
            server_version=str(data["database"]["version"]),
            django_version=str(data["django_version"]),
            migrations={str(app): [str(n) for n in names] for app, names in data["migrations"].items()},
            holds_data=bool(data["holds_data"]),
            tables=tuple(TableEntry.from_dict(t) for t in data["tables"]),
            extra={k: v for k, v in data.items() if k not in known},
            format_version=int(data["version"]),
        )

    def summary(self) -> dict[str, Any]:
        """What a repository's listing shows of this archive: no row data, no personal data."""
        return {
            "vendor": self.vendor,
            "tables": len(self.tables),
            "rows": self.rows,
            "holds_data": self.holds_data,
            "archive_format": self.format_version,
        }


def compression_parameters(level: int, threads: int = 0) -> zstandard.ZstdCompressionParameters:
    """zstd's parameters for ``level``, tuned for COPY text (larger window; longer matches when fast)."""
    base = zstandard.ZstdCompressionParameters.from_level(level)
    tuned: dict[str, int] = {"window_log": max(base.window_log, _WINDOW_LOG)}
    if base.strategy <= _ZSTD_DFAST:
        tuned["min_match"] = max(base.min_match, _FAST_MIN_MATCH)
    return zstandard.ZstdCompressionParameters.from_level(level, write_checksum=1, threads=threads, **tuned)


class _CountingSink:
    """Frames what is written into D frames, hashing and counting it on the way."""

    def __init__(self, writer: ArchiveWriter) -> None:
        self._writer = writer
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        if data:
            self.sha256.update(data)
            self.size += len(data)
            self._writer._frame(b"D", data)
        return len(data)


class TableSection:
    """One table being written: write its COPY text to ``data``, then call ``end(rows)``."""

    def __init__(self, writer: ArchiveWriter, name: str, columns: tuple[Column, ...], model: str | None):
        self.name = name
        self.columns = columns
        self.model = model
        self._sink = _CountingSink(writer)
        # write() of this object is C code: PostgreSQL's COPY hands over one row per call.
        self.data = writer._compressor.stream_writer(
            cast(Any, self._sink), closefd=False, write_size=_READ_SIZE
        )
        self._writer = writer

    def end(self, rows: int) -> TableEntry:
        self.data.flush(zstandard.FLUSH_FRAME)
        entry = TableEntry(
            self.name, self.columns, rows, self._sink.size, self._sink.sha256.hexdigest(), self.model
        )
        self._writer._frame(
            b"E", json.dumps({"rows": rows, "bytes": entry.bytes, "sha256": entry.sha256}).encode()
        )
        self._writer._tables.append(entry)
        return entry


class ArchiveWriter:
    """Writes an archive to ``sink`` (any object with ``write``), streaming, table by table."""

    def __init__(self, sink: Writable, *, level: int = 3, threads: int = 0) -> None:
        self._sink = sink
        self._sha256 = hashlib.sha256()
        self._offset = 0
        self._tables: list[TableEntry] = []
        self._compressor = zstandard.ZstdCompressor(compression_params=compression_parameters(level, threads))
        self._write(HEADER)

    @property
    def tables(self) -> tuple[TableEntry, ...]:
        return tuple(self._tables)

    @property
    def size(self) -> int:
        return self._offset

    def _write(self, data: bytes) -> None:
        self._sha256.update(data)
        self._offset += len(data)
        self._sink.write(data)

    def _frame(self, kind: bytes, payload: bytes) -> None:
        self._write(_FRAME.pack(kind, len(payload)))
        self._write(payload)

    def begin_table(self, name: str, columns: tuple[Column, ...], model: str | None = None) -> TableSection:
        header = {"table": name, "columns": [{"name": c.name, "type": c.type} for c in columns]}
        self._frame(b"T", json.dumps(header).encode())
        return TableSection(self, name, columns, model)

    def finish(self, manifest: Manifest) -> int:
        """Write the manifest and the trailer; returns the archive's size in bytes."""
        if [t.name for t in manifest.tables] != [t.name for t in self._tables]:
            raise ValueError("the manifest must list the tables written, in order")
        manifest_offset = self._offset
        self._frame(b"M", json.dumps(manifest.as_dict(), sort_keys=True).encode())
        digest = self._sha256.digest()
        trailer = TRAILER_MAGIC + struct.pack(">Q", manifest_offset) + digest
        self._sink.write(trailer)
        self._offset += len(trailer)
        return self._offset


class _Frames:
    """Sequential frame reader over a stream, hashing everything it reads."""

    def __init__(self, source: Readable, what: str) -> None:
        self._source = source
        self._what = what
        self.sha256 = hashlib.sha256()
        self.offset = 0

    def read_exact(self, size: int, *, hashed: bool = True) -> bytes:
        chunks = []
        remaining = size
        while remaining:
            chunk = self._source.read(min(remaining, _READ_SIZE * 4))
            if not chunk:
                raise CorruptArchive(
                    f"{self._what} is truncated (it ends after {self.offset + size - remaining} bytes). "
                    "Restore another backup."
                )
            chunks.append(chunk)
            remaining -= len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if hashed:
            self.sha256.update(data)
        self.offset += size
        return data

    def header(self) -> None:
        head = self.read_exact(len(HEADER))
        if not head.startswith(MAGIC):
            raise CorruptArchive(
                f"{self._what} is not a backup archive of this toolkit (it does not start with its "
                "signature). If it is encrypted, configure the key it was encrypted to."
            )
        (version,) = struct.unpack(">H", head[len(MAGIC) : len(MAGIC) + 2])
        if version != FORMAT_VERSION:
            raise CorruptArchive(
                f"{self._what} uses archive format version {version}; this code reads version "
                f"{FORMAT_VERSION}. Restore it with the version of the code that wrote it."
            )
        if head[len(MAGIC) + 2 :] != HEADER_TAIL:
            raise CorruptArchive(f"{self._what} has a damaged header. Restore another backup.")

    def next(self) -> tuple[bytes, bytes]:
        """The next frame's kind and payload; kind b"K" means the trailer was reached."""
        kind = self.read_exact(1, hashed=False)
        if kind == TRAILER_MAGIC[:1]:
            return kind, b""
        self.sha256.update(kind)
        (length,) = struct.unpack(">I", self.read_exact(4))
        limit = _MAX_DATA_FRAME if kind == b"D" else _MAX_META_FRAME
        if kind not in (b"T", b"D", b"E", b"M") or length > limit:
            raise CorruptArchive(f"{self._what} is damaged at byte {self.offset}. Restore another backup.")
        return kind, self.read_exact(length)

    def trailer(self, manifest_offset: int) -> None:
        """Reads the rest of the trailer (its first byte was consumed by ``next``) and checks it."""
        digest = self.sha256.digest()
        rest = self.read_exact(TRAILER_SIZE - 1, hashed=False)
        offset, stored = struct.unpack(">Q", rest[7:15])[0], rest[15:]
        if rest[:7] != TRAILER_MAGIC[1:] or offset != manifest_offset or stored != digest:
            raise CorruptArchive(
                f"{self._what} does not match its checksum: it is damaged. Restore another backup."
            )
        if self._source.read(1):
            raise CorruptArchive(f"{self._what} has data after its end: it is damaged or not one archive.")


def _json(payload: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        raise CorruptArchive(f"{what} is damaged (unreadable metadata). Restore another backup.") from None
    if not isinstance(value, dict):
        raise CorruptArchive(f"{what} is damaged (unreadable metadata). Restore another backup.")
    return value


def verify_archive(source: Readable, *, what: str = "The archive") -> Manifest:
    """Read a whole archive, check its structure and every checksum, and return its manifest.

    Raises CorruptArchive, naming what is wrong, for anything but an intact archive.
    """
    frames = _Frames(source, what)
    frames.header()
    seen: list[TableEntry] = []
    current: tuple[str, Any] | None = None
    manifest_data: dict[str, Any] | None = None
    manifest_offset = -1
    while True:
        offset = frames.offset
        kind, payload = frames.next()
        if kind == b"K":
            break
        if manifest_data is not None:
            raise CorruptArchive(f"{what} is damaged (data after its manifest). Restore another backup.")
        if kind == b"T":
            if current is not None:
                raise CorruptArchive(f"{what} is damaged (a table is not closed). Restore another backup.")
            current = (str(_json(payload, what).get("table")), hashlib.sha256())
            size = 0
        elif kind == b"D":
            if current is None:
                raise CorruptArchive(f"{what} is damaged (data outside a table). Restore another backup.")
            current[1].update(payload)
            size += len(payload)
        elif kind == b"E":
            if current is None:
                raise CorruptArchive(f"{what} is damaged (a table ends twice). Restore another backup.")
            end = _json(payload, what)
            if end.get("bytes") != size or end.get("sha256") != current[1].hexdigest():
                raise CorruptArchive(
                    f"{what} is damaged: the data of table {current[0]} does not match its checksum. "
                    "Restore another backup."
                )
            seen.append(TableEntry(current[0], (), int(end.get("rows", -1)), size, current[1].hexdigest()))
            current = None
        else:
            manifest_data = _json(payload, what)
            manifest_offset = offset
    if manifest_data is None or current is not None:
        raise CorruptArchive(f"{what} is damaged (no manifest). Restore another backup.")
    frames.trailer(manifest_offset)
    try:
        if manifest_data.get("format") != MANIFEST_FORMAT:
            raise ValueError("not a manifest")
        manifest = Manifest.from_dict(manifest_data)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CorruptArchive(f"{what} has a damaged manifest. Restore another backup.") from None
    described = [(t.name, t.rows, t.bytes, t.sha256) for t in manifest.tables]
    if described != [(t.name, t.rows, t.bytes, t.sha256) for t in seen]:
        raise CorruptArchive(
            f"{what} is damaged: its manifest does not describe its tables. Restore another."
        )
    return manifest


class TableData:
    """The decompressed COPY text of one table, read in order; ``read`` returns b"" at its end."""

    def __init__(self, frames: _Frames, entry: TableEntry, what: str) -> None:
        self._frames = frames
        self._entry = entry
        self._what = what
        self._decompressor = zstandard.ZstdDecompressor().decompressobj()
        self._payload = memoryview(b"")
        self._done = False
        self.raw_bytes = 0

    def read(self, size: int = -1) -> bytes:
        # Returns whatever the next piece of a frame decompresses to (COPY takes chunks of any
        # length): fed _FEED_SIZE compressed bytes at a time, so that the pieces are some tens of
        # kilobytes, not the megabyte a whole frame holds. Megabyte blocks went to the OS and back
        # at each frame (glibc: above the trim threshold), a page fault per 4 kB: 180,000 faults
        # and 0.5 s of system time in a 1x bench restore.
        while not self._done:
            if not self._payload:
                kind, payload = self._frames.next()
                if kind == b"E":
                    self._done = True
                    if not self._decompressor.eof:
                        raise CorruptArchive(f"{self._what} is damaged in table {self._entry.name}.")
                    return b""
                if kind != b"D":
                    raise CorruptArchive(f"{self._what} is damaged in table {self._entry.name}.")
                self._payload = memoryview(payload)
            piece, self._payload = self._payload[:_FEED_SIZE], self._payload[_FEED_SIZE:]
            try:
                data: bytes = self._decompressor.decompress(piece)
            except zstandard.ZstdError:
                raise CorruptArchive(f"{self._what} is damaged in table {self._entry.name}.") from None
            if data:
                self.raw_bytes += len(data)
                return data
        return b""

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read():
            yield chunk

    def drain(self) -> None:
        while self.read():
            pass


def iter_tables(
    source: Readable, manifest: Manifest, *, what: str = "The archive"
) -> Iterator[tuple[TableEntry, TableData]]:
    """Each table of a verified archive with a reader of its rows; consume each before the next.

    ``manifest`` may list only some of the archive's tables, in its order: the others are skipped.
    """
    frames = _Frames(source, what)
    frames.header()
    for entry in manifest.tables:
        while True:
            kind, payload = frames.next()
            if kind != b"T":
                raise CorruptArchive(f"{what} changed since it was verified. Restore it again.")
            name = _json(payload, what).get("table")
            if name == entry.name:
                break
            TableData(frames, TableEntry(str(name), (), 0, 0, ""), what).drain()
        data = TableData(frames, entry, what)
        yield entry, data
        data.drain()


class _PositionalReader:
    """Reads a file from ``offset`` on with pread: readers in several threads share one descriptor."""

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._offset = offset

    def read(self, size: int = -1, /) -> bytes:
        data = os.pread(self._fd, size if size >= 0 else _READ_SIZE, self._offset)
        self._offset += len(data)
        return data


def table_offsets(fd: int, manifest: Manifest, *, what: str = "The archive") -> dict[str, int]:
    """Where each table of a verified archive file starts: its frames can then be read at will.

    Reads only the frame headers (and table names), seeking past the data. ``manifest`` may list
    only some of the archive's tables, in its order: the others are passed over.
    """
    offsets: dict[str, int] = {}
    offset = len(HEADER)
    for entry in manifest.tables:
        while True:
            head = os.pread(fd, _FRAME.size, offset)
            if len(head) != _FRAME.size or head[:1] in (b"M", TRAILER_MAGIC[:1]):
                raise CorruptArchive(f"{what} changed since it was verified. Restore it again.")
            kind, length = _FRAME.unpack(head)
            if (
                kind == b"T"
                and _json(os.pread(fd, length, offset + _FRAME.size), what).get("table") == entry.name
            ):
                break
            offset += _FRAME.size + length
        offsets[entry.name] = offset
        offset += _FRAME.size + length
    return offsets


def table_at(fd: int, offset: int, entry: TableEntry, *, what: str = "The archive") -> TableData:
    """The rows of table ``entry``, whose frames start at ``offset`` (``table_offsets``)."""
    frames = _Frames(_PositionalReader(fd, offset), what)
    kind, payload = frames.next()
    if kind != b"T" or _json(payload, what).get("table") != entry.name:
        raise CorruptArchive(f"{what} changed since it was verified. Restore it again.")
    return TableData(frames, entry, what)
