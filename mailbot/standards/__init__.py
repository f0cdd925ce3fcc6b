"""The published service standards: business days, deadlines and holds, whether a target
is met, and the reminders, escalations and digests that keep them."""
