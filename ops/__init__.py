"""ops: a reusable data-safety toolkit for Django projects (backup, restore, media repair, health)."""

__version__ = "0.9.0"
