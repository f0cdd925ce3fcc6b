"""Authentication-Results as a specification: literal headers in, verdicts out (who may act as
staff rests on the receiving server's DMARC, DKIM and SPF results, RFC 8601)."""

from __future__ import annotations

import pytest

from mailbot.staff.authresults import (
    AuthVerdict,
    MalformedHeader,
    check_authentication,
    is_aligned,
    parse_authentication_results,
)

OUR_ID = "mx.mri.gouv.qc.ca"
SENDER_DOMAIN = "mri.gouv.qc.ca"


def headers(*authentication_results: str) -> tuple[tuple[str, str], ...]:
    """InboundMail.headers of a message whose Authentication-Results are given top first."""
    return (
        ("return-path", "<sophie.lavoie@mri.gouv.qc.ca>"),
        *(("authentication-results", value) for value in authentication_results),
        ("received", "from mail.mri.gouv.qc.ca by mx.mri.gouv.qc.ca"),
        ("from", "Sophie Lavoie <sophie.lavoie@mri.gouv.qc.ca>"),
        ("subject", "RE: [MRI-2025-00042] Attestation"),
    )


AUTH_CASES = [
    pytest.param(
        headers(
            "mx.mri.gouv.qc.ca; dmarc=pass (p=reject dis=none) header.from=mri.gouv.qc.ca",
        ),
        AuthVerdict(True, ("dmarc=pass for mri.gouv.qc.ca",)),
        id="dmarc-pass",
    ),
    pytest.param(
        headers(
            "mx.mri.gouv.qc.ca; dkim=pass (2048-bit key; unprotected) header.d=mri.gouv.qc.ca"
            " header.s=selector1 header.b=Xq3+k/9=; spf=pass smtp.mailfrom=mri.gouv.qc.ca;"
            " dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=mri.gouv.qc.ca",
        ),
        AuthVerdict(
            True, ("dkim=pass aligned (header.d=mri.gouv.qc.ca)", "dmarc=pass for mri.gouv.qc.ca")
        ),
        id="gmail-style-all-pass",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dkim=pass header.d=mri.gouv.qc.ca; dmarc=none"),
        AuthVerdict(True, ("dkim=pass aligned (header.d=mri.gouv.qc.ca)",)),
        id="aligned-dkim-is-enough",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dkim=pass header.d=mri.gouv.qc.ca; dmarc=fail"),
        AuthVerdict(False, ("explicit failure: dmarc=fail",)),
        id="dmarc-fail-next-to-dkim-pass-holds",
    ),
    pytest.param(
        headers(
            "mx.mri.gouv.qc.ca; dkim=pass header.d=mri.gouv.qc.ca; dkim=fail header.d=x.example;"
            " dmarc=pass header.from=mri.gouv.qc.ca"
        ),
        AuthVerdict(False, ("explicit failure: dkim=fail",)),
        id="a-failing-signature-next-to-a-passing-one-holds",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; spf=temperror; dmarc=pass header.from=mri.gouv.qc.ca"),
        AuthVerdict(False, ("explicit failure: spf=temperror",)),
        id="an-error-holds",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dmarc=permerror header.from=mri.gouv.qc.ca"),
        AuthVerdict(False, ("explicit failure: dmarc=permerror",)),
        id="a-permanent-error-holds",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dkim=pass header.d=gouv.qc.ca header.s=s1"),
        AuthVerdict(True, ("dkim=pass aligned (header.d=gouv.qc.ca)",)),
        id="dkim-parent-domain-relaxed",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dkim=pass header.i=@mri.gouv.qc.ca"),
        AuthVerdict(True, ("dkim=pass aligned (header.i=mri.gouv.qc.ca)",)),
        id="dkim-header-i-when-no-d",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dkim=pass header.d=sendgrid.net header.i=@mri.gouv.qc.ca"),
        AuthVerdict(False, ("dkim=pass for an unaligned domain (header.d=sendgrid.net)",)),
        id="dkim-of-another-domain",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dkim=pass header.d=ca"),
        AuthVerdict(False, ("dkim=pass for an unaligned domain (header.d=ca)",)),
        id="dkim-top-level-domain-aligns-with-nothing",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dkim=pass header.d=notices.mri.gouv.qc.ca"),
        AuthVerdict(
            False, ("dkim=pass for an unaligned domain (header.d=notices.mri.gouv.qc.ca)",)
        ),
        id="dkim-of-a-subdomain-of-the-sender",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dkim=pass header.s=s1"),
        AuthVerdict(False, ("dkim=pass without header.d",)),
        id="dkim-pass-without-domain",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dmarc=pass header.from=mri-gouv-qc.example"),
        AuthVerdict(False, ("dmarc=pass for another domain (mri-gouv-qc.example)",)),
        id="dmarc-pass-for-another-domain",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dmarc=pass"),
        AuthVerdict(False, ("dmarc=pass without header.from",)),
        id="dmarc-pass-without-header-from",
    ),
    pytest.param(
        headers(
            "mx.mri.gouv.qc.ca; dkim=fail (bad signature) header.d=mri.gouv.qc.ca;"
            " spf=fail smtp.mailfrom=mri.gouv.qc.ca;"
            " dmarc=fail (p=reject) header.from=mri.gouv.qc.ca",
        ),
        AuthVerdict(
            False,
            (
                "explicit failure: dkim=fail",
                "explicit failure: spf=fail",
                "explicit failure: dmarc=fail",
            ),
        ),
        id="everything-fails-every-reason-listed",
    ),
    pytest.param(
        headers(
            "mx.mri.gouv.qc.ca; dmarc=fail header.from=mri.gouv.qc.ca",
            "mx.mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca",
        ),
        AuthVerdict(
            False, ("2 Authentication-Results headers claim mx.mri.gouv.qc.ca: ambiguous",)
        ),
        id="two-verdicts-with-our-id-are-ambiguous",
    ),
    pytest.param(
        headers(
            "mx.mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca",
            "mx.mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca",
        ),
        AuthVerdict(
            False, ("2 Authentication-Results headers claim mx.mri.gouv.qc.ca: ambiguous",)
        ),
        id="two-passing-verdicts-with-our-id-are-ambiguous-too",
    ),
    pytest.param(
        headers(
            "relay.partenaire.example; dmarc=pass header.from=mri.gouv.qc.ca",
            "mx.mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca",
        ),
        AuthVerdict(True, ("dmarc=pass for mri.gouv.qc.ca",)),
        id="another-servers-verdict-is-ignored",
    ),
    pytest.param(
        headers("relay.partenaire.example; dmarc=pass header.from=mri.gouv.qc.ca"),
        AuthVerdict(False, ("no Authentication-Results header from mx.mri.gouv.qc.ca",)),
        id="only-another-servers-verdict",
    ),
    pytest.param(
        headers(),
        AuthVerdict(False, ("no Authentication-Results header from mx.mri.gouv.qc.ca",)),
        id="missing-header",
    ),
    pytest.param(
        headers("MX.MRI.GOUV.QC.CA; DMARC=Pass Header.From=MRI.Gouv.QC.ca"),
        AuthVerdict(True, ("dmarc=pass for mri.gouv.qc.ca",)),
        id="case-insensitive",
    ),
    pytest.param(
        headers('"mx.mri.gouv.qc.ca"; dmarc="pass" header.from="mri.gouv.qc.ca"'),
        AuthVerdict(False, ("malformed Authentication-Results: no result for dmarc",)),
        id="a-quoted-result-is-not-a-keyword",
    ),
    pytest.param(
        headers(
            '"mx.mri.gouv.qc.ca"; dmarc=pass reason="aligned; ok" header.from="mri.gouv.qc.ca"'
        ),
        AuthVerdict(True, ("dmarc=pass for mri.gouv.qc.ca",)),
        id="quoted-authserv-id-and-property-values",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca 1; dmarc=pass header.from=mri.gouv.qc.ca"),
        AuthVerdict(True, ("dmarc=pass for mri.gouv.qc.ca",)),
        id="with-version",
    ),
    pytest.param(
        headers(
            "mx.mri.gouv.qc.ca (Postfix; OpenDMARC (1.4)); dmarc=pass (p=reject; sp=reject)"
            " header.from=mri.gouv.qc.ca",
        ),
        AuthVerdict(True, ("dmarc=pass for mri.gouv.qc.ca",)),
        id="nested-comments-with-semicolons",
    ),
    pytest.param(
        headers(
            "mx.mri.gouv.qc.ca; spf=pass (dmarc=pass header.from=mri.gouv.qc.ca)"
            " smtp.mailfrom=sophie.lavoie@mri.gouv.qc.ca",
        ),
        AuthVerdict(False, ("no dmarc or dkim result",)),
        id="a-pass-inside-a-comment-does-not-count",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; none"),
        AuthVerdict(False, ("no dmarc or dkim result",)),
        id="no-result",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca;"),
        AuthVerdict(True, ("dmarc=pass for mri.gouv.qc.ca",)),
        id="trailing-semicolon",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dmarc=pass (unclosed header.from=mri.gouv.qc.ca"),
        AuthVerdict(False, ("malformed Authentication-Results: unclosed comment",)),
        id="malformed-unclosed-comment",
    ),
    pytest.param(
        headers('mx.mri.gouv.qc.ca; dmarc=pass header.from="mri.gouv.qc.ca'),
        AuthVerdict(False, ("malformed Authentication-Results: unclosed quoted string",)),
        id="malformed-unclosed-quote",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca dmarc=pass header.from=mri.gouv.qc.ca"),
        AuthVerdict(False, ("malformed Authentication-Results: expected ';', found 'd'",)),
        id="malformed-missing-semicolon",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dmarc header.from=mri.gouv.qc.ca"),
        AuthVerdict(False, ("malformed Authentication-Results: expected '=', found 'h'",)),
        id="malformed-method-without-result",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dmarc=pass header.from="),
        AuthVerdict(False, ("malformed Authentication-Results: no value for header.from",)),
        id="malformed-empty-property",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dmarc=pass action=none header.from=mri.gouv.qc.ca"),
        AuthVerdict(
            False, ("malformed Authentication-Results: property 'action' of dmarc has no type",)
        ),
        id="malformed-untyped-property",
    ),
    pytest.param(
        headers(
            "spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=mri.gouv.qc.ca; dkim=pass"
            " (signature was verified) header.d=mri.gouv.qc.ca;dmarc=pass action=none"
            " header.from=mri.gouv.qc.ca;compauth=pass reason=100",
        ),
        AuthVerdict(False, ("no Authentication-Results header from mx.mri.gouv.qc.ca",)),
        id="microsoft-365-style-without-authserv-id",
    ),
    pytest.param(
        headers("mx.mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca none"),
        AuthVerdict(
            False, ("malformed Authentication-Results: property 'none' of dmarc has no type",)
        ),
        id="malformed-trailing-word",
    ),
    pytest.param(
        headers(""),
        AuthVerdict(False, ("no Authentication-Results header from mx.mri.gouv.qc.ca",)),
        id="malformed-empty",
    ),
]


@pytest.mark.parametrize(("message_headers", "expected"), AUTH_CASES)
def test_check_authentication(
    message_headers: tuple[tuple[str, str], ...], expected: AuthVerdict
) -> None:
    assert check_authentication(message_headers, SENDER_DOMAIN, OUR_ID) == expected


def test_an_empty_configured_authserv_id_lets_nothing_pass() -> None:
    passing = headers("mx.mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca")
    assert check_authentication(passing, SENDER_DOMAIN, "") == AuthVerdict(
        False, ("no authserv-id configured",)
    )
    assert check_authentication(passing, SENDER_DOMAIN, "  ").passed is False


def test_the_configured_authserv_id_is_case_insensitive() -> None:
    passing = headers("mx.mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca")
    assert check_authentication(passing, "MRI.gouv.qc.ca", "MX.MRI.Gouv.QC.CA").passed is True


def test_no_sender_domain_fails() -> None:
    passing = headers("mx.mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca")
    assert check_authentication(passing, "", OUR_ID) == AuthVerdict(False, ("no sender domain",))


def test_other_headers_above_the_first_authentication_results_do_not_matter() -> None:
    message_headers = (
        ("x-mailbot-loop", "no"),
        ("authentication-results", "mx.mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca"),
    )
    assert check_authentication(message_headers, SENDER_DOMAIN, OUR_ID).passed is True


def test_parse_authentication_results_reads_methods_results_and_properties() -> None:
    parsed = parse_authentication_results(
        'mx.mri.gouv.qc.ca; dkim/1=pass header.d=mri.gouv.qc.ca header.b="a b";'
        " iprev=pass policy.iprev=192.0.2.1 (mail.mri.gouv.qc.ca)"
    )
    assert parsed.authserv_id == "mx.mri.gouv.qc.ca"
    assert [(result.method, result.result) for result in parsed.results] == [
        ("dkim", "pass"),
        ("iprev", "pass"),
    ]
    assert parsed.results[0].properties == (("header.d", "mri.gouv.qc.ca"), ("header.b", "a b"))
    assert parsed.results[1].property("policy.iprev") == "192.0.2.1"


def test_none_mixed_with_results_is_malformed() -> None:
    with pytest.raises(MalformedHeader):
        parse_authentication_results("mx.mri.gouv.qc.ca; none; dmarc=pass header.from=x.ca")


@pytest.mark.parametrize(
    ("signing", "sender", "aligned"),
    [
        ("mri.gouv.qc.ca", "mri.gouv.qc.ca", True),
        ("gouv.qc.ca", "mri.gouv.qc.ca", True),
        ("ri.gouv.qc.ca", "mri.gouv.qc.ca", False),  # a suffix of the text, not a parent domain
        ("notices.mri.gouv.qc.ca", "mri.gouv.qc.ca", False),
        ("ca", "mri.gouv.qc.ca", False),
        ("", "mri.gouv.qc.ca", False),
    ],
)
def test_is_aligned(signing: str, sender: str, aligned: bool) -> None:
    assert is_aligned(signing, sender) is aligned
