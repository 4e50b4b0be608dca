"""The toolkit's settings: one ``OPS = {...}`` dict in the project settings, defaults here.

Read at call time (never cached at import) so ``override_settings(OPS=...)`` works in tests.
"""

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {}


def ops_setting(name: str) -> Any:
    """Return the project's value for ``OPS[name]``, or the toolkit's default."""
    user_settings: dict[str, Any] = getattr(settings, "OPS", {}) or {}
    if name in user_settings:
        return user_settings[name]
    try:
        return DEFAULTS[name]
    except KeyError:
        raise KeyError(f"Unknown OPS setting {name!r}") from None
