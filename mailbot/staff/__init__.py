"""Staff at work from their mail client: who may act, the organisation's stamps, the new text
of a reply, its commands parsed and applied, and the reply relayed."""
