"""Staff replies sent from inside a Microsoft 365 tenant, recognised by the organisation
headers Exchange Online stamps on them (pure).

    check_exchange_origin(headers, tenant_id) -> AuthVerdict

Exchange Online's own Authentication-Results carries no server id, so the RFC 8601 check
of `mailbot.staff.authresults` cannot tell its verdict from a copy a sender wrote. What Exchange
does guarantee is its header firewall: `X-MS-Exchange-Organization-*` headers are removed
from mail that enters the organisation from an untrusted source and stamped by the service
itself, so mail from the Internet arrives with `X-MS-Exchange-Organization-AuthAs:
Anonymous` whatever its sender wrote.
A reply passes only when every one of these is present exactly once and says so:

    X-MS-Exchange-Organization-AuthAs        Internal (an authenticated sender of the tenant)
    X-MS-Exchange-Organization-AuthSource    a server name (the server that authenticated it)
    X-MS-Exchange-Organization-AuthMechanism a value (how the sender authenticated)
    X-MS-Exchange-CrossTenant-Id             the configured tenant ID
    X-MS-Exchange-CrossTenant-AuthAs         Internal

Fail closed: a header missing, repeated, empty, of another tenant or with any other AuthAs
holds the reply. The README ("Microsoft 365", staff replies) gives the sources.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailbot.staff.authresults import AuthVerdict

AUTH_AS = "x-ms-exchange-organization-authas"
AUTH_SOURCE = "x-ms-exchange-organization-authsource"
AUTH_MECHANISM = "x-ms-exchange-organization-authmechanism"
TENANT_ID = "x-ms-exchange-crosstenant-id"
TENANT_AUTH_AS = "x-ms-exchange-crosstenant-authas"

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_MECHANISM = re.compile(r"^[A-Za-z0-9]{1,16}$")


def _single(headers: Sequence[tuple[str, str]], name: str) -> tuple[str | None, str | None]:
    """(the one value, None), or (None, why not): missing, repeated or empty."""
    values = [value.strip() for key, value in headers if key.lower() == name]
    if not values:
        return None, f"no {name} header"
    if len(values) > 1:
        return None, f"{len(values)} {name} headers (one expected)"
    if not values[0]:
        return None, f"empty {name} header"
    return values[0], None


def check_exchange_origin(headers: Sequence[tuple[str, str]], tenant_id: str) -> AuthVerdict:
    """Did Exchange Online receive this message from an authenticated sender of `tenant_id`?
    `headers` is InboundMail.headers (lower-cased names, in message order)."""
    wanted_tenant = tenant_id.strip().lower()
    if not wanted_tenant:
        return AuthVerdict(False, ("no tenant_id configured",))
    failures: list[str] = []
    values: dict[str, str] = {}
    for name in (AUTH_AS, AUTH_SOURCE, AUTH_MECHANISM, TENANT_ID, TENANT_AUTH_AS):
        value, problem = _single(headers, name)
        if problem is not None:
            failures.append(problem)
        elif value is not None:
            values[name] = value
    if AUTH_AS in values and values[AUTH_AS].lower() != "internal":
        failures.append(f"{AUTH_AS} is {values[AUTH_AS][:40]!r}, not Internal")
    if TENANT_AUTH_AS in values and values[TENANT_AUTH_AS].lower() != "internal":
        failures.append(f"{TENANT_AUTH_AS} is {values[TENANT_AUTH_AS][:40]!r}, not Internal")
    if AUTH_SOURCE in values and not _HOST.match(values[AUTH_SOURCE]):
        failures.append(f"{AUTH_SOURCE} is not a server name")
    if AUTH_MECHANISM in values and not _MECHANISM.match(values[AUTH_MECHANISM]):
        failures.append(f"{AUTH_MECHANISM} is malformed")
    if TENANT_ID in values and values[TENANT_ID].lower() != wanted_tenant:
        failures.append(f"from another tenant ({values[TENANT_ID][:40]})")
    if failures:
        return AuthVerdict(False, tuple(failures))
    return AuthVerdict(
        True,
        (f"exchange online: AuthAs Internal in tenant {wanted_tenant} via {values[AUTH_SOURCE]}",),
    )
