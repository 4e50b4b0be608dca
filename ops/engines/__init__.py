"""Database engines: reading tables out of PostgreSQL and SQLite, and loading them back.

Owns the model tables a backup covers (``tables``), the PostgreSQL load on one connection
(``pg_load``) and on several into a private schema (``pg_parallel``), the SQLite load
(``sqlite_load``), conversion across engines (``cross_engine``), the migration state a backup
records (``migration_state``) and the lock a restore and other whole-database writers share
(``locks``).

Imports from ops: ``ops.archive``, ``ops.conf``, ``ops.errors``, ``ops.progress``. Never the
repository, media or health wings, nor the backup/restore orchestration.
"""
