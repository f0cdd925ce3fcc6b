"""Mail that leaves: every message built and queued in one place, the outbox worker, and
what sending leaves for people."""
