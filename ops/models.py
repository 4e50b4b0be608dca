"""The toolkit's own tables (kept few and small: it must fit in any project's database)."""

from __future__ import annotations

from django.db import models


class SizeSample(models.Model):
    """One `db_size --record` measurement: what growth per day and the plan-full date are fitted to."""

    taken_at = models.DateTimeField(db_index=True)
    size_bytes = models.BigIntegerField()
    # {table name: total bytes}; table names and sizes only, never row data.
    tables = models.JSONField(default=dict)

    class Meta:
        db_table = "ops_size_sample"
        ordering = ["taken_at"]

    def __str__(self) -> str:
        return f"{self.taken_at:%Y-%m-%d %H:%M} {self.size_bytes} bytes"


class DataSafety(SizeSample):
    """No rows of its own: the holder of ``ops.view_datasafety``, the permission the data-safety page
    needs, and its entry in the admin index. A proxy, so it has no table for ``dumpdata``, backups or
    migrations to trip over, and a content type of its own for the permission."""

    class Meta:
        proxy = True
        default_permissions = ("view",)
        verbose_name = verbose_name_plural = "data safety"

    def __str__(self) -> str:
        return "data safety"
