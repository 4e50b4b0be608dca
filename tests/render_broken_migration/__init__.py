"""A test-only app whose one migration fails: the replay's "deploy whose migration fails" (issue 8).

Installed only by tests/render_settings.py when KIDOO_REPLAY_BROKEN_MIGRATION is set, so the
pre-deploy command of that one deploy meets a migration that raises, as a bad release would.
"""
