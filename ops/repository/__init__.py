"""Where backups live: object stores, the repository of named backups, encryption, retention.

Owns the object stores (``stores``: local folder, Cloudinary, any Django storage), the repository
of checksummed parts and manifests (``backups``), age encryption (``encryption``), the retention
plan and prune (``retention``, ``prune``), listing (``listing``) and verification (``verify``).

Imports from ops: ``ops.archive``, ``ops.conf``, ``ops.errors``. Never the engines, media or
health wings, nor the backup/restore orchestration.
"""
