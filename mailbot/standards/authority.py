"""Who may act on a ticket by email (pure): the one rule behind every staff reply and command.

A person acts on a ticket (a reply relayed to the citizen, any command: close, hold, assign,
category, note, English, dates, legal holds, the confirmation of a held reply) only when they
work on the ticket's queue as it stands at that moment: its staff or its supervisors. Being
in the ministry's domain is not enough, nor is holding a ticket token (any acknowledgement
carries one, and a citizen can forward it). A category change that moves the ticket to
another queue needs the sender to work on the current queue; afterwards only the receiving
queue's people act on it. The same rule says who may be given a ticket (`assigner`): a person
who may act on it.

  may_act(sender, queue, settings) -> Permission      the rule
  queue_of(settings, ticket) -> MailboxSettings      the ticket's current queue
  may_act_on(settings, ticket, sender) -> Permission  the rule on the ticket's current queue

The permission's `reason` is a code that `templates/_refusal.j2` words for the sender.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mailbot.settings import MailboxSettings, Settings

# Reason codes (templates/_refusal.j2 words them).
NOT_ON_QUEUE = "not_on_queue"  # the sender is on neither the staff nor the supervisors list
OWN_MAILBOX = "own_mailbox_sender"  # one of mailbot's own mailboxes: never a person


class TicketPlace(Protocol):
    """What places a ticket in a queue (a `TicketRow` has both)."""

    @property
    def category(self) -> str: ...

    @property
    def mailbox(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Permission:
    """Whether `sender` may act on a ticket of `queue`, and why not (a reason code)."""

    allowed: bool
    sender: str  # lower-case
    queue: str  # the queue's name
    reason: str = ""  # "" when allowed; NOT_ON_QUEUE | OWN_MAILBOX otherwise
    supervisor: bool = False  # the sender is one of the queue's supervisors


def _members(addresses: tuple[str, ...]) -> frozenset[str]:
    return frozenset(address.strip().lower() for address in addresses)


def may_act(sender: str, queue: MailboxSettings, settings: Settings) -> Permission:
    """Whether `sender` may act on a ticket whose current queue is `queue`."""
    address = sender.strip().lower()
    if address in settings.own_addresses:
        return Permission(False, address, queue.name, OWN_MAILBOX)
    supervisor = address in _members(queue.supervisors)
    if address in queue.workers:
        return Permission(True, address, queue.name, supervisor=supervisor)
    return Permission(False, address, queue.name, NOT_ON_QUEUE)


def queue_of(settings: Settings, ticket: TicketPlace) -> MailboxSettings:
    """The queue that works `ticket` now (its category's mailbox, else where it arrived)."""
    return settings.queue_for(ticket.category, ticket.mailbox)


def may_act_on(settings: Settings, ticket: TicketPlace, sender: str) -> Permission:
    """`may_act` on the ticket's current queue."""
    return may_act(sender, queue_of(settings, ticket), settings)
