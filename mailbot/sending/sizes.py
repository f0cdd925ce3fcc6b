"""What the relay can carry: the largest message and file, as the transport last said.

The outbox's SMTP sessions record the relay's EHLO SIZE (RFC 1870) each time they open, in
the database, so the decision to refer a request (mailbot/tickets/referral.py) is made, inside
the inbound message's transaction and with no network at hand, against what the relay
really announced; Graph's upload sessions take files up to 150 MB each (under 3 MB where a
national cloud has no upload sessions: mailbot/transport/graph_limits.py). A relay that changed
its limit since is caught when it refuses the message (552): the referral then fails for good
and its author is told.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from mailbot.db import service_state
from mailbot.settings import Settings
from mailbot.transport.graph_limits import POST_BELOW, UPLOAD_MAX

RELAY_SIZE_KEY = "relay_size"


@dataclass(frozen=True, slots=True)
class SendLimit:
    """The largest message and the largest single file the transport takes (None: no limit
    known), and where the figure comes from (for the sender's explanation)."""

    max_message_bytes: int | None
    max_file_bytes: int | None
    source: str  # "smtp" | "graph"

    def too_large(self, message_bytes: int, file_sizes: list[int]) -> bool:
        over_message = self.max_message_bytes is not None and message_bytes > self.max_message_bytes
        over_file = self.max_file_bytes is not None and any(
            size > self.max_file_bytes for size in file_sizes
        )
        return over_message or over_file


def record_relay_size(connection: Connection, size: int) -> None:
    """The relay announced `size` (0: no fixed limit) on its latest session."""
    service_state.set_meta(connection, RELAY_SIZE_KEY, str(size))


def send_limit(connection: Connection, settings: Settings) -> SendLimit:
    """The limits mail must fit now: Graph's, or the SIZE the relay last announced (none
    known before its first session, or when it announced none)."""
    if settings.graph is not None:
        # Where the deployment has no upload sessions, a file must go in one POST.
        largest = UPLOAD_MAX if settings.graph.deployment.upload_sessions else POST_BELOW - 1
        return SendLimit(None, largest, "graph")
    value = service_state.meta_value(connection, RELAY_SIZE_KEY) or ""
    size = int(value) if value.isdigit() else 0
    return SendLimit(size or None, None, "smtp")
