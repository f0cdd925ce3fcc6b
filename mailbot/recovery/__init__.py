"""Nothing lost even when the database is: backup, restore, the mail store as the journal,
and the erasure ledger that keeps what was erased erased."""
