"""Media references: the value parser, repair at rest, remote existence, media in backups.

Owns the one parser of stored media values (``refs``, shared with the site's read-time URL
helper), ``normalize_media_urls``'s repair (``repair``), its undo logs (``undo_logs``) and the
command's one call with everything it prints (``normalize``), the
rate-limited existence checks against Cloudinary (``remote``), and the media stream of a backup
(``backup``).

Imports from ops: ``ops.repository``, ``ops.engines``, ``ops.archive``, ``ops.conf``,
``ops.errors``, ``ops.progress``. Never the health wing nor the backup/restore orchestration.
"""
