"""ops: a reusable data-safety toolkit for Django projects (backup, restore, media repair, health)."""
