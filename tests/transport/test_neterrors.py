"""Connection failures in words an IT team can act on: the server's text (never a Python
bytes value), DNS and proxy failures named as such."""

from __future__ import annotations

import socket

import aiosmtplib
import pytest
import requests
from imapclient.exceptions import LoginError

from mailbot.transport.neterrors import describe


def test_an_imap_refusal_is_the_servers_text_not_a_bytes_value() -> None:
    text = describe(LoginError(b"[AUTHENTICATIONFAILED] Authentication failed."))
    assert text == "[AUTHENTICATIONFAILED] Authentication failed."


def test_an_smtp_refusal_keeps_its_code() -> None:
    error = aiosmtplib.SMTPAuthenticationError(535, "5.7.8 Authentication credentials invalid")
    assert describe(error) == "535 5.7.8 Authentication credentials invalid"


def test_a_name_that_does_not_resolve_is_dns() -> None:
    try:
        raise requests.exceptions.ConnectionError("Max retries exceeded") from socket.gaierror(
            -2, "Name or service not known"
        )
    except requests.exceptions.ConnectionError as exc:
        text = describe(exc)
    assert text.startswith("DNS: the host name does not resolve")


def test_a_proxy_failure_names_the_proxy() -> None:
    error = requests.exceptions.ProxyError("Unable to connect to proxy")
    text = describe(error, {"HTTPS_PROXY": "http://proxy.mri.gouv.qc.ca:3128"})
    assert text.startswith("the HTTPS proxy (http://proxy.mri.gouv.qc.ca:3128) failed")


def test_urllib_through_a_refusing_proxy_is_a_proxy_failure() -> None:
    error = OSError("Tunnel connection failed: 403 Forbidden")
    assert "HTTPS proxy (http://p:3128)" in describe(error, {"https_proxy": "http://p:3128"})


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "Connection refused (nothing"),
        (TimeoutError("timed out"), "timed out: no answer in time"),
    ],
)
def test_refused_and_timed_out(error: BaseException, words: str) -> None:
    assert words in describe(error)


def test_a_missing_file_is_named() -> None:
    error = FileNotFoundError(2, "No such file or directory", "/etc/mailbot/mailbot.crt")
    assert describe(error) == "No such file or directory: /etc/mailbot/mailbot.crt"
