"""The Alembic migrations: they own the schema; `mailbot/db/store.py` runs them at start-up."""
