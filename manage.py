#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kidoo_preschool.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 -- loads the settings module
    except ImproperlyConfigured as error:
        # Settings read the environment (DATABASE_URL, SECRET_KEY): a wrong value there is one
        # line naming the variable and exit 2, like any command's misconfiguration, not a
        # traceback followed by "Unknown command".
        if "--traceback" in sys.argv:
            raise
        sys.stderr.write(f"Error: {error}\n")
        sys.exit(2)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
