"""The complete Microsoft 365 and Google Workspace configurations the README points to load as
they are, and say what each provider needs (hosts, ports, TLS, OAuth2, envelope sender)."""

from __future__ import annotations

import pytest

from mailbot.settings import load_settings
from tests.conftest import REPO

EXPECTED = {
    "mailbot-microsoft365.toml": (
        "microsoft",
        ("outlook.office365.com", 993, "tls"),
        ("smtp.office365.com", 587, "starttls"),
    ),
    "mailbot-google.toml": (
        "google",
        ("imap.gmail.com", 993, "tls"),
        ("smtp.gmail.com", 465, "tls"),
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_provider_configuration_loads_and_is_complete(name: str) -> None:
    provider, imap, smtp = EXPECTED[name]
    settings = load_settings(REPO / "deploy" / name, environ={})

    assert (settings.imap.host, settings.imap.port, settings.imap.tls) == imap
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.tls) == smtp
    assert settings.imap.auth.method == settings.smtp.auth.method == "oauth2"
    assert settings.imap.auth.provider == settings.smtp.auth.provider == provider
    assert settings.smtp.bounce_address == settings.smtp.username  # the envelope sender
    assert all(not mailbox.password_env for mailbox in settings.mailboxes)
    readme = (REPO / "README.md").read_text()
    assert f"deploy/{name}" in readme


def test_the_readme_configurations_stop_nowhere_mid_way() -> None:
    readme = (REPO / "README.md").read_text()
    microsoft = readme.split("## Microsoft 365", 1)[1].split("\n## ", 1)[0]
    google = readme.split("## Google Workspace", 1)[1].split("\n## ", 1)[0]
    assert "\n    ...\n" not in microsoft
    assert "sign their verdict so\n" not in google
