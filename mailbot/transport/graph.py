"""Microsoft Graph over HTTP: one client for every request mailbot makes to Graph (effects:
HTTP to Graph, and to the token provider through the token source).

    GraphClient(settings, tokens, now)     requests, with the application's bearer token
    client.call(user, method, path, ...)   one request on behalf of mailbox `user`

Throttling (Graph's Outlook limits: 10,000 requests per 10 minutes and 4 concurrent requests
per mailbox and application): at most `concurrency` requests are in flight per mailbox; a
429, 503 or 504 waits what `Retry-After` says (else a growing delay), with jitter, and is
tried again up to `retries` times (by stamina), never longer than `max_wait_seconds` at a
time, and without holding one of the mailbox's `concurrency` places meanwhile. A 429 is
never executed by Graph, so it is always safe to repeat; a 503/504 or a lost connection on a
request that is not safe to repeat (sendMail) is not repeated here: the caller learns that
the outcome is unknown (`GraphError.status` 0, 503 or 504) and checks before trying again.

Every message id is asked for as an immutable id (`Prefer: IdType="ImmutableId"`), which
stays the same when the message is moved to another folder of its mailbox.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailbot.errors import GraphError, MissingDependency, TokenError
from mailbot.settings import GraphSettings
from mailbot.transport.oauth import TokenSource

try:
    import requests
    import stamina
    from requests.structures import CaseInsensitiveDict
except ImportError as exc:
    raise MissingDependency(
        '[graph] needs requests, stamina and MSAL: install mailbot with the "microsoft" extra '
        '(pip install "mailbot[microsoft]")'
    ) from exc

log = logging.getLogger(__name__)

IMMUTABLE_IDS = 'IdType="ImmutableId"'
RETRIED_STATUSES = frozenset({429, 503, 504})
# The delay before the first retry when Graph gives no Retry-After; doubled each time.
FIRST_DELAY_SECONDS = 1.0
# Graph's delta link has expired or is unknown: list the folder again from the start.
RESYNC_CODES = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired"})


def quote(text: str) -> str:
    """An OData string literal: `text` in single quotes, each quote in it doubled."""
    return "'" + text.replace("'", "''") + "'"


def instant(value: object) -> datetime | None:
    """A date and time as Graph gives it (ISO 8601, "Z" for UTC; UTC when it names no
    offset); None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def wait_seconds(
    retry_after: str | None, attempt: int, now: datetime, cap: float, jitter: float
) -> float:
    """How long to wait before retry number `attempt` (1, 2...): what Retry-After says
    (seconds or an HTTP date), else 1, 2, 4... seconds; `jitter` (0 to 1) adds up to a
    fifth on top so that mailboxes throttled together do not come back together; never
    more than `cap` (pure)."""
    base: float | None = None
    if retry_after:
        value = retry_after.strip()
        if value.isdigit():
            base = float(value)
        else:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                base = max(0.0, (when - now).total_seconds())
    if base is None:
        base = FIRST_DELAY_SECONDS * 2 ** (attempt - 1)
    return min(cap, base * (1 + 0.2 * jitter))


@dataclass(frozen=True, slots=True)
class Answer:
    """Graph's answer to one request."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool = False  # the body was cut at the limit asked for

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def error_code(self) -> str:
        error = self.json().get("error")
        return str(error.get("code", "")) if isinstance(error, dict) else ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class GraphCounters:
    """What the client did, for /metrics (read without a lock: counters only grow)."""

    requests: int = 0
    throttled: int = 0  # answers 429, 503 or 504
    failures: int = 0  # requests that ended in a GraphError
    by_mailbox: dict[str, int] = field(default_factory=dict)


class _Again(GraphError):
    """This attempt is to be tried again after `wait` seconds (stamina reads the wait through
    `_wait_of`). Should retrying stop first (stamina's test mode, or retrying switched off),
    it is the error the request ends in."""

    def __init__(self, wait: float, message: str, status: int) -> None:
        super().__init__(message, status)
        self.wait = wait


def _wait_of(error: BaseException) -> float | bool:
    """stamina's backoff hook: the wait `_Again` asks for; any other error is not retried."""
    return error.wait if isinstance(error, _Again) else False


class GraphClient:
    """Requests to Graph for every mailbox, throttled per mailbox. `now` gives the instant
    the token is judged by (mailbot's one clock); `jitter` is injected so the tests know the
    waits. The retries are stamina's (the tests make its waits zero with
    `stamina.set_testing`)."""

    def __init__(
        self,
        settings: GraphSettings,
        tokens: TokenSource,
        now: Callable[[], datetime],
        *,
        session: requests.Session | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self._tokens = tokens
        self._now = now
        self._session = session or requests.Session()
        self._jitter = jitter
        # stamina reports each retry through process-wide hooks: by default a warning on the
        # logger "stamina" carrying the error's repr (the request's path and mailbox), and a
        # counter in prometheus_client's default registry, which mailbot's /metrics does not
        # show. mailbot logs its own line for each retry and counts throttling itself, and
        # nothing else in mailbot uses stamina: the hooks are switched off.
        stamina.instrumentation.set_on_retry_hooks(())
        self._gates: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()
        self.counters = GraphCounters()

    @property
    def tokens(self) -> TokenSource:
        return self._tokens

    def url(self, user: str, path: str) -> str:
        """The URL of `path` under the mailbox `user` (a full URL, such as a next or delta
        link Graph gave, is kept as it is)."""
        if path.startswith(("https://", "http://")):
            return path
        quoted = urllib.parse.quote(user, safe="@")
        return f"{self.settings.base_url.rstrip('/')}/users/{quoted}/{path.lstrip('/')}"

    def _gate(self, user: str) -> threading.BoundedSemaphore:
        with self._lock:
            gate = self._gates.get(user.lower())
            if gate is None:
                gate = threading.BoundedSemaphore(self.settings.concurrency)
                self._gates[user.lower()] = gate
            return gate

    def call(
        self,
        user: str,
        method: str,
        path: str,
        *,
        json_body: object = None,
        data: bytes | None = None,
        content_type: str = "",
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
        limit: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        allow: frozenset[int] = frozenset(),
    ) -> Answer:
        """One request for mailbox `user`, retried when throttled. A 2xx answer, or one of
        the statuses in `allow`, is returned; anything else raises GraphError naming the
        request (never the token). `limit`: read at most that many bytes of the body."""
        url = self.url(user, path)
        what = f"Graph {method} {_path_only(url)} for {user}"
        refreshed = False

        def once() -> Answer:
            return self._once(
                user, method, url, json_body, data, content_type, params, limit, extra_headers
            )

        for attempt in self._retrying():
            with attempt:
                try:
                    answer = once()
                except TokenError:
                    self.counters.failures += 1
                    raise
                except requests.RequestException as exc:
                    failed = f"{what}: {type(exc).__name__}"
                    if idempotent and attempt.num <= self.settings.retries:
                        delay = self._wait(None, attempt.num)
                        log.info("%s: %s; retrying in %.1f s", what, type(exc).__name__, delay)
                        raise _Again(delay, failed, 0) from None
                    self.counters.failures += 1
                    raise GraphError(failed, 0) from None
                if answer.status == 401 and not refreshed:
                    # Our token may have been revoked before its time: one fresh try, at once.
                    self._tokens.invalidate()
                    refreshed = True
                    raise _Again(0.0, f"{what}: HTTP 401", 401)
                if answer.status in RETRIED_STATUSES:
                    self.counters.throttled += 1
                    repeatable = idempotent or answer.status == 429
                    if repeatable and attempt.num <= self.settings.retries:
                        delay = self._wait(answer.headers.get("Retry-After"), attempt.num)
                        log.info("%s: %d, retrying in %.1f s", what, answer.status, delay)
                        raise _Again(delay, f"{what}: HTTP {answer.status}", answer.status)
        if answer.ok or answer.status in allow:
            return answer
        self.counters.failures += 1
        code = answer.error_code
        raise GraphError(
            f"{what}: HTTP {answer.status}{f' {code}' if code else ''}",
            answer.status,
            code,
        )

    def delete_message(self, user: str, message_id: str) -> None:
        """Delete a message of `user`'s: for good (`permanentDelete`, to the Purges folder no
        client sees) where the deployment offers it, else with DELETE, after which the
        message stays recoverable in Recoverable Items until the mailbox's deleted-item
        retention ends (`GraphCloud`). Gone already is done."""
        if self.settings.deployment.permanent_delete:
            self.call(
                user, "POST", f"messages/{message_id}/permanentDelete", allow=frozenset({404})
            )
        else:
            self.call(user, "DELETE", f"messages/{message_id}", allow=frozenset({404}))

    def upload(self, url: str, chunk: bytes, content_range: str) -> Answer:
        """One chunk of an upload session: PUT to the URL Graph gave, which carries its own
        authorisation (our token is not sent there); retried when throttled."""
        for attempt in self._retrying():
            with attempt:
                try:
                    response = self._session.put(
                        url,
                        data=chunk,
                        headers={
                            "Content-Range": content_range,
                            "Content-Length": str(len(chunk)),
                            "Content-Type": "application/octet-stream",
                        },
                        timeout=self.settings.timeout_seconds,
                    )
                except requests.RequestException as exc:
                    raise GraphError(f"Graph upload: {type(exc).__name__}", 0) from None
                self.counters.requests += 1
                answer = Answer(
                    response.status_code, CaseInsensitiveDict(response.headers), response.content
                )
                if answer.status in RETRIED_STATUSES and attempt.num <= self.settings.retries:
                    self.counters.throttled += 1
                    delay = self._wait(answer.headers.get("Retry-After"), attempt.num)
                    raise _Again(delay, f"Graph upload: HTTP {answer.status}", answer.status)
        if not answer.ok:
            raise GraphError(f"Graph upload: HTTP {answer.status}", answer.status)
        return answer

    def _retrying(self) -> Iterable[stamina.Attempt]:
        """The attempts at one request. Whether and when to try again is decided by the
        attempt itself, which raises `_Again` with the wait: `retries` times at most, plus the
        one fresh try after a 401, which is the most attempts stamina is told of (with no
        overall timeout: a Retry-After may be long); stamina's own backoff is never used."""
        return stamina.retry_context(on=_wait_of, attempts=self.settings.retries + 2, timeout=None)

    def _wait(self, retry_after: str | None, attempt: int) -> float:
        return wait_seconds(
            retry_after, attempt, self._now(), self.settings.max_wait_seconds, self._jitter()
        )

    def _once(
        self,
        user: str,
        method: str,
        url: str,
        json_body: object,
        data: bytes | None,
        content_type: str,
        params: Mapping[str, str] | None,
        limit: int | None,
        extra_headers: Mapping[str, str] | None,
    ) -> Answer:
        token = self._tokens.token(self._now())
        headers = {
            "Authorization": f"Bearer {token.value}",
            "Prefer": IMMUTABLE_IDS,
            "Accept": "application/json",
            **(extra_headers or {}),
        }
        if content_type:
            headers["Content-Type"] = content_type
        self.counters.requests += 1
        key = user.lower()
        self.counters.by_mailbox[key] = self.counters.by_mailbox.get(key, 0) + 1
        with self._gate(user):
            response = self._session.request(
                method,
                url,
                params=dict(params) if params else None,
                json=json_body,  # type: ignore[arg-type]
                data=data,
                headers=headers,
                timeout=self.settings.timeout_seconds,
                stream=limit is not None,
            )
            try:
                truncated = False
                if limit is None:
                    body = response.content
                else:
                    chunks: list[bytes] = []
                    total = 0
                    for chunk in response.iter_content(64 * 1024):
                        chunks.append(chunk)
                        total += len(chunk)
                        if total > limit:
                            truncated = True
                            break
                    body = b"".join(chunks)
            finally:
                response.close()
        return Answer(response.status_code, CaseInsensitiveDict(response.headers), body, truncated)


def _path_only(url: str) -> str:
    """The URL's path, without the query (a delta link's token is no business of the log)."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path
    # A message id is opaque and long; the folder or action around it says enough.
    segments = [s if len(s) < 40 else "…" for s in path.split("/")]
    return "/".join(segments)


def is_resync(error: GraphError) -> bool:
    """Graph no longer knows the delta link: the folder must be listed again."""
    return error.status == 410 or error.code.lower() in RESYNC_CODES
