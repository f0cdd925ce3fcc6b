"""Parsing ahead: while a pass stores one chunk of fetched messages, a worker process parses
the next one.

Parsing (the email package) is the heaviest step of ingestion that needs nothing but the
message's bytes; the rest (the database, the templates) waits its turn on one core. Over a
backlog a worker process runs it on another core, one chunk ahead of the database work, and
hands back each message's `InboundMail`: exactly what `parse_message` returns here, so the
outcome of a message never depends on where it was parsed.

The worker is `python -P -m mailbot.transport.parse_ahead`: it imports the parser alone
(about 20 MiB), sees none of the daemon's secrets (`worker_environment`), reads a pickled list
of raw messages on its standard input and writes their parses on its standard output, one
chunk at a time. It is started on the first backlog and kept for the process's life; a batch
of a single chunk never uses it. A message the worker could not parse, and any failure of the
worker itself (killed, unable to start, an answer that makes no sense), fall back to parsing
inline, where a poison message is quarantined as before; after a third failure the process
parses inline for good. `[daemon] parse_worker = false` switches it off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import site
import subprocess
import sys
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mailbot.mail.parse import InboundMail, parse_message

if TYPE_CHECKING:  # the worker imports the parser alone
    from mailbot.transport.base import FetchedMessage

log = logging.getLogger(__name__)

Parsed = list[InboundMail | None]
Chunk = list[tuple["FetchedMessage", InboundMail | None]]
MAX_FAILURES = 3


def parse_all(raws: Sequence[bytes]) -> Parsed:
    """Each message parsed, or None where parsing raised (parsed again inline, to quarantine
    it with the same reason)."""
    parsed: Parsed = []
    for raw in raws:
        try:
            parsed.append(parse_message(raw))
        except Exception:  # the pass parses it again and quarantines it
            parsed.append(None)
    return parsed


class ParseAhead:
    """The pass's side of the worker; `enabled` False parses everything inline."""

    def __init__(self, *, enabled: bool = True) -> None:
        self._enabled = enabled
        self._worker: subprocess.Popen[bytes] | None = None
        self._failures = 0

    @property
    def failures(self) -> int:
        """How many times the worker failed since the process started (a metric)."""
        return self._failures

    @property
    def pid(self) -> int | None:
        """The worker's process id, while it runs."""
        return self._worker.pid if self._worker is not None else None

    def chunks(self, messages: Sequence[FetchedMessage], size: int) -> Generator[Chunk, None, None]:
        """`messages` in chunks of `size`, each message with its parse (None: parse inline).
        While the caller works on one chunk, the worker parses the next."""
        cut = [list(messages[start : start + size]) for start in range(0, len(messages), size)]
        asked: int | None = None  # the chunk the worker is parsing
        if len(cut) > 1:
            self._start()
        try:
            for index, chunk in enumerate(cut):
                parsed: Parsed = [None] * len(chunk)
                if asked == index:
                    parsed, asked = self._answer(len(chunk)), None
                if index + 1 < len(cut) and self._ask(cut[index + 1]):
                    asked = index + 1
                yield list(zip(chunk, parsed, strict=True))
        finally:
            if asked is not None:  # the caller stopped early: keep the worker in step
                self._answer(len(cut[asked]))

    def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        _close_streams(worker)  # the worker reads the end of its input and exits
        try:
            worker.wait(timeout=5)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()

    def _start(self) -> None:
        if not self._enabled or self._worker is not None:
            return
        try:
            self._worker = subprocess.Popen(
                # -P: the working directory is not on the worker's import path.
                [sys.executable, "-P", "-m", "mailbot.transport.parse_ahead"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=worker_environment(os.environ),
            )
        except OSError as exc:
            self._lost(exc)

    def _ask(self, chunk: Sequence[FetchedMessage]) -> bool:
        worker = self._worker
        if worker is None or worker.stdin is None:
            return False
        try:
            pickle.dump([message.raw for message in chunk], worker.stdin, pickle.HIGHEST_PROTOCOL)
            worker.stdin.flush()
        except OSError as exc:  # the worker is gone
            self._lost(exc)
            return False
        return True

    def _answer(self, count: int) -> Parsed:
        worker = self._worker
        if worker is None or worker.stdout is None:
            return [None] * count
        try:
            parsed = pickle.load(worker.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:  # killed mid-chunk
            self._lost(exc)
            return [None] * count
        if not (
            isinstance(parsed, list)
            and len(parsed) == count
            and all(item is None or isinstance(item, InboundMail) for item in parsed)
        ):
            self._lost(ValueError("an answer that does not match the chunk"))
            return [None] * count
        return parsed

    def _lost(self, exc: BaseException) -> None:
        """The worker failed: parse inline; after MAX_FAILURES, for the process's life."""
        self._failures += 1
        if self._failures >= MAX_FAILURES:
            self._enabled = False
        log.warning(
            "the parsing worker failed (%s); parsing inline%s",
            type(exc).__name__,
            "" if self._enabled else " from now on",
        )
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()
            worker.wait()
            _close_streams(worker)


def _close_streams(worker: subprocess.Popen[bytes]) -> None:
    for stream in (worker.stdin, worker.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):  # a dead worker's pipe
                stream.close()


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What the worker sees of the environment: where mailbot is and the locale, none of the
    passwords and keys the daemon holds."""
    kept = {name: environ[name] for name in _KEPT if name in environ}
    package_root = str(Path(__file__).resolve().parents[2])
    # Installed, mailbot is on the interpreter's own path already; from a source checkout
    # its folder goes first (never site-packages itself, which would come before the stdlib).
    installed = package_root in {str(Path(path).resolve()) for path in site.getsitepackages()}
    paths = ["" if installed else package_root, environ.get("PYTHONPATH", "")]
    joined = os.pathsep.join(path for path in paths if path)
    return {**kept, "PYTHONPATH": joined} if joined else kept


_KEPT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONDONTWRITEBYTECODE")


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The worker: parse each chunk read from `requests` until it closes."""
    while True:
        try:
            raws = pickle.load(requests)
        except EOFError:
            return
        pickle.dump(parse_all(raws), answers, pickle.HIGHEST_PROTOCOL)
        answers.flush()


if __name__ == "__main__":
    # Ctrl-C is the daemon's to handle (it stops after the message in hand); SIGTERM ends the
    # worker, and the pass parses inline.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
