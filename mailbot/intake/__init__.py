"""Mail that comes in: a pass over a mailbox, one message stored, classified, decided and
applied, what a citizen's message does, and quarantine."""
