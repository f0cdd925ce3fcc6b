"""Nothing lost even when the database is: backup, restore and the mail store as the journal."""
