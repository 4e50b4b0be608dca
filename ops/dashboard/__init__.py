"""The data-safety page in the Django admin (/admin/data-safety/): health, backups, size, media.

Owns the page's data (``data``: each section gathered through the library functions the commands
use, with the same numbers), its server-rendered SVG charts (``charts``), the view and URLconf
(``views``, ``urls``). It only reads: no button on the page changes data, and nothing downloads a
backup.

Imports from ops: anything below it (health, media, repository, engines, archive, and the base
modules). It orchestrates like backup/restore do; nothing in ops imports it.
"""
