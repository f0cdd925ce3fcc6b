"""Who mailbot speaks for, and how staff mail proves it came from inside (pure)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from mailbot.settings.base import Frozen

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class OrganisationSettings(Frozen):
    """Who mailbot speaks for; the templates use these lines."""

    name: str
    timezone: str = "America/Toronto"
    ticket_prefix: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{0,9}$")]
    office_hours: str
    contact_lines: tuple[str, ...] = ()
    website: str = ""
    # The domain of our own Message-IDs; the signing key makes tokens a stranger cannot forge.
    message_id_domain: str
    signing_key_env: str = "MAILBOT_SIGNING_KEY"
    # Staff are the addresses listed on mailboxes plus any address at these domains, and only
    # with a passing verdict from our own receiving server (its authserv-id, RFC 8601).
    staff_domains: tuple[str, ...] = ()
    authserv_id: str = ""
    # How a staff reply proves it came from inside: our receiving server's verdict
    # (`authentication_results`, with authserv_id), or Exchange Online's organisation headers
    # for mail sent inside the Microsoft 365 tenant `tenant_id` (`exchange_online`).
    staff_authentication: Literal["authentication_results", "exchange_online"] = (
        "authentication_results"
    )
    tenant_id: str = ""

    @model_validator(mode="after")
    def _tenant_for_exchange(self) -> OrganisationSettings:
        if self.staff_authentication == "exchange_online" and not _GUID.match(self.tenant_id):
            raise ValueError(
                'staff_authentication = "exchange_online" needs tenant_id, the directory '
                "(tenant) ID of the Microsoft 365 tenant, e.g. 72f988bf-86f1-41af-91ab-2d7cd011db47"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
