"""The compliance report (values, queries, rendering, charts) and the views people read."""
