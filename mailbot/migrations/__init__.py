"""The Alembic migrations: they own the schema; `store.py` runs them at start-up."""
