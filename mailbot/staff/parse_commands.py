"""The commands at the top of a staff reply, and the lines that look like commands left
unmarked (pure).

  parse_commands(text) -> StaffMessage
      the marked command lines at the top of the new text ("#fermer", "/close",
      "#attente : motif"), the text below them, and the lines of that text that look like a
      command written without its mark.

The grammar (the staff guide in the README, "Pour le personnel", says the same):

- A command is a line at the top of the new text that begins with `#` or `/` followed by a
  command word, French or English, accents and case optional: `#fermer`, `/close`,
  `#attente : motif`, `#fusionner MRI-2025-00012`, `#référer : adresse`. Blank lines before
  and between them are skipped. A marked line whose word is unknown, or whose argument is
  missing or malformed, is an error: the whole reply is refused with the reason.
- A line that does not begin with `#` or `/` is never a command, wherever it stands: the
  first one starts the text, which goes to the citizen as written (`Note : nos bureaux
  seront fermés le 24 décembre.`). `#` or `/` followed by no word (`#123`,
  `#MRI-2025-00042`, `/s/ Sophie Lavoie`) is no mark either.
- Below the top, `#réponse type : NOM` is replaced by that canned answer in place, so it may
  stand on any line; any other marked line whose word is a command word, or one letter from
  one (`#fermer` under "Bonjour,"), is an error (`misplaced_command`): commands go at the
  top. A marked line whose word is no command (`#MRIF`) is prose there.
- `texte :` (`text:`) at the start of the text is removed: it used to mark text that looked
  like a command, and what follows it is taken as written.

The table of commands, and the readers of their arguments, are in
mailbot/staff/command_table.py; the safety net for a command meant but left unmarked
(`unmarked_command`) is in mailbot/staff/unmarked_commands.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.mail.text import SPACE, fold
from mailbot.staff.command_table import (
    SPEC_BY_WORD,
    Command,
    CommandError,
    CommandName,
    read_argument,
    read_phrase,
)
from mailbot.staff.unmarked_commands import (
    UnmarkedCommand,
    command_word,
    unmarked_canned,
    unmarked_command,
)


@dataclass(frozen=True, slots=True)
class StaffMessage:
    commands: tuple[Command, ...]
    errors: tuple[CommandError, ...]
    body: str  # the text after the command lines (what may be relayed), stripped
    # The text for the citizen in order, when the reply uses canned answers: the staff's own
    # text and the `réponse type` commands (those at the top first). Empty without any.
    pieces: tuple[str | Command, ...] = ()
    # Lines of the text that look like commands left unmarked: the reply is held until its
    # sender confirms it (mailbot/staff/replies.py). Empty for an internal note.
    unmarked: tuple[UnmarkedCommand, ...] = ()


# A mark, then a word of letters ending at a space, ':', '.', '!' or the end of the line:
# "#fermer", "/ close.", "#attente: motif"; not "#123", "#MRI-2025-00042", "/s/".
_MARKED_LINE = re.compile(
    rf"^[#/]{SPACE}*(?P<token>[^\W\d_]+[.!]*)(?=$|[\s:])(?P<rest>.*)$", re.DOTALL
)
_COLON = re.compile(rf"^{SPACE}*:(?P<argument>.*)$", re.DOTALL)


def read_command_line(line: str) -> Command | CommandError | None:
    """One line: a command, an erroneous command, or None when it is not marked (it does not
    begin with '#' or '/' and a word): an unmarked line is never a command."""
    written = line.strip()
    match = _MARKED_LINE.match(written)
    if match is None:
        return None
    token = match.group("token")
    word = fold(token).rstrip(".!")
    rest = match.group("rest")
    spec = SPEC_BY_WORD.get(word)
    phrase = read_phrase(word, rest) if spec is None else None
    if phrase is not None:
        spec, more, rest = phrase
        token = f"{token} {more}"
    if spec is None:
        return CommandError(written, "unknown_command", token)
    colon = _COLON.match(rest)
    argument = (colon.group("argument") if colon else rest).strip()
    return read_argument(spec, argument, written)


# "texte :" / "text:" at the start of the text: an older way to say "what follows is text";
# the marker is removed.
_TEXT_MARKER = re.compile(rf"^{SPACE}*(?:texte|text){SPACE}*:(?P<rest>.*)$", re.IGNORECASE)


def _body_lines(
    body_lines: list[str],
) -> tuple[list[str | Command], list[CommandError], list[UnmarkedCommand]]:
    """The text cut at its canned-answer lines (text pieces and `réponse type` commands), the
    errors of its marked lines, and its unmarked canned-answer lines."""
    pieces: list[str | Command] = []
    errors: list[CommandError] = []
    unmarked: list[UnmarkedCommand] = []
    text: list[str] = []
    for line in body_lines:
        read = read_command_line(line)
        if read is None:
            canned = unmarked_canned(line)
            if canned is not None:
                unmarked.append(canned)
            text.append(line)
            continue
        called = read.name.value if isinstance(read, Command) else read.command
        if called == CommandName.CANNED.value:
            if isinstance(read, CommandError):
                errors.append(read)
                continue
            assert isinstance(read, Command)
            pieces.extend(("\n".join(text).strip("\n"), read))
            text = []
            continue
        word = _MARKED_LINE.match(line.strip())
        assert word is not None  # read_command_line found a marked line
        if called or command_word(fold(word.group("token")).rstrip(".!")) is not None:
            errors.append(CommandError(line.strip(), "misplaced_command", command=called))
            continue
        text.append(line)  # "#MRIF": a hashtag, not a command
    pieces.append("\n".join(text).strip("\n"))
    kept = [piece for piece in pieces if not isinstance(piece, str) or piece.strip()]
    return kept, errors, unmarked


def parse_commands(text: str) -> StaffMessage:
    """The marked commands at the very top of the new text (blank lines before and between
    them skipped), one per line, French or English, case- and accent-insensitive ("#fermer",
    "/close", "#attente: il manque votre formulaire", "#catégorie plainte",
    "#entrevue 2025-11-20"); the text starts at the first line that is not marked. A marked
    line whose word is unknown, or a known command with a missing or malformed argument (bad
    date, bad address, unknown category), is an error; so is a marked command below the top
    (`misplaced_command`), except a canned answer, kept in place in `pieces`. Dates are
    normalised to ISO. Repeated commands are all kept.

    `unmarked` lists the text's first line when it looks like a command left unmarked
    (`unmarked_command`) and any line that is only an unmarked canned answer; it stays empty
    for an internal note (`#note`) and after `texte :`."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    commands: list[Command] = []
    errors: list[CommandError] = []
    body_start = len(lines)
    escaped = False
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        read = read_command_line(line)
        if read is None:
            body_start = index
            marker = _TEXT_MARKER.match(line)
            if marker is not None:
                lines[index] = marker.group("rest").strip()
                escaped = True
            break
        if isinstance(read, Command):
            commands.append(read)
        else:
            errors.append(read)
    body_lines = lines[body_start:]
    found, body_errors, unmarked = _body_lines(body_lines)
    errors.extend(body_errors)
    first = next((line for line in body_lines if line.strip()), "")
    meant = unmarked_command(first) if first and not escaped else None
    if meant is not None and all(meant.line != item.line for item in unmarked):
        unmarked.insert(0, meant)
    if escaped:
        unmarked = [item for item in unmarked if item.line != first.strip()]
    if any(command.name is CommandName.NOTE for command in commands):
        unmarked = []  # an internal note reaches no citizen
    in_body = [piece for piece in found if isinstance(piece, Command)]
    at_top = [command for command in commands if command.name is CommandName.CANNED]
    pieces: tuple[str | Command, ...] = ()
    if at_top or in_body:
        pieces = (*at_top, *found)
        commands.extend(in_body)
        body = "\n\n".join(piece for piece in found if isinstance(piece, str)).strip()
    else:
        body = "\n".join(body_lines).strip()
    return StaffMessage(
        commands=tuple(commands),
        errors=tuple(errors),
        body=body,
        pieces=pieces,
        unmarked=tuple(unmarked),
    )
