"""ops.archive.format: the format round-trips, and any damage is refused by the verification pass."""

from __future__ import annotations

import datetime as dt
import io
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.archive.copy_text import decode_lines, encode_rows
from ops.archive.format import (
    FORMAT_VERSION,
    HEADER,
    ArchiveWriter,
    Column,
    CorruptArchive,
    Manifest,
    compression_parameters,
    iter_tables,
    verify_archive,
)

ROWS = [
    (1, "tab\there", None, b"\x00\xff" + bytes(range(256))),
    (2, "new\nline \\N back\\slash", "", b""),
    (3, "é 😀", "x" * 5000, None),
]


def make_archive(tables: int = 3) -> bytes:
    sink = io.BytesIO()
    writer = ArchiveWriter(sink)
    for number in range(tables):
        section = writer.begin_table(
            f"table {number}", (Column("id"), Column("a"), Column("b"), Column("c", "BinaryField"))
        )
        section.data.write(encode_rows(ROWS * (number + 1)))
        section.end(len(ROWS) * (number + 1))
    writer.finish(
        Manifest(
            created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            vendor="postgresql",
            server_version="15.4",
            django_version="5.2",
            migrations={"app": ["0001_initial"]},
            holds_data=True,
            tables=writer.tables,
        )
    )
    return sink.getvalue()


ARCHIVE = make_archive()


def test_archive__round_trip_returns_manifest_and_rows() -> None:
    manifest = verify_archive(io.BytesIO(ARCHIVE))

    assert manifest.format_version == FORMAT_VERSION
    assert [t.name for t in manifest.tables] == ["table 0", "table 1", "table 2"]
    assert [t.rows for t in manifest.tables] == [3, 6, 9]
    assert manifest.migrations == {"app": ["0001_initial"]}
    loaded = {
        entry.name: list(decode_lines(data, [c.type == "BinaryField" for c in entry.columns]))
        for entry, data in iter_tables(io.BytesIO(ARCHIVE), manifest)
    }
    expected = [(str(a), b, c, bytes(d) if d is not None else None) for a, b, c, d in ROWS]
    assert loaded["table 0"] == expected
    assert loaded["table 2"] == expected * 3


def test_archive__empty_database_has_no_tables_and_still_verifies() -> None:
    assert verify_archive(io.BytesIO(make_archive(tables=0))).tables == ()


def test_archive__manifest_is_at_the_end_so_the_writer_streams() -> None:
    assert ARCHIVE.startswith(HEADER)
    (offset,) = struct.unpack(">Q", ARCHIVE[-40:-32])
    assert ARCHIVE[offset : offset + 1] == b"M"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(min_value=0, max_value=len(ARCHIVE) - 1), bit=st.integers(0, 7))
def test_archive__any_flipped_bit_is_refused(position: int, bit: int) -> None:
    damaged = bytearray(ARCHIVE)
    damaged[position] ^= 1 << bit
    with pytest.raises(CorruptArchive):
        verify_archive(io.BytesIO(bytes(damaged)))


@settings(max_examples=100, deadline=None)
@given(length=st.integers(min_value=0, max_value=len(ARCHIVE) - 1))
def test_archive__any_truncation_is_refused(length: int) -> None:
    with pytest.raises(CorruptArchive):
        verify_archive(io.BytesIO(ARCHIVE[:length]))


def test_archive__trailing_garbage_is_refused() -> None:
    with pytest.raises(CorruptArchive, match="data after its end"):
        verify_archive(io.BytesIO(ARCHIVE + b"x"))


def test_archive__foreign_file_is_refused_with_a_clear_message() -> None:
    with pytest.raises(CorruptArchive, match="not a backup archive of this toolkit"):
        verify_archive(io.BytesIO(b"PGDMP" + b"\0" * 100))


def test_archive__newer_format_version_is_refused_naming_it() -> None:
    future = HEADER[:8] + struct.pack(">H", FORMAT_VERSION + 1) + ARCHIVE[10:]
    with pytest.raises(CorruptArchive, match=f"format version {FORMAT_VERSION + 1}"):
        verify_archive(io.BytesIO(future))


def test_copy_text__python_encoding_matches_postgresql_escapes() -> None:
    assert encode_rows([(None, "a\tb\\c\nd\re", True, 1.5, b"\x00\x01")]) == (
        b"\\N\ta\\tb\\\\c\\nd\\re\tt\t1.5\t\\\\x0001\n"
    )


@pytest.mark.parametrize("level", [1, 3, 9, 19])
def test_archive__round_trips_at_every_compression_level(level: int) -> None:
    sink = io.BytesIO()
    writer = ArchiveWriter(sink, level=level)
    section = writer.begin_table("t", (Column("id"), Column("a"), Column("b"), Column("c", "BinaryField")))
    section.data.write(encode_rows(ROWS * 50))
    section.end(len(ROWS) * 50)
    writer.finish(Manifest(dt.datetime.now(dt.UTC), "postgresql", "15", "5.2", {}, True, writer.tables))
    sink.seek(0)
    manifest = verify_archive(sink)
    sink.seek(0)
    loaded = [
        list(decode_lines(data, [False, False, False, True])) for _, data in iter_tables(sink, manifest)
    ]
    expected = [(str(a), b, c, bytes(d) if d is not None else None) for a, b, c, d in ROWS]
    assert loaded == [expected * 50]


def test_compression_parameters__window_and_matches_tuned_for_copy_text() -> None:
    fast = compression_parameters(3)
    assert fast.window_log == 23  # 8 MB: what a reader holds in memory per table
    assert fast.min_match == 7
    # Slow levels keep their own (short) minimum match; their window is never made smaller.
    assert compression_parameters(19).min_match < 7
    assert compression_parameters(19).window_log >= 23
