"""The archive format: what one backup stream is, independent of where it is stored.

Owns the framed, checksummed, zstd-compressed stream (``format``), PostgreSQL COPY text encoding and
decoding (``copy_text``), and writing files atomically without clobbering (``files``).

Imports from ops: only ``ops.conf`` and ``ops.errors``. Everything else builds on this layer.
"""
