"""Build a backup's database in a restore's private schema, as a restore does, then drop it.

Usage: build_only.py ARCHIVE. Nothing is swapped in: the live database must be exactly as it was
(the suite compares its tables and sequences before and after). Prints the rows built.
"""

import json
import sys

import _setup  # noqa: F401

from ops.engines import pg_parallel
from ops.progress import no_progress
from ops.restore import open_archive

with open_archive("default", sys.argv[1]) as archive, pg_parallel.shadow_schema("default") as shadow:
    rows = pg_parallel.build(shadow, "default", archive.file, archive.manifest, 2, no_progress)
print(json.dumps({"rows": rows}))
