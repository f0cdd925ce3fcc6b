"""Staff work from their mail client: notices, relayed replies, commands, follow-ups, holds.

Everything here runs inside the transaction of the inbound message that caused it, on the
caller's connection: the ticket change, the event log and the outgoing rows commit together.

A staff message reaches a citizen only when all of these hold (RELIABILITY.md, "Staff identity
and threading"): the sender is on the staff list, the topmost Authentication-Results header of
our own receiving server says DMARC (or aligned DKIM) passed, and the message answers one of
our own messages carrying the ticket's signed token. Anything short of that is held, the
queue's staff are told, and nothing is relayed.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot import records, tokens
from mailbot.business_calendar import BusinessCalendar, Hold
from mailbot.exchange import check_exchange_origin
from mailbot.logformat import log_fields
from mailbot.parse import InboundMail, flatten, parse_message
from mailbot.render import (
    INTERNAL_MARKER,
    Envelope,
    Rendered,
    Renderer,
    compose,
    compose_staff_mail,
)
from mailbot.settings import MailboxSettings, Settings
from mailbot.staff import (
    Command,
    CommandName,
    StaffMessage,
    check_authentication,
    extract_new_text,
    parse_commands,
)

log = logging.getLogger(__name__)

MAX_RELAYED_ATTACHMENT_BYTES = 15 * 1024 * 1024
CONFIRM_WORDS = frozenset({"confirmer", "confirm", "#confirmer", "#confirm"})

CATEGORY_LABELS = {
    "information": "demande de renseignements",
    "complaint": "plainte (confidentielle)",
    "internship": "candidature de stage",
    "cooperation": "projet de coopération",
}


def queue_of(settings: Settings, ticket: records.TicketRow) -> MailboxSettings:
    """The queue that works a ticket (see `Settings.queue_for`); a mailbox no longer
    configured is a KeyError naming it."""
    return settings.queue_for(ticket.category, ticket.mailbox) or settings.mailbox(ticket.mailbox)


def is_staff_address(settings: Settings, address: str) -> bool:
    """On a queue's staff or supervisor list, or at one of the organisation's staff domains."""
    address = address.lower()
    listed = {a.lower() for m in settings.mailboxes for a in (*m.staff, *m.supervisors)}
    domain = address.rpartition("@")[2]
    return address in listed or domain in {d.lower() for d in settings.organisation.staff_domains}


def staff_recipients(
    settings: Settings, ticket: records.TicketRow, assignee: str | None
) -> tuple[str, ...]:
    if assignee:
        return (assignee,)
    return queue_of(settings, ticket).staff


@dataclass(frozen=True, slots=True)
class Context:
    """What the workflow needs besides the connection (built by the pipeline)."""

    settings: Settings
    renderer: Renderer
    signing_key: bytes
    calendar: BusinessCalendar


def _render(context: Context, name: str, values: dict[str, object]) -> Rendered:
    return context.renderer.render(name, values, with_html=False)


def _message_id(context: Context, ref: str | None) -> str:
    domain = context.settings.organisation.message_id_domain
    if ref is None:
        return f"<mb-internal.{tokens.new_nonce()}@{domain}>"
    return tokens.make_message_id(context.signing_key, ref, tokens.new_nonce(), domain)


def queue_internal(
    connection: Connection,
    context: Context,
    *,
    template: str,
    values: dict[str, object],
    queue: MailboxSettings,
    recipients: Sequence[str],
    ticket_id: int | None,
    ref: str | None,
    purpose: str,
    dedupe: str,
    now: datetime,
    in_reply_to: str = "",
    attachments_from: bytes | None = None,
    has_attachments: bool = False,
    event: str | None = None,
    inbound_id: int | None = None,
) -> list[int]:
    """Internal mail to staff, from the queue's address, with Reply-To back to the queue.

    With `event`, the ticket's log records it with the recipients.
    """
    values = {
        "queue": queue,
        "org": context.settings.organisation,
        **values,
    }
    rendered = _render(context, template, values)
    queued: list[int] = []
    for recipient in dict.fromkeys(r.lower() for r in recipients):
        message_id = _message_id(context, ref)
        message = compose_staff_mail(
            rendered,
            queue=queue,
            recipient=recipient,
            message_id=message_id,
            now=now,
            purpose=purpose,
            loop_token=context.settings.organisation.message_id_domain,
            in_reply_to=in_reply_to,
        )
        if attachments_from is not None and has_attachments:
            _copy_attachments(attachments_from, message)
        row = records.queue_message(
            connection,
            ticket_id=ticket_id,
            purpose=purpose,
            dedupe_key=f"{dedupe}:{recipient}",
            message_id=message_id,
            envelope_from=context.settings.smtp.bounce_address,
            recipient=recipient,
            raw=message.as_bytes(),
            now=now,
        )
        if row is not None:
            queued.append(row)
    if event is not None and ticket_id is not None:
        records.add_event(
            connection,
            ticket_id,
            now,
            event,
            ", ".join(recipients),
            inbound_id=inbound_id,
            outbox_id=queued[0] if queued else None,
        )
    return queued


def _has_attachment_parts(raw: bytes) -> bool:
    return b"attachment" in raw.lower()


def _copy_attachments(raw: bytes, message: EmailMessage) -> int:
    """Attach the files of the message `raw` to `message`; returns the bytes attached."""
    original = email.message_from_bytes(raw, policy=email.policy.default)
    total = 0
    for part in original.walk():
        if part.is_multipart() or part.get_content_disposition() != "attachment":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if total + len(payload) > MAX_RELAYED_ATTACHMENT_BYTES:
            break
        total += len(payload)
        maintype, _, subtype = part.get_content_type().partition("/")
        filename = flatten(part.get_filename() or "piece-jointe", 200).replace("/", "_")
        message.add_attachment(
            payload, maintype=maintype, subtype=subtype or "octet-stream", filename=filename
        )
    return total


# --- a new ticket ----------------------------------------------------------------------------


def notify_new_ticket(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    mail: InboundMail,
    raw: bytes,
    inbound_id: int,
    now: datetime,
    *,
    recipients: Sequence[str] | None = None,
    reason: str = "",
) -> None:
    """Send the queue's staff (or the assignee) the request itself, with its attachments."""
    queue = queue_of(context.settings, ticket)
    to = (
        tuple(recipients)
        if recipients is not None
        else staff_recipients(context.settings, ticket, None)
    )
    if not to:
        records.add_event(
            connection,
            ticket.id,
            now,
            "notice_skipped",
            f"queue {queue.name} has no staff address configured",
            inbound_id=inbound_id,
        )
        return
    queue_internal(
        connection,
        context,
        template="notice",
        values={
            "ticket": ticket,
            "subject": mail.subject,
            "text": mail.text,
            "attachments": mail.attachments,
            "reason": reason,
            "category_label": CATEGORY_LABELS.get(ticket.category, ticket.category),
        },
        queue=queue,
        recipients=to,
        ticket_id=ticket.id,
        ref=ticket.ref,
        purpose="notice",
        dedupe=f"notice:{ticket.ref}:{inbound_id}",
        now=now,
        attachments_from=raw,
        has_attachments=bool(mail.attachments),
        event="notice_queued",
        inbound_id=inbound_id,
    )


# --- a citizen's follow-up ------------------------------------------------------------------


def handle_follow_up(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    mail: InboundMail,
    raw: bytes,
    inbound_id: int,
    received_at: datetime,
    now: datetime,
) -> None:
    """Record the requester's follow-up: end a hold, reopen, and forward it to staff."""
    hold_ended = end_hold(
        connection, context, ticket, received_at, now, actor=ticket.requester, inbound_id=inbound_id
    )
    reopened = ticket.status in ("answered", "closed")
    if reopened:
        records.set_ticket_fields(connection, ticket.id, now, status="open", closed_at=None)
        records.add_event(
            connection,
            ticket.id,
            now,
            "reopened",
            "follow-up from the requester",
            actor=ticket.requester,
            inbound_id=inbound_id,
        )
    current = records.ticket_by_ref(connection, ticket.ref) or ticket
    assignee = _assignee(connection, ticket.id)
    to = staff_recipients(context.settings, ticket, assignee)
    if not to:
        return
    queue_internal(
        connection,
        context,
        template="forward",
        values={
            "ticket": current,
            "subject": mail.subject,
            "text": mail.text,
            "reopened": reopened,
            "hold_ended": hold_ended,
            "due_date": current.due_date,
        },
        queue=queue_of(context.settings, ticket),
        recipients=to,
        ticket_id=ticket.id,
        ref=ticket.ref,
        purpose="forward",
        dedupe=f"forward:{inbound_id}",
        now=now,
        attachments_from=raw,
        has_attachments=bool(mail.attachments),
        event="follow_up_forwarded",
        inbound_id=inbound_id,
    )


def _assignee(connection: Connection, ticket_id: int) -> str | None:
    value: str | None = connection.execute(
        sa.select(records.TICKET.c.assignee).where(records.TICKET.c.id == ticket_id)
    ).scalar()
    return value


# --- held messages --------------------------------------------------------------------------


def hold_for_review(
    connection: Connection,
    context: Context,
    queue: MailboxSettings,
    ticket: records.TicketRow | None,
    mail: InboundMail,
    inbound_id: int,
    reasons: Sequence[str],
    now: datetime,
) -> None:
    """Keep the message, relay nothing, and tell the queue's staff why (never the sender)."""
    target = queue_of(context.settings, ticket) if ticket is not None else queue
    queue_internal(
        connection,
        context,
        template="held",
        values={
            "ref": ticket.ref if ticket else None,
            "sender": mail.from_address.address if mail.from_address else None,
            "subject": mail.subject,
            "received_at": now.isoformat(timespec="minutes"),
            "inbound_id": inbound_id,
            "reasons": list(reasons),
        },
        queue=target,
        recipients=target.staff,
        ticket_id=ticket.id if ticket else None,
        ref=ticket.ref if ticket else None,
        purpose="held_notice",
        dedupe=f"held:{inbound_id}",
        now=now,
    )
    if ticket is not None:
        records.add_event(
            connection,
            ticket.id,
            now,
            "message_held",
            "; ".join(reasons),
            actor=mail.from_address.address if mail.from_address else "unknown",
            inbound_id=inbound_id,
        )
    log.warning(
        "inbound message held: %s",
        "; ".join(reasons),
        extra=log_fields(
            mailbox=queue.name, inbound=inbound_id, ref=ticket.ref if ticket else None
        ),
    )


# --- a staff message ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaffOutcome:
    state: str  # processed | held
    reason: str
    flags: tuple[str, ...] = ()


def authenticate_staff(
    context: Context, mail: InboundMail, ticket: records.TicketRow | None
) -> list[str]:
    """Every reason this message may not act on a ticket as staff (empty: it may)."""
    reasons: list[str] = []
    if mail.sender is None:
        return ["the sender address does not parse strictly"]
    if mail.from_address is None or mail.from_address.address != mail.sender.address:
        return ["the From header names more than one address"]
    if ticket is None:
        reasons.append("no signed link to a ticket (not a reply to one of our messages)")
    organisation = context.settings.organisation
    verdict = (
        check_exchange_origin(mail.headers, organisation.tenant_id)
        if organisation.staff_authentication == "exchange_online"
        else check_authentication(mail.headers, mail.sender.domain, organisation.authserv_id)
    )
    if not verdict.passed:
        reasons.extend(f"authentication: {reason}" for reason in verdict.reasons)
    if ticket is not None:
        signed = tokens.find_tokens(context.signing_key, mail.thread_ids)
        if not any(token.ticket_ref == ticket.ref for token in signed):
            reasons.append("the signed token does not name this ticket")
    return reasons


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one command of a staff reply cannot apply to the ticket as the commands before it
    left it; the template `_refusal.j2` words it for the sender."""

    line: str
    code: str  # unknown_category | not_staff | own_mailbox | outside_complaints | no_result_clock
    argument: str = ""


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.code)
        self.refusal = refusal


class _NeedsConfirmation(Exception):
    """The commands are valid but the cut is doubtful: nothing applies until `confirmer`."""


def handle_staff_message(
    connection: Connection,
    context: Context,
    mailbox: MailboxSettings,
    ticket: records.TicketRow | None,
    mail: InboundMail,
    raw: bytes,
    inbound_id: int,
    now: datetime,
) -> StaffOutcome:
    reasons = authenticate_staff(context, mail, ticket)
    if reasons or ticket is None or mail.sender is None:
        hold_for_review(connection, context, mailbox, ticket, mail, inbound_id, reasons, now)
        return StaffOutcome("held", "staff message held: " + "; ".join(reasons))
    sender = mail.sender.address
    extracted = extract_new_text(mail.text, internal_markers=(INTERNAL_MARKER,))
    first_line = next(iter(extracted.text.strip().splitlines()), "").strip().lower()
    if first_line in CONFIRM_WORDS:
        return _confirm_held_reply(connection, context, ticket, sender, inbound_id, now)
    parsed = parse_commands(extracted.text)
    if parsed.errors:
        return _reject(
            connection,
            context,
            ticket,
            sender,
            {"errors": [f"{e.line} : {e.message}" for e in parsed.errors], "refusals": []},
            "; ".join(e.message for e in parsed.errors),
            inbound_id,
            now,
            mail.message_id,
        )
    return _act_on_reply(
        connection,
        context,
        ticket,
        parsed,
        certain=extracted.certain,
        cut_by=extracted.cut_by,
        raw=raw,
        sender=sender,
        inbound_id=inbound_id,
        reply_message_id=mail.message_id,
        answer_to=mail.message_id,
        now=now,
    )


def _act_on_reply(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    parsed: StaffMessage,
    *,
    certain: bool,
    cut_by: str,
    raw: bytes,
    sender: str,
    inbound_id: int,
    reply_message_id: str,
    answer_to: str,
    now: datetime,
) -> StaffOutcome:
    """Apply a staff reply: its commands in order, each checked against the ticket as the
    ones before it left it, then its text relayed. All of it or nothing: a refused command,
    a doubtful cut or a relay that cannot be built undoes the rest, and the sender is told."""
    text_for_citizen, hold = _text_for_citizen(parsed)
    try:
        with connection.begin_nested():
            _apply_in_order(connection, context, ticket, parsed.commands, sender, inbound_id, now)
            if text_for_citizen and not certain:
                raise _NeedsConfirmation
            if CommandName.NOTE in {command.name for command in parsed.commands}:
                records.add_event(
                    connection,
                    ticket.id,
                    now,
                    "note",
                    parsed.body,
                    actor=sender,
                    inbound_id=inbound_id,
                )
            if text_for_citizen:
                current = records.ticket_by_id(connection, ticket.id) or ticket
                relay_reply(
                    connection,
                    context,
                    current,
                    text_for_citizen,
                    raw,
                    sender,
                    inbound_id,
                    reply_message_id,
                    now,
                    purpose="hold_request" if hold else "reply",
                )
    except _Refused as refused:
        return _reject(
            connection,
            context,
            ticket,
            sender,
            {"errors": [], "refusals": [refused.refusal]},
            f"{refused.refusal.code}: {refused.refusal.line}",
            inbound_id,
            now,
            answer_to,
        )
    except _NeedsConfirmation:
        return _ask_confirmation(
            connection,
            context,
            ticket,
            sender,
            text_for_citizen,
            cut_by,
            inbound_id,
            now,
            answer_to,
        )
    except Exception as exc:  # the reply cannot be relayed: its author must know, at once
        log.exception("ticket %s: staff reply #%s could not be relayed", ticket.ref, inbound_id)
        _reply_to_staff(
            connection,
            context,
            ticket,
            sender,
            "relay_failed",
            {"error": type(exc).__name__},
            inbound_id,
            now,
            answer_to,
        )
        records.add_event(
            connection,
            ticket.id,
            now,
            "relay_failed",
            f"{type(exc).__name__}: nothing applied, the sender was told",
            actor=sender,
            inbound_id=inbound_id,
        )
        return StaffOutcome("held", f"staff reply could not be relayed ({type(exc).__name__})")
    if not parsed.commands and not text_for_citizen:
        records.add_event(
            connection,
            ticket.id,
            now,
            "staff_message_empty",
            "nothing to relay and no command",
            actor=sender,
            inbound_id=inbound_id,
        )
    return StaffOutcome("processed", "staff message applied")


def _text_for_citizen(parsed: StaffMessage) -> tuple[str, Command | None]:
    """What reaches the citizen: the hold's reason, then the body unless it is a note."""
    names = {command.name for command in parsed.commands}
    hold = next((c for c in parsed.commands if c.name is CommandName.HOLD), None)
    body = "" if CommandName.NOTE in names else parsed.body
    parts = (hold.argument if hold else "", body)
    return "\n\n".join(part for part in parts if part), hold


def _reject(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    sender: str,
    values: dict[str, object],
    detail: str,
    inbound_id: int,
    now: datetime,
    in_reply_to: str,
) -> StaffOutcome:
    """Nothing applied: tell the sender which line and why."""
    _reply_to_staff(
        connection, context, ticket, sender, "command_error", values, inbound_id, now, in_reply_to
    )
    records.add_event(
        connection, ticket.id, now, "command_rejected", detail, actor=sender, inbound_id=inbound_id
    )
    return StaffOutcome("processed", "command error answered to the sender")


def _ask_confirmation(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    sender: str,
    text: str,
    cut_by: str,
    inbound_id: int,
    now: datetime,
    answer_to: str,
) -> StaffOutcome:
    _reply_to_staff(
        connection, context, ticket, sender, "confirm", {"text": text}, inbound_id, now, answer_to
    )
    records.add_event(
        connection,
        ticket.id,
        now,
        "reply_held_for_confirmation",
        f"cut uncertain ({cut_by or 'no quote header found'})",
        actor=sender,
        inbound_id=inbound_id,
    )
    return StaffOutcome(
        "held",
        "reply held: the quoted history could not be cut with "
        "certainty; the sender was asked to confirm",
        flags=("uncertain_cut",),
    )


def _apply_in_order(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    commands: Sequence[Command],
    sender: str,
    inbound_id: int,
    now: datetime,
) -> None:
    """Check and apply each command against the ticket as the previous ones left it; the
    first refusal raises `_Refused` (the caller's savepoint undoes the ones before)."""
    for command in commands:
        current = records.ticket_by_id(connection, ticket.id) or ticket
        refusal = refusal_of(context, current, command)
        if refusal is not None:
            raise _Refused(refusal)
        _apply_command(connection, context, current, command, sender, inbound_id, now)


def refusal_of(context: Context, ticket: records.TicketRow, command: Command) -> Refusal | None:
    """Why `command` cannot apply to `ticket` as it stands, or None."""
    settings = context.settings
    name, argument = command.name, command.argument
    if name is CommandName.CATEGORY:
        categories = {m.category for m in settings.mailboxes} | {"information", "complaint"}
        if argument not in categories:
            return Refusal(command.line, "unknown_category", argument)
    if name is CommandName.ASSIGN:
        # Reminders and follow-ups (complaint text included) go to the assignee.
        if argument in {m.address.lower() for m in settings.mailboxes}:
            return Refusal(command.line, "own_mailbox", argument)
        if not is_staff_address(settings, argument):
            return Refusal(command.line, "not_staff", argument)
        if not may_work_on(settings, ticket.category, ticket.mailbox, argument):
            return Refusal(command.line, "outside_complaints", argument)
    if name in (CommandName.INTERVIEW, CommandName.COMMITTEE) and (
        _result_commitment(context, ticket, name) is None
    ):
        return Refusal(command.line, "no_result_clock", argument)
    return None


def may_work_on(settings: Settings, category: str, arrived_in: str, address: str) -> bool:
    """Complaints are confidential: only the complaint queue's own staff and supervisors may
    be given one. Other tickets may go to any staff member."""
    if category != "complaint":
        return True
    queue = settings.queue_for(category, arrived_in)
    return queue is not None and address.lower() in {
        a.lower() for a in (*queue.staff, *queue.supervisors)
    }


def _result_commitment(
    context: Context, ticket: records.TicketRow, name: CommandName
) -> str | None:
    wanted = "internship_result" if name is CommandName.INTERVIEW else "cooperation_result"
    return wanted if wanted in records.commitments_for(context.settings, ticket.category) else None


def reclassify(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    category: str,
    *,
    actor: str,
    inbound_id: int | None,
    now: datetime,
    reason: str,
) -> None:
    """Move a ticket to another category: its deadlines are recomputed from the original
    receipt time, and an assignee who may not work on the new category is unassigned."""
    if category == ticket.category:
        return
    records.set_ticket_fields(connection, ticket.id, now, category=category)
    recompute_deadlines(connection, context, ticket.id, now)
    records.add_event(
        connection,
        ticket.id,
        now,
        "reclassified",
        f"{ticket.category} -> {category}: {reason}",
        actor=actor,
        inbound_id=inbound_id,
    )
    if ticket.assignee and not may_work_on(
        context.settings, category, ticket.mailbox, ticket.assignee
    ):
        records.set_ticket_fields(connection, ticket.id, now, assignee=None)
        records.add_event(
            connection,
            ticket.id,
            now,
            "unassigned",
            f"{ticket.assignee} is not on the {category} queue",
            actor=actor,
            inbound_id=inbound_id,
        )


def _apply_command(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    command: Command,
    sender: str,
    inbound_id: int,
    now: datetime,
) -> None:
    name = command.name
    detail = command.line
    if name is CommandName.CLOSE:
        records.set_ticket_fields(connection, ticket.id, now, status="closed", closed_at=now)
    elif name is CommandName.HOLD:
        start_hold(connection, ticket, command.argument, sender, now)
    elif name is CommandName.ASSIGN:
        records.set_ticket_fields(connection, ticket.id, now, assignee=command.argument)
    elif name is CommandName.ENGLISH:
        records.set_ticket_fields(
            connection, ticket.id, now, english_allowed=True, english_basis=command.argument[:500]
        )
    elif name is CommandName.CATEGORY:
        reclassify(
            connection,
            context,
            ticket,
            command.argument,
            actor=sender,
            inbound_id=inbound_id,
            now=now,
            reason="staff command",
        )
    elif name in (CommandName.INTERVIEW, CommandName.COMMITTEE):
        commitment_id = _result_commitment(context, ticket, name)
        assert commitment_id is not None  # checked by refusal_of
        start_result_clock(
            connection, context, ticket, commitment_id, date.fromisoformat(command.argument)
        )
    elif name is CommandName.NOTE:
        return  # recorded by the caller with the message's text
    records.add_event(
        connection,
        ticket.id,
        now,
        f"command_{name.value}",
        detail,
        actor=sender,
        inbound_id=inbound_id,
    )


def _reply_to_staff(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    sender: str,
    template: str,
    values: dict[str, object],
    inbound_id: int,
    now: datetime,
    in_reply_to: str,
) -> None:
    queue_internal(
        connection,
        context,
        template=template,
        values={"ticket": ticket, **values},
        queue=queue_of(context.settings, ticket),
        recipients=(sender,),
        ticket_id=ticket.id,
        ref=ticket.ref,
        purpose=f"staff_{template}",
        dedupe=f"{template}:{inbound_id}",
        now=now,
        in_reply_to=in_reply_to,
    )


def _confirm_held_reply(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    sender: str,
    inbound_id: int,
    now: datetime,
) -> StaffOutcome:
    """Relay the sender's latest reply on this ticket that was held for confirmation."""
    table = records.INBOUND
    held = connection.execute(
        sa.select(table.c.id, table.c.raw)
        .where(table.c.ticket_id == ticket.id)
        .where(table.c.state == "held")
        .where(table.c.flags.contains("uncertain_cut"))
        .order_by(table.c.id.desc())
    ).all()
    for row in held:
        original = parse_message(row.raw)
        if original.sender is None or original.sender.address != sender:
            continue
        extracted = extract_new_text(original.text, internal_markers=(INTERNAL_MARKER,))
        outcome = _act_on_reply(
            connection,
            context,
            ticket,
            parse_commands(extracted.text),
            certain=True,
            cut_by=extracted.cut_by,
            raw=row.raw,
            sender=sender,
            inbound_id=row.id,
            reply_message_id=original.message_id,
            answer_to=original.message_id,
            now=now,
        )
        if outcome.state != "processed":
            return outcome
        connection.execute(
            sa.update(table)
            .where(table.c.id == row.id)
            .values(state="processed", reason=f"confirmed by the sender (inbound #{inbound_id})")
        )
        records.add_event(
            connection,
            ticket.id,
            now,
            "reply_confirmed",
            f"inbound #{row.id}",
            actor=sender,
            inbound_id=inbound_id,
        )
        return StaffOutcome("processed", f"confirmed held reply #{row.id}")
    return StaffOutcome("processed", "confirmation with no held reply to confirm")


def relay_reply(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    text: str,
    raw: bytes,
    sender: str,
    inbound_id: int,
    staff_message_id: str,
    now: datetime,
    *,
    purpose: str,
) -> None:
    """Queue the staff member's words to the citizen from the queue's official address."""
    queue = queue_of(context.settings, ticket)
    citizen_ids, our_ids = _citizen_thread(connection, ticket.id)
    rendered = _render(
        context,
        "reply",
        {
            "ticket": ticket,
            "text": text.rstrip(),
            "subject": _strip_reply_prefix(ticket.subject),
            "queue": queue,
            "org": context.settings.organisation,
        },
    )
    message_id = _message_id(context, ticket.ref)
    envelope = Envelope(
        from_address=queue.address,
        from_name=queue.display_name,
        to_address=ticket.requester,
        to_name=ticket.requester_name,
        message_id=message_id,
        date=now,
        in_reply_to=citizen_ids[-1] if citizen_ids else "",
        references=(*citizen_ids, *our_ids),
    )
    message = compose(
        envelope,
        rendered,
        auto_submitted=None,
        loop_token=context.settings.organisation.message_id_domain,
    )
    attached = _copy_attachments(raw, message) if _has_attachment_parts(raw) else 0
    dedupe = f"relay:{staff_message_id or inbound_id}"
    row = records.queue_message(
        connection,
        ticket_id=ticket.id,
        purpose=purpose,
        dedupe_key=dedupe,
        message_id=message_id,
        envelope_from=queue.address,
        recipient=ticket.requester,
        raw=message.as_bytes(),
        now=now,
    )
    if row is None:
        records.add_event(
            connection,
            ticket.id,
            now,
            "reply_duplicate",
            f"already relayed ({dedupe})",
            actor=sender,
            inbound_id=inbound_id,
        )
        return
    records.add_event(
        connection,
        ticket.id,
        now,
        f"{purpose}_queued",
        f"{len(text)} characters, {attached} bytes attached",
        actor=sender,
        inbound_id=inbound_id,
        outbox_id=row,
    )


def _strip_reply_prefix(subject: str) -> str:
    return (
        re.sub(r"^(\s*(re|tr|fwd?|réf|ref|aw|wg)\s*:\s*)+", "", subject, flags=re.I)
        or "Votre demande"
    )


def _citizen_thread(connection: Connection, ticket_id: int) -> tuple[list[str], list[str]]:
    """Message-IDs of the citizen's messages on the ticket and of ours to the citizen."""
    inbound = records.INBOUND
    outbox = records.OUTBOX
    citizen = [
        row.message_id
        for row in connection.execute(
            sa.select(inbound.c.message_id)
            .where(inbound.c.ticket_id == ticket_id)
            .where(inbound.c.kind.in_(("new_request", "follow_up")))
            .order_by(inbound.c.id)
        )
        if row.message_id
    ]
    ours = [
        row.message_id
        for row in connection.execute(
            sa.select(outbox.c.message_id)
            .where(outbox.c.ticket_id == ticket_id)
            .where(outbox.c.purpose.in_(("acknowledgement", "reply", "hold_request")))
            .order_by(outbox.c.id)
        )
    ]
    return citizen, ours


# --- clocks ---------------------------------------------------------------------------------


def start_hold(
    connection: Connection, ticket: records.TicketRow, reason: str, actor: str, now: datetime
) -> None:
    holds = records.HOLD
    open_hold = connection.execute(
        sa.select(holds.c.id)
        .where(holds.c.ticket_id == ticket.id)
        .where(holds.c.ended_at.is_(None))
    ).first()
    if open_hold is None:
        connection.execute(
            sa.insert(holds).values(
                ticket_id=ticket.id,
                started_at=now,
                reason=reason[:2000],
                started_by=actor,
                ended_by="",
            )
        )
    records.set_ticket_fields(connection, ticket.id, now, status="on_hold")


def end_hold(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    at: datetime,
    now: datetime,
    *,
    actor: str,
    inbound_id: int | None,
) -> bool:
    """Close the ticket's open hold at `at` (the information's arrival); True if one was open."""
    holds = records.HOLD
    result = connection.execute(
        sa.update(holds)
        .where(holds.c.ticket_id == ticket.id)
        .where(holds.c.ended_at.is_(None))
        .values(ended_at=max(at, _hold_start(connection, ticket.id) or at), ended_by=actor)
    )
    if result.rowcount == 0:
        return False
    if ticket.status == "on_hold":
        records.set_ticket_fields(connection, ticket.id, now, status="open")
    recompute_deadlines(connection, context, ticket.id, now)
    records.add_event(
        connection,
        ticket.id,
        now,
        "hold_ended",
        "the requester wrote back",
        actor=actor,
        inbound_id=inbound_id,
    )
    return True


def _hold_start(connection: Connection, ticket_id: int) -> datetime | None:
    holds = records.HOLD
    value: datetime | None = connection.execute(
        sa.select(holds.c.started_at)
        .where(holds.c.ticket_id == ticket_id)
        .where(holds.c.ended_at.is_(None))
    ).scalar()
    return value


def recompute_deadlines(
    connection: Connection, context: Context, ticket_id: int, now: datetime
) -> None:
    """Recompute every receipt-started deadline of a ticket from its original receipt time,
    its current category and its holds; deadlines already met keep their row."""
    calendar = context.calendar
    settings = context.settings
    ticket = connection.execute(
        sa.select(records.TICKET).where(records.TICKET.c.id == ticket_id)
    ).one()
    holds = [
        Hold(start=row.started_at, end=row.ended_at)
        for row in connection.execute(
            sa.select(records.HOLD).where(records.HOLD.c.ticket_id == ticket_id)
        )
    ]
    table = records.DEADLINE
    existing = {
        row.commitment: row
        for row in connection.execute(sa.select(table).where(table.c.ticket_id == ticket_id))
    }
    deadlines = records.receipt_deadlines(
        settings, calendar, ticket.category, ticket.received_at, holds, now
    )
    for commitment_id, deadline in deadlines.items():
        values = records.deadline_values(deadline)
        row = existing.get(commitment_id)
        if row is None:
            connection.execute(
                sa.insert(table).values(ticket_id=ticket_id, commitment=commitment_id, **values)
            )
        elif row.met_at is None:
            connection.execute(sa.update(table).where(table.c.id == row.id).values(**values))
    wanted = set(records.commitments_for(settings, ticket.category))
    # Without a reply commitment (programme queues), the result clock staff started is promised.
    due_date = records.reply_due_date(settings, deadlines) or next(
        (
            row.due_date
            for c, row in existing.items()
            if c in wanted
            and c not in deadlines
            and settings.commitment(c).kind != "acknowledgement"
        ),
        None,
    )
    stale = [c for c in existing if c not in wanted and existing[c].met_at is None]
    if stale:
        connection.execute(
            sa.delete(table)
            .where(table.c.ticket_id == ticket_id)
            .where(table.c.commitment.in_(stale))
        )
    connection.execute(
        sa.update(records.TICKET)
        .where(records.TICKET.c.id == ticket_id)
        .values(due_date=due_date, updated_at=now)
    )


def start_result_clock(
    connection: Connection,
    context: Context,
    ticket: records.TicketRow,
    commitment_id: str,
    start: date,
) -> None:
    """Start a programme's result clock on the date staff gave (interview, committee)."""
    calendar = context.calendar
    commitment = context.settings.commitment(commitment_id)
    deadline = calendar.deadline_from_day(start, commitment.business_days)
    table = records.DEADLINE
    values = {
        "clock_start": deadline.receipt_day,
        "due_date": deadline.due_date,
        "due_at": deadline.due_at,
        "days_on_hold": 0,
    }
    updated = connection.execute(
        sa.update(table)
        .where(table.c.ticket_id == ticket.id)
        .where(table.c.commitment == commitment_id)
        .values(**values)
    )
    if updated.rowcount == 0:
        connection.execute(
            sa.insert(table).values(ticket_id=ticket.id, commitment=commitment_id, **values)
        )
    connection.execute(
        sa.update(records.TICKET)
        .where(records.TICKET.c.id == ticket.id)
        .values(due_date=deadline.due_date)
    )
