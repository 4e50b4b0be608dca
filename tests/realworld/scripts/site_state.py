"""What a restore must give back, printed as JSON: per-table digests, migrations, page HTML, max keys.

Usage: site_state.py sql|orm URL...

``sql``: each table's rows as the server prints them, sorted, then md5 (PostgreSQL: ``t::text``;
SQLite: every column quoted): same engine only. ``orm``: each model's rows as Django reads them
(ordered by key, JSON with sorted keys), comparable across engines.
"""

import hashlib
import json
import sys

import _setup  # noqa: F401
from django.apps import apps
from django.db import connection, router
from django.test import Client


def _fts_shadow_tables(cursor):
    """SQLite FTS5 keeps its index in shadow tables whose pages depend on the insertion history
    (segments merged or not): compared through the virtual table and the search page instead."""
    if connection.vendor != "sqlite":
        return set()
    cursor.execute("SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'")
    suffixes = ("_data", "_idx", "_content", "_docsize", "_config")
    return {name + suffix for (name,) in cursor.fetchall() for suffix in suffixes}


def sql_digests():
    digests = {}
    with connection.cursor() as cursor:
        shadow = _fts_shadow_tables(cursor)
        for table in sorted(connection.introspection.table_names(cursor)):
            if table == "django_migrations" or table in shadow:
                continue
            quoted = connection.ops.quote_name(table)
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
                    f"FROM {quoted} t"
                )
                count, digest = cursor.fetchone()
            else:
                cursor.execute(f"SELECT * FROM {quoted}")
                rows = sorted(repr(row) for row in cursor.fetchall())
                count, digest = len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()
            digests[table] = [count, digest]
    return digests


def orm_digests():
    digests = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if not meta.managed or meta.proxy or not router.allow_migrate_model("default", model):
            continue
        names = [field.attname for field in meta.local_concrete_fields]
        rows = model._base_manager.order_by("pk").values_list(*names)
        text = "\n".join(json.dumps(list(row), sort_keys=True, default=str) for row in rows.iterator())
        digests[meta.db_table] = [rows.count(), hashlib.sha256(text.encode()).hexdigest()]
    return digests


def max_keys():
    keys = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.managed and not meta.proxy and meta.pk.get_internal_type() in ("AutoField", "BigAutoField"):
            keys[meta.label] = model._base_manager.order_by("-pk").values_list("pk", flat=True).first()
    return keys


def sequences():
    """PostgreSQL: every sequence's position (a write that leaked would have moved one)."""
    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences")
        return dict(cursor.fetchall())


def content_types():
    if not apps.is_installed("django.contrib.contenttypes"):
        return []
    from django.contrib.contenttypes.models import ContentType

    return sorted(f"{app}.{model}" for app, model in ContentType.objects.values_list("app_label", "model"))


def pages(urls):
    client = Client()
    rendered = {}
    for url in urls:
        response = client.get(url)
        rendered[url] = [response.status_code, response.content.decode()]
    return rendered


def main():
    mode, urls = sys.argv[1], sys.argv[2:]
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
    migrations = []
    if "django_migrations" in tables:
        with connection.cursor() as cursor:
            cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
            migrations = [f"{app}.{name}" for app, name in cursor.fetchall()]
    # Pages first: rendering creates what a visit creates (image renditions), and the tables must
    # be compared as the site's visitors leave them.
    rendered = pages(urls)
    state = {
        "tables": sql_digests() if mode == "sql" else orm_digests(),
        "migrations": migrations,
        "max_keys": max_keys(),
        "sequences": sequences(),
        "content_types": content_types(),
        "pages": rendered,
    }
    print(json.dumps(state))


main()
