"""Optional dependencies, imported only by the feature that needs them.

Installing ops brings Django, zstandard and pyrage; Cloudinary and the PostgreSQL drivers are
extras (``pip install "django-data-safety[cloudinary]"``). A feature whose package is missing
stops with an error naming the extra, instead of an ImportError from deep inside.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ops.errors import OpsConfigurationError

DISTRIBUTION = "django-data-safety"


def require_extra(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or say which extra ``feature`` needs installed."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top_level = module.partition(".")[0]
        if error.name is not None and error.name.partition(".")[0] != top_level:
            raise  # the package is there but one of its own imports failed: not ours to explain
        raise OpsConfigurationError(
            f"{feature} needs the {top_level!r} package, which is not installed. "
            f'Install it with: pip install "{DISTRIBUTION}[{extra}]".'
        ) from None


def is_installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
