"""What every settings class shares: frozen, no unknown key; the small value types (pure)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

TlsMode = Literal["tls", "starttls", "none"]
Category = Literal["information", "complaint", "internship", "cooperation"]
Provider = Literal["microsoft", "google", "generic"]
Mechanism = Literal["auto", "xoauth2", "oauthbearer"]


class Frozen(BaseModel):
    """A settings section: validated once, frozen; an unknown key is an error that names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
