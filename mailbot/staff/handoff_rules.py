"""Whether a merge or a referral named in a staff reply may go, before anything is written
(pure): the ticket kept must be another ticket of the same requester, neither referred; a
referral goes outside the ministry, with a note, and not for a ticket under legal hold or
already closed as merged or referred. What each carries is checked when it is built
(mailbot/tickets/referral.py)."""

from __future__ import annotations

from mailbot.db.ticket_rows import TicketRow
from mailbot.settings import Settings
from mailbot.states import ClosedReason, TicketStatus


def merge_problem(duplicate: TicketRow, kept: TicketRow | None, ref: str) -> tuple[str, str] | None:
    """Why `duplicate` cannot be merged into `kept` (the ticket `ref` names, after its own
    merges): (code, argument), or None. The sender's queues are checked by the caller."""
    if kept is None:
        return ("no_such_ticket", ref)
    if kept.id == duplicate.id:
        return ("merge_same_ticket", ref)
    if duplicate.closed_reason == ClosedReason.MERGED:
        return ("ticket_closed_as", duplicate.closed_reason)
    if kept.requester.lower() != duplicate.requester.lower():
        return ("merge_other_requester", kept.ref)
    for side in (kept, duplicate):
        if side.closed_reason == ClosedReason.REFERRED:
            return ("merge_referred", side.ref)
    return None


def own_domains(settings: Settings) -> frozenset[str]:
    """The ministry's domains: its staff domains, its Message-ID domain and those of its
    mailboxes."""
    domains = {d.strip().lower().rstrip(".") for d in settings.organisation.staff_domains}
    domains.add(settings.organisation.message_id_domain.strip().lower().rstrip("."))
    domains.update(address.rpartition("@")[2] for address in settings.own_addresses)
    return frozenset(domain for domain in domains if domain)


def is_inside(domain: str, domains: frozenset[str]) -> bool:
    """`domain` is one of `domains` or a subdomain of one (label by label: a lookalike such as
    "mri.gouv.qc.ca.example.net" is outside)."""
    domain = domain.strip().lower().rstrip(".")
    return any(domain == own or domain.endswith("." + own) for own in domains)


def is_own_address(settings: Settings, address: str) -> bool:
    """An address of the ministry's own: a mailbox of mailbot's, staff, or an address in one
    of the ministry's domains or their subdomains."""
    address = address.strip().lower()
    return (
        address in settings.own_addresses
        or settings.is_staff(address)
        or is_inside(address.rpartition("@")[2], own_domains(settings))
    )


def referral_problem(
    settings: Settings, ticket: TicketRow, address: str, note: str
) -> tuple[str, str] | None:
    """Why `ticket` cannot be referred to `address` with `note`: (code, argument), or None.
    (What the referral would carry is checked when it is built: `refer`.)"""
    if is_own_address(settings, address):
        return ("refer_own_domain", address)
    # Closed as merged or referred, and not reopened since by the citizen's follow-up.
    if ticket.closed_reason is not None and ticket.status == TicketStatus.CLOSED:
        return ("ticket_closed_as", ticket.closed_reason)
    if ticket.legal_hold_at is not None:
        return ("refer_legal_hold", ticket.ref)
    if not note.strip():
        return ("refer_needs_note", "")
    return None
