"""The database rooms: every SQL statement mailbot runs lives in this package (and store.py,
models.py)."""
