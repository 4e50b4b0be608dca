"""Which tables make up a project's database, found through Django's app registry.

Every installed model's table (auto-created M2M tables and multi-table-inheritance parents
included) that migrations manage on the given database; never a hard-coded app. ``django_migrations``
is not data: the archive's manifest records the applied migrations instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.apps import apps
from django.db import models, router

from ops.conf import ops_setting
from ops.errors import OpsConfigurationError


@dataclass(frozen=True)
class ModelTable:
    name: str
    model: type[models.Model]

    @property
    def label(self) -> str:
        return self.model._meta.label

    @property
    def holds_user_data(self) -> bool:
        """Rows in tables ``migrate`` fills by itself (content types, permissions) are not user data."""
        not_user_data = {str(label).lower() for label in ops_setting("NOT_USER_DATA_MODELS")}
        meta = self.model._meta
        return meta.label_lower not in not_user_data and f"{meta.app_label}.*" not in not_user_data

    def field_types(self) -> dict[str, str]:
        """Column name -> Django internal type of the field stored in it."""
        return {str(f.column): f.get_internal_type() for f in self.model._meta.local_concrete_fields}


def _matches(model: type[models.Model], selectors: Iterable[str]) -> bool:
    meta = model._meta
    names = {meta.app_label.lower(), meta.label_lower}
    return any(selector.lower() in names for selector in selectors)


def _check_selectors(selectors: Sequence[str], option: str) -> None:
    known = {config.label.lower() for config in apps.get_app_configs()}
    known |= {model._meta.label_lower for model in apps.get_models(include_auto_created=True)}
    unknown = [s for s in selectors if s.lower() not in known]
    if unknown:
        raise OpsConfigurationError(
            f"{option} names no installed app or model: {', '.join(unknown)}. "
            "Use an app label (auth) or app_label.ModelName (auth.User)."
        )


def model_tables(
    database: str, *, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[ModelTable]:
    """The tables to back up, in a stable order (app registry order), each once."""
    _check_selectors(include, "--include")
    _check_selectors(exclude, "--exclude")
    seen: set[str] = set()
    tables = []
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if not meta.managed or meta.proxy or not router.allow_migrate_model(database, model):
            continue
        # An auto-created M2M table belongs with the model that declares the field.
        owner = meta.auto_created if isinstance(meta.auto_created, type) else model
        if include and not (_matches(owner, include) or _matches(model, include)):
            continue
        if exclude and (_matches(owner, exclude) or _matches(model, exclude)):
            continue
        if meta.db_table in seen:
            continue
        seen.add(meta.db_table)
        tables.append(ModelTable(meta.db_table, model))
    return tables
