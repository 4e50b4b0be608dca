"""Health: the checks a cron job or a load balancer asks, /healthz, and database size.

Owns the check framework (``runner``) and the built-in checks (``checks``), the liveness probe
(``liveness``) with its view, URLconf and middleware (``views``, ``urls``, ``middleware``), and the
database size report with its growth projection (``db_size``).

Imports from ops: ``ops.repository``, ``ops.engines``, ``ops.archive``, ``ops.conf``,
``ops.errors``. Never the media wing nor the backup/restore orchestration.
"""
