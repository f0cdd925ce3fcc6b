"""Personal information: the retention schedule, erasure and the erasure ledger, legal holds
and the access-right export."""
