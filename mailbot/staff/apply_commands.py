"""The commands of a staff reply, checked and applied in order, on the caller's connection.

Each command is checked against the ticket as the commands before it left it (category, queue,
assignee, clocks), so "catégorie stage" then "entrevue 2025-11-20" works in one reply. Each
is checked first against `authority.may_act_on`: its sender must work on the ticket's queue
as it stands then, so after a category change that hands the ticket to another queue, the
sender's next command is refused unless they work there too. The first refusal raises
`Refused`; the caller's savepoint then undoes the commands before it. `fusionner` and
`référer` hand the ticket off (mailbot/tickets/merge.py, mailbot/tickets/referral.py) and must
stand alone in their reply; a merge needs its sender to work on both tickets' queues.
`libérer ADRESSE`, from a supervisor of the ticket's queue, releases that person's acts held
past their hourly limit (mailbot/staff/limits.py); it stands alone too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, handoff, legal_holds, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.staff import handoff_rules, limits
from mailbot.staff.command_table import STANDS_ALONE, Command, CommandName
from mailbot.standards import authority, deadlines
from mailbot.states import TicketStatus
from mailbot.tickets import clocks, completeness, merge, notices, reclassify, referral

# The staff date that starts a programme's result clock.
RESULT_CLOCK_STARTS = {CommandName.INTERVIEW: "interview", CommandName.COMMITTEE: "committee"}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one command cannot apply to the ticket as the commands before it left it; the
    template `_refusal.j2` words it for the sender."""

    line: str
    # not_on_queue | own_mailbox_sender (authority) | unknown_category | not_staff |
    # own_mailbox | outside_complaints | assignee_not_on_queue | no_result_clock |
    # hold_from_cli | not_hold_owner | not_incomplete | unknown_answer | canned_in_note |
    # must_stand_alone | no_such_ticket | merge_same_ticket | merge_other_requester |
    # merge_not_on_queue | merge_referred |
    # ticket_closed_as | refer_own_domain | refer_needs_note | refer_legal_hold |
    # refer_too_large_smtp | refer_too_large_graph | refer_oversized | refer_unreadable |
    # refer_no_request | refer_nothing_new | not_supervisor | nothing_to_release
    code: str
    argument: str = ""
    command: str = ""
    # The files a referral would carry (name, bytes), when its size is why it cannot go.
    files: tuple[tuple[str, int], ...] = ()


class Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.code)
        self.refusal = refusal


def combination_refusal(commands: Sequence[Command]) -> Refusal | None:
    """Commands that cannot go together in one reply: a merge or a referral with anything
    else; a canned answer (for the citizen) in an internal note."""
    names = [command.name for command in commands]
    for command in commands:
        if command.name in STANDS_ALONE and len(names) > 1:
            return Refusal(command.line, "must_stand_alone", command=command.name.value)
    if CommandName.NOTE in names:
        for command in commands:
            if command.name is CommandName.CANNED:
                return Refusal(command.line, "canned_in_note", command.argument, "canned")
    return None


def _handoff_refusal(
    connection: Connection, app: App, ticket: TicketRow, command: Command, sender: str, text: str
) -> Refusal | None:
    """A merge needs the ticket kept and the sender on both tickets' queues; a referral an
    address outside the ministry and a note."""
    settings = app.settings
    problem: tuple[str, str] | None = None
    if command.name is CommandName.MERGE:
        found = ticket_rows.ticket_by_ref(connection, command.argument)
        kept = handoff.kept_ticket(connection, found) if found is not None else None
        problem = handoff_rules.merge_problem(ticket, kept, command.argument)
        if problem is None and kept is not None:
            for side in (ticket, kept):  # the one rule, on each ticket's queue
                if not authority.may_act_on(settings, side, sender).allowed:
                    problem = ("merge_not_on_queue", side.ref)
                    break
    elif command.name is CommandName.REFER:
        problem = handoff_rules.referral_problem(settings, ticket, command.argument, text)
    elif command.name is CommandName.RELEASE:
        problem = limits.release_problem(connection, settings, ticket, command.argument, sender)
    if problem is None:
        return None
    return Refusal(command.line, problem[0], problem[1], command.name.value)


def authority_refusal(app: App, ticket: TicketRow, sender: str, line: str) -> Refusal | None:
    """Why `sender` may not act on `ticket` now (`authority.may_act_on`), or None. `line` is
    what was refused: the command line, or the reply meant for the citizen."""
    verdict = authority.may_act_on(app.settings, ticket, sender)
    if verdict.allowed:
        return None
    return Refusal(line, verdict.reason, verdict.queue)


def refusal_of(app: App, ticket: TicketRow, command: Command) -> Refusal | None:
    """Why `command` cannot apply to `ticket` as it stands, or None."""
    settings = app.settings
    name, argument = command.name, command.argument

    def refuse(code: str) -> Refusal:
        return Refusal(command.line, code, argument, name.value)

    if name is CommandName.CATEGORY:
        categories = {m.category for m in settings.mailboxes} | {"information", "complaint"}
        if argument not in categories:
            return refuse("unknown_category")
    if name is CommandName.ASSIGN:
        # Reminders and follow-ups (complaint text included) go to the assignee.
        if argument in settings.own_addresses:
            return refuse("own_mailbox")
        if not settings.is_staff(argument):
            return refuse("not_staff")
        # Whoever is given the ticket must be able to act on it (the same rule as its sender).
        if not authority.may_act_on(settings, ticket, argument).allowed:
            return refuse(
                "outside_complaints" if ticket.category == "complaint" else "assignee_not_on_queue"
            )
    if name is CommandName.CANNED and argument not in app.answers.names:
        return refuse("unknown_answer")
    starts = RESULT_CLOCK_STARTS.get(name)
    if (
        starts is not None
        and deadlines.result_commitment(settings, ticket.category, starts) is None
    ):
        return refuse("no_result_clock")
    return None


def _release_refusal(
    connection: Connection, app: App, ticket: TicketRow, command: Command, sender: str
) -> Refusal | None:
    """A legal hold protects evidence: by email, only whoever placed it or a supervisor of the
    ticket's queue lifts it; one placed from the command line is lifted there only."""
    if command.name is not CommandName.LEGAL_RELEASE or ticket.legal_hold_at is None:
        return None
    origin = legal_holds.hold_origin(connection, ticket.id)
    if origin is not None and not origin.by_email:
        return Refusal(command.line, "hold_from_cli", command=command.name.value)
    verdict = authority.may_act_on(app.settings, ticket, sender)
    placed_by = origin.actor.lower() if origin is not None else ""
    if verdict.allowed and (verdict.supervisor or verdict.sender == placed_by):
        return None
    return Refusal(command.line, "not_hold_owner", command=command.name.value)


def _completeness_refusal(
    connection: Connection, ticket: TicketRow, command: Command
) -> Refusal | None:
    """`complet` completes a request declared incomplete and not completed yet."""
    if command.name is not CommandName.COMPLETE:
        return None
    if completeness.is_incomplete(connection, ticket.id):
        return None
    return Refusal(command.line, "not_incomplete", command=command.name.value)


def apply_in_order(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    commands: Sequence[Command],
    sender: str,
    inbound_id: int,
    now: datetime,
    text: str = "",
) -> None:
    """Check and apply each command against the ticket as the previous ones left it.

    For each command in the order written: read the ticket again (the command before may have
    changed its category, queue or clocks), check it (`refusal_of`, then `_release_refusal`
    for a legal hold's release), apply it (`_apply`) and record the access. The first refusal
    raises `Refused` with the line and why; the caller (`apply_reply.act`) then rolls back its
    savepoint, so no command of the message stays applied, and tells the sender. `text` is
    the reply's text: a merge's words to the citizen, a referral's note.
    """
    combination = combination_refusal(commands)
    if combination is not None:
        raise Refused(combination)
    for command in commands:
        current = ticket_rows.ticket_by_id(connection, ticket.id) or ticket
        refusal = (
            authority_refusal(app, current, sender, command.line)
            or refusal_of(app, current, command)
            or _release_refusal(connection, app, current, command, sender)
            or _completeness_refusal(connection, current, command)
            or _handoff_refusal(connection, app, current, command, sender, text)
        )
        if refusal is not None:
            raise Refused(refusal)
        if command.name is CommandName.RELEASE:
            limits.release(connection, app, current, command.argument, sender, inbound_id, now)
        elif command.name in STANDS_ALONE:
            _hand_off(connection, app, current, command, sender, inbound_id, now, text)
        else:
            _apply(connection, app, current, command, sender, inbound_id, now)
        access.record(connection, now, sender, f"staff_{command.name.value}", current.ref)


def _hand_off(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    command: Command,
    sender: str,
    inbound_id: int,
    now: datetime,
    text: str,
) -> None:
    """A merge into another ticket, or a referral to another body (checked already)."""
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        f"command_{command.name.value}",
        command.line,
        actor=sender,
        inbound_id=inbound_id,
    )
    if command.name is CommandName.MERGE:
        found = ticket_rows.ticket_by_ref(connection, command.argument)
        assert found is not None  # checked by _handoff_refusal
        kept = handoff.kept_ticket(connection, found)
        merge.merge_into(
            connection, app, ticket, kept, text=text, sender=sender, inbound_id=inbound_id, now=now
        )
    else:
        try:
            referral.refer(
                connection,
                app,
                ticket,
                command.argument,
                note=text,
                sender=sender,
                inbound_id=inbound_id,
                now=now,
            )
        except referral.NotReferred as exc:
            raise Refused(
                Refusal(command.line, exc.code, exc.argument, command.name.value, exc.files)
            ) from exc


def _apply(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    command: Command,
    sender: str,
    inbound_id: int,
    now: datetime,
) -> None:
    """Apply one checked command to the ticket, and record it in the ticket's history.

    ``fermer`` closes; ``attente`` starts a hold (the clocks pause: `clocks.start_hold`);
    ``assigner`` sets the assignee; ``anglais`` allows an English version with its legal
    basis; ``catégorie`` reclassifies (deadlines recomputed: `reclassify.reclassify`);
    ``entrevue`` / ``comité`` start a programme's result clock on the date given; the legal
    hold commands go to `legal_holds.change_legal_hold`, which writes its own history. A note
    changes nothing here: the caller records the message's text.
    """
    name = command.name
    if name is CommandName.NOTE:
        return  # recorded by the caller with the message's text
    if name in (CommandName.INCOMPLETE, CommandName.COMPLETE):
        _apply_completeness(connection, app, ticket, command, sender, inbound_id, now)
        return
    if name is CommandName.CANNED:
        return  # rendered into the reply by the caller; the relay's event records it
    if name is CommandName.CLOSE:
        ticket_rows.set_ticket_fields(
            connection, ticket.id, now, status=TicketStatus.CLOSED.value, closed_at=now
        )
    elif name is CommandName.HOLD:
        clocks.start_hold(connection, ticket, command.argument, sender, now)
    elif name is CommandName.ASSIGN:
        ticket_rows.set_ticket_fields(connection, ticket.id, now, assignee=command.argument)
    elif name in (CommandName.LEGAL_HOLD, CommandName.LEGAL_RELEASE):
        reason = command.argument if name is CommandName.LEGAL_HOLD else None
        legal_holds.change_legal_hold(connection, ticket.id, reason, sender, now, inbound_id)
        return  # the history has it (legal_hold, legal_hold_released)
    elif name is CommandName.ENGLISH:
        ticket_rows.set_ticket_fields(
            connection, ticket.id, now, english_allowed=True, english_basis=command.argument[:500]
        )
    elif name is CommandName.CATEGORY:
        reclassify.reclassify(
            connection,
            app,
            ticket,
            command.argument,
            actor=sender,
            inbound_id=inbound_id,
            now=now,
            reason="staff command",
        )
        notices.notify_handover(
            connection,
            app,
            ticket_rows.ticket_by_id(connection, ticket.id) or ticket,
            authority.queue_of(app.settings, ticket),
            actor=sender,
            inbound_id=inbound_id,
            now=now,
        )
    else:
        commitment = deadlines.result_commitment(
            app.settings, ticket.category, RESULT_CLOCK_STARTS[name]
        )
        assert commitment is not None  # checked by refusal_of
        clocks.start_result_clock(
            connection, app, ticket, commitment, date.fromisoformat(command.argument), now
        )
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        f"command_{name.value}",
        command.line,
        actor=sender,
        inbound_id=inbound_id,
    )


def _apply_completeness(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    command: Command,
    sender: str,
    inbound_id: int,
    now: datetime,
) -> None:
    """`incomplet : MOTIF` and `complet`: the clocks counted from the complete request wait,
    then start again (mailbot/tickets/completeness.py)."""
    if command.name is CommandName.INCOMPLETE:
        completeness.declare_incomplete(connection, app, ticket, command.argument, sender, now)
        ticket_rows.add_event(
            connection,
            ticket.id,
            now,
            "command_incomplete",
            command.line,
            actor=sender,
            inbound_id=inbound_id,
        )
        return
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "command_complete",
        command.line,
        actor=sender,
        inbound_id=inbound_id,
    )
    completeness.complete(
        connection,
        app,
        ticket,
        now,
        now,
        actor=sender,
        inbound_id=inbound_id,
        how="staff said complete (the missing piece came another way)",
    )
