"""Nothing lost even when the database is: backup, restore, the mail store as the journal,
and the rebuild that applies the erasure ledger (mailbot/privacy/ledger.py) again."""
