"""The compliance report (values, queries, rendering, charts), the views people read, and the
reminders, escalations and digests queued for staff at each pass."""
