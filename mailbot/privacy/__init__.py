"""Personal information: the retention schedule, erasure, legal holds and the access-right
export."""
