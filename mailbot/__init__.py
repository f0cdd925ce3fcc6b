"""mailbot: an email-driven ticketing daemon that keeps a public body's service standards."""

__version__ = "0.1.0"
