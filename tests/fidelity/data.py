"""Hostile values for every fidelity model, and a per-table fingerprint to compare databases with."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connections

from tests.fidelity import models as m

HOSTILE_TEXTS = [
    "tab\there",
    "new\nline and CR\r\nLF",
    "back\\slash \\N \\\\N \\t \\x41 \\101",
    "\\N",
    "unicode é ß 日本語 עברית and emoji 😀🇫🇷👩‍👩‍👧",
    "control \x01\x02\x1f\x7f bell \x07",
    "",
    "   leading and trailing spaces   ",
    "quotes ' \" `",
    "ends with backslash \\",
]
BIG_TEXT_BYTES = 10 * 1024 * 1024


def big_text() -> str:
    unit = "".join(HOSTILE_TEXTS) + "\n"
    return (unit * (BIG_TEXT_BYTES // len(unit.encode()) + 1))[: BIG_TEXT_BYTES // 2]


def moments() -> list[dt.datetime]:
    berlin, new_york, kolkata = (
        ZoneInfo("Europe/Berlin"),
        ZoneInfo("America/New_York"),
        ZoneInfo("Asia/Kolkata"),
    )
    return [
        dt.datetime(2024, 10, 27, 2, 30, 0, 123456, tzinfo=berlin),  # DST ends: ambiguous hour
        dt.datetime(2024, 10, 27, 2, 30, 0, 123456, tzinfo=berlin, fold=1),
        dt.datetime(2024, 3, 10, 3, 15, tzinfo=new_york),  # just after DST starts
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1, 1, 1, 12, 0, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(2000, 2, 29, 23, 59, 59, 1, tzinfo=kolkata),
    ]


def populate(alias: str, *, big: bool = True) -> None:
    """Fill the fidelity models of database ``alias`` with awkward values."""
    postgres = connections[alias].vendor == "postgresql"
    tags = [m.Tag.objects.using(alias).create(name=f"tag {i} \t\\N😀") for i in range(3)]
    texts = HOSTILE_TEXTS + ([big_text()] if big else [])
    times = moments()
    for index, text in enumerate(texts):
        row = m.Everything.objects.using(alias).create(
            boolean=index % 2 == 0,
            maybe=[None, True, False][index % 3],
            char=text[:200],
            char_null=None if index % 2 else text[:200],
            text=text,
            slug=f"slug-{index}",
            email=f"a{index}@example.org",
            url=f"https://example.org/{index}?q=a%20b&x=\\",
            ip=["127.0.0.1", "::1", "2001:db8::ff00:42:8329", None][index % 4],
            integer=[0, -(2**31), 2**31 - 1, None][index % 4],
            big=[-(2**63), 2**63 - 1, 0, None][index % 4],
            small=[-32768, 32767, None][index % 3],
            positive=2**31 - 1,
            positive_small=32767,
            positive_big=2**63 - 1,
            floating=[0.1, -0.0, 1e308, 5e-324, 3.141592653589793, None][index % 6],
            decimal=[
                Decimal("12345678901234567890.12345678901234567890"),
                Decimal("-0.00000000000000000001"),
                Decimal("0E-20"),
                None,
            ][index % 4],
            date=[dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29), None][index % 4],
            datetime=times[index % len(times)],
            time=[dt.time(0, 0), dt.time(23, 59, 59, 999999), None][index % 3],
            duration=[dt.timedelta(days=-3, microseconds=1), dt.timedelta(days=10000, seconds=1), None][
                index % 3
            ],
            uuid=uuid.UUID(int=index * 2**100 + index) if index % 3 else None,
            binary=bytes(range(256)) if index % 2 == 0 else (b"" if index % 3 else None),
            json=[
                {"nested": {"list": [1, 2.5, None, True, "é😀\t\\N"], "big": 2**70, "neg": -(2**63)}},
                ["a", {"b": [[]]}],
                "just a string",
                12345678901234567890123,
                None,
            ][index % 5],
            file=f"uploads/{index} file.txt",
            image="" if index % 2 else "images/a.png",
            file_path="/tmp/x",
        )
        row.tags.set(tags[: index % 4])
    nodes = [m.Node.objects.using(alias).create(name=f"n{i}") for i in range(4)]
    # Each points at one created after it, so loading in id order breaks the FK.
    for child, parent in itertools.pairwise(nodes):
        child.parent = parent
        child.save(using=alias)
    for i in range(3):
        author = m.Author.objects.using(alias).create(name=f"author {i}")
        book = m.Book.objects.using(alias).create(title=f"book {i}", author=author)
        author.favourite_book = book
        author.save(using=alias)
    students = [m.Student.objects.using(alias).create(name=f"s{i}") for i in range(3)]
    course = m.Course.objects.using(alias).create(title="maths")
    for i, student in enumerate(students):
        m.Enrollment.objects.using(alias).create(student=student, course=course, grade="AB"[i % 2])
    m.Place.objects.using(alias).create(name="just a place")
    m.Restaurant.objects.using(alias).create(name="pizzeria", serves_pizza=True)
    m.Awkward.objects.using(alias).create(select="sel\t", user_name="User \\N", camel=7, order=tags[0])
    m.Group.objects.using(alias).create(name="group")
    if postgres:
        from django.db.backends.postgresql.psycopg_any import DateRange, DateTimeTZRange, NumericRange

        m.PgOnly.objects.using(alias).create(
            numbers=[1, None, -3],
            words=["a\tb", "\\N", "", "NULL", "é😀", 'quote"', "{brace}", "comma,"],
            grid=[[1, 2], [3, 4]],
            store={"k\t": "v\\N", "null": None, "é": "😀", "": ""},
            ints=NumericRange(1, 10),
            bigs=NumericRange(-(2**62), 2**62, "[]"),
            decimals=NumericRange(Decimal("0.1"), None),
            dates=DateRange(dt.date(2024, 1, 1), dt.date(2024, 2, 1)),
            moments=DateTimeTZRange(times[2], times[0]),
        )
        m.PgOnly.objects.using(alias).create()


def fingerprint(alias: str) -> dict[str, tuple[int, str]]:
    """Per table of the database: row count and a checksum of all its rows (order-independent)."""
    connection = connections[alias]
    result: dict[str, tuple[int, str]] = {}
    with connection.cursor() as cursor:
        tables = sorted(t for t in connection.introspection.table_names(cursor) if t != "django_migrations")
        for table in tables:
            quoted = connection.ops.quote_name(table)
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') "
                    f"FROM {quoted} t"
                )
                count, digest = cursor.fetchone()
            else:
                cursor.execute(f"SELECT * FROM {quoted}")
                rows = sorted(repr(row) for row in cursor.fetchall())
                count, digest = len(rows), str(hash(tuple(rows)))
            result[table] = (int(count), str(digest))
    return result


def sequences_next(alias: str) -> dict[str, Any]:
    """What the next insert into a few fidelity tables gets as id (sequences were reset)."""
    return {
        "everything": m.Everything.objects.using(alias).create().pk,
        "node": m.Node.objects.using(alias).create(name="next").pk,
    }
