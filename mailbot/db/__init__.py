"""The database rooms: every SQL statement mailbot runs lives in this package (`store.py` the
engine and migrations, `models.py` the tables, one module per table or question)."""
