"""PostgreSQL's COPY text format, written and read from Python.

Every archive stores table data in this one encoding, whatever the engine: PostgreSQL produces it
itself (``COPY ... TO STDOUT``) and SQLite rows are encoded here, so an archive has one format and
a later cross-engine restore only converts values, never the framing.

The format (https://www.postgresql.org/docs/current/sql-copy.html, "Text Format"): one line per
row, columns separated by a tab, ``\\N`` for NULL, and backslash escapes for backslash, newline,
carriage return and tab inside values. Binary values are written the way PostgreSQL writes bytea,
``\\x`` and hex digits (so ``\\\\x...`` once escaped).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_UNESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)", re.DOTALL)


def encode_value(value: Any) -> str:
    """One column value in COPY text form (without the column separator)."""
    if value is None:
        return NULL
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\\\x" + bytes(value).hex()
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        # repr() is the shortest string that reads back as the same double.
        return repr(value)
    return str(value)


def encode_rows(rows: Iterable[Sequence[Any]]) -> bytes:
    """Rows in COPY text form, each ending with a newline, UTF-8 encoded."""
    return "".join("\t".join(map(encode_value, row)) + "\n" for row in rows).encode()


def _unescape_match(match: re.Match[str]) -> str:
    code = match.group(1)
    if code in _UNESCAPES:
        return _UNESCAPES[code]
    if code[0] == "x" and len(code) > 1:
        return chr(int(code[1:], 16))
    if code.isdigit() and code[0] in "01234567":
        return chr(int(code, 8) & 0xFF)
    return code


def decode_field(field: str, *, binary: bool = False) -> str | bytes | None:
    """One column of a COPY text line back to its value (bytes for a bytea-style column)."""
    if field == NULL:
        return None
    text = _ESCAPE.sub(_unescape_match, field) if "\\" in field else field
    if binary:
        return bytes.fromhex(text[2:]) if text.startswith("\\x") else text.encode("latin-1")
    return text


def decode_lines(chunks: Iterable[bytes], binary_columns: Sequence[bool]) -> Iterator[tuple[Any, ...]]:
    """Rows from a stream of COPY text (chunks may split lines anywhere)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield _decode_line(line.decode(), binary_columns)
    if pending:
        yield _decode_line(pending.decode(), binary_columns)


def _decode_line(line: str, binary_columns: Sequence[bool]) -> tuple[Any, ...]:
    fields = line.split("\t")
    if len(fields) != len(binary_columns):
        raise ValueError(f"a row has {len(fields)} columns, {len(binary_columns)} expected")
    return tuple(
        decode_field(field, binary=binary) for field, binary in zip(fields, binary_columns, strict=True)
    )
