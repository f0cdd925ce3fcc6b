"""Staff replies as a specification: literal headers and bodies in, verdicts out.

The reply bodies are our own, written in the shapes of public samples (mailgun/talon
standard_replies, alfonsrv/mail-parser-reply email_fr_wrap, zapier/email-reply-parser);
nothing is copied from them.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path

import jinja2
import pytest

from mailbot.mail.text import fold
from mailbot.staff.authresults import (
    AuthVerdict,
    MalformedHeader,
    check_authentication,
    is_aligned,
    parse_authentication_results,
)
from mailbot.staff.command_table import COMMANDS, Command, CommandError, CommandName, parse_date
from mailbot.staff.parse_commands import StaffMessage, parse_commands, read_command_line
from mailbot.staff.quotes import CUT_RULES, DOUBT_RULES, ReplyText, extract_new_text

OUR_ID = "mx.mri.gouv.qc.ca"
SENDER_DOMAIN = "mri.gouv.qc.ca"
MARKERS = ("Usage interne", "Référence interne")


def headers(*authentication_results: str) -> tuple[tuple[str, str], ...]:
    """InboundMail.headers of a message whose Authentication-Results are given top first."""
    return (
        ("return-path", "<sophie.lavoie@mri.gouv.qc.ca>"),
        *(("authentication-results", value) for value in authentication_results),
        ("received", "from mail.mri.gouv.qc.ca by mx.mri.gouv.qc.ca"),
        ("from", "Sophie Lavoie <sophie.lavoie@mri.gouv.qc.ca>"),
        ("subject", "RE: [MRI-2025-00042] Attestation"),
    )


# --- Authentication-Results ---------------------------------------------------------------

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


# --- New text of a reply --------------------------------------------------------------------

OUTLOOK_FR = """\
Bonjour Madame Tremblay,

Votre attestation de stage vous sera postée cette semaine.

Cordialement,

Sophie Lavoie
Conseillère en renseignements
Ministère des Relations internationales et de la Francophonie

De : Renseignements MRI <renseignements@mri.gouv.qc.ca>
Envoyé : 3 novembre 2025 10:00
À : Lavoie, Sophie <sophie.lavoie@mri.gouv.qc.ca>
Objet : [MRI-2025-00042] Attestation de stage

Usage interne : répondez au-dessus de cette ligne.
Demande de Marie Tremblay reçue le 31 octobre 2025.
"""

OUTLOOK_FR_SEPARATOR_NBSP = (
    "Bonjour,\n"
    "\n"
    "Nous avons bien reçu votre formulaire.\n"
    "\n"
    "Sophie\n"
    "\n"
    "________________________________\n"
    "De\u00a0: Renseignements MRI <renseignements@mri.gouv.qc.ca>\n"
    "Envoyé\u00a0: lundi 3 novembre 2025 10:00\n"
    "À\u00a0: Lavoie, Sophie\n"
    "Cc\u00a0: Gagnon, Marc\n"
    "Objet\u00a0: [MRI-2025-00042] Formulaire\n"
    "\n"
    "Référence interne : MRI-2025-00042\n"
)

OUTLOOK_EN = """\
Hello Mr. Smith,

Your internship certificate is attached.

Best regards,
Sophie Lavoie

From: MRI Information <renseignements@mri.gouv.qc.ca>
Sent: Monday, November 3, 2025 10:00 AM
To: Lavoie, Sophie <sophie.lavoie@mri.gouv.qc.ca>
Subject: [MRI-2025-00042] Internship certificate

Usage interne : reply above this line.
"""

OUTLOOK_MOBILE_FR = """\
Dossier complet, merci.

Obtenir Outlook pour iOS<https://aka.ms/o0ukef>
________________________________
De : Renseignements MRI <renseignements@mri.gouv.qc.ca>
Envoyé : Monday, November 3, 2025 10:00:12 AM
À : Lavoie, Sophie <sophie.lavoie@mri.gouv.qc.ca>
Objet : [MRI-2025-00042] Formulaire
"""

OUTLOOK_OLD_FR = """\
Le dossier est transmis au comité.

-----Message d'origine-----
De : Renseignements MRI [mailto:renseignements@mri.gouv.qc.ca]
Envoyé : 3 novembre 2025 10:00
À : Lavoie, Sophie
Objet : [MRI-2025-00042] Coopération
"""

OUTLOOK_OLD_EN = """\
The file went to the committee.

-----Original Message-----
From: MRI Information [mailto:renseignements@mri.gouv.qc.ca]
Sent: November-03-25 10:00 AM
To: Lavoie, Sophie
Subject: [MRI-2025-00042] Cooperation
"""

OUTLOOK_FOR_MAC_FR = """\
Merci, c'est noté.

De : Renseignements MRI <renseignements@mri.gouv.qc.ca>
Date : lundi 3 novembre 2025 à 10:00
À : Sophie Lavoie <sophie.lavoie@mri.gouv.qc.ca>
Objet : [MRI-2025-00042] Attestation
"""

GMAIL_FR_WRAPPED = """\
Bonjour Madame Tremblay,

Merci pour votre message. Le formulaire signé est bien arrivé, je vous
confirme la suite d'ici vendredi.

Cordialement
Sophie


Le lun. 3 nov. 2025, à 10 h 00, Renseignements MRI <renseignements@mri.gouv.qc.ca>
a écrit :

> Nouvelle demande de Marie Tremblay. Usage interne : répondez au-dessus de
> cette ligne.
"""

GMAIL_FR_FRANCE_THREE_LINES = """\
Réponse envoyée.

Le lun. 3 nov. 2025 à 10:00, Service des renseignements du ministère des
Relations internationales <
renseignements@mri.gouv.qc.ca> a écrit :

> Usage interne
"""

GMAIL_EN = """\
Hi Mr. Smith,

Your application is complete.

On Mon, Nov 3, 2025 at 10:00 AM MRI Information <renseignements@mri.gouv.qc.ca> wrote:

> New request from John Smith.
> Usage interne: reply above this line.
"""

APPLE_MAIL_FR = """\
Oui, l'entrevue est confirmée.

Envoyé de mon iPhone

> Le 3 nov. 2025 à 10:00, Renseignements MRI <renseignements@mri.gouv.qc.ca> a écrit :
>\u0020
> Usage interne : répondez au-dessus de cette ligne.
"""

APPLE_MAIL_EN = """\
Yes, the interview is confirmed.

On Nov 3, 2025, at 10:00, MRI Information <renseignements@mri.gouv.qc.ca> wrote:

> Usage interne: reply above this line.
"""

THUNDERBIRD_EN = """\
We will call you on Thursday.

On 2025-11-03 10:00, MRI Information wrote:
> Usage interne: reply above this line.
>
> Request from John Smith
"""

THUNDERBIRD_FR = """\
Nous vous appellerons jeudi.

Le 2025-11-03 à 10:00, Renseignements MRI a écrit :
> Usage interne : répondez au-dessus de cette ligne.
"""

QUOTED_WITHOUT_HEADER = """\
Bien reçu, merci.

> Usage interne : répondez au-dessus de cette ligne.
> Demande de Marie Tremblay
"""

SIGNATURE_KEPT = """\
Bonjour,

Votre dossier est complet.

--\u0020
Sophie Lavoie | Conseillère
Ministère des Relations internationales et de la Francophonie
418 555-0100

On Mon, Nov 3, 2025 at 10:00 AM MRI Information <renseignements@mri.gouv.qc.ca> wrote:
> Usage interne
"""

SIGNATURE_BELOW_QUOTE = """\
Bien reçu.

Le 2025-11-03 à 10:00, Renseignements MRI a écrit :
> Usage interne : répondez au-dessus de cette ligne.

--\u0020
Sophie Lavoie
"""

GMAIL_FORWARD = """\
Pour information.

---------- Forwarded message ---------
From: MRI Information <renseignements@mri.gouv.qc.ca>
Date: Mon, Nov 3, 2025 at 10:00 AM
"""

THUNDERBIRD_FORWARD_FR = """\
Je te transfère le dossier.

-------- Message transféré --------
Sujet : [MRI-2025-00042] Stage
"""

BOLD_HEADER_BLOCK = """\
Voir la pièce jointe.

*De :* Renseignements MRI <renseignements@mri.gouv.qc.ca>
*Envoyé :* 3 novembre 2025 10:00
*Objet :* [MRI-2025-00042] Stage
"""

ADDRESS_WROTE = """\
Je vous confirme la date.

Renseignements MRI <renseignements@mri.gouv.qc.ca> a écrit :

> Usage interne
"""

PROSE_WITH_LE_AND_A_ECRIT = """\
Le citoyen nous a écrit :
il demande une copie de son attestation.

Sophie
"""

UNDERSCORES_IN_SIGNATURE = """\
Votre demande est acceptée.

______________________________
Sophie Lavoie
Conseillère
"""

REPLY_CASES = [
    pytest.param(
        OUTLOOK_FR,
        ReplyText(
            text=(
                "Bonjour Madame Tremblay,\n\n"
                "Votre attestation de stage vous sera postée cette semaine.\n\n"
                "Cordialement,\n\n"
                "Sophie Lavoie\n"
                "Conseillère en renseignements\n"
                "Ministère des Relations internationales et de la Francophonie"
            ),
            certain=True,
            cut_by="outlook_header_block",
        ),
        id="outlook-fr-de-envoye-a-objet",
    ),
    pytest.param(
        OUTLOOK_FR_SEPARATOR_NBSP,
        ReplyText(
            text="Bonjour,\n\nNous avons bien reçu votre formulaire.\n\nSophie",
            certain=True,
            cut_by="outlook_separator",
        ),
        id="outlook-fr-underscores-and-no-break-spaces",
    ),
    pytest.param(
        OUTLOOK_EN,
        ReplyText(
            text=(
                "Hello Mr. Smith,\n\nYour internship certificate is attached.\n\n"
                "Best regards,\nSophie Lavoie"
            ),
            certain=True,
            cut_by="outlook_header_block",
        ),
        id="outlook-en-from-sent-to-subject",
    ),
    pytest.param(
        OUTLOOK_MOBILE_FR,
        ReplyText(
            text="Dossier complet, merci.\n\nObtenir Outlook pour iOS<https://aka.ms/o0ukef>",
            certain=True,
            cut_by="outlook_separator",
        ),
        id="outlook-mobile-footer-kept",
    ),
    pytest.param(
        OUTLOOK_OLD_FR,
        ReplyText(
            text="Le dossier est transmis au comité.",
            certain=True,
            cut_by="original_message_separator",
        ),
        id="outlook-message-d-origine",
    ),
    pytest.param(
        OUTLOOK_OLD_EN,
        ReplyText(
            text="The file went to the committee.",
            certain=True,
            cut_by="original_message_separator",
        ),
        id="outlook-original-message",
    ),
    pytest.param(
        OUTLOOK_FOR_MAC_FR,
        ReplyText(text="Merci, c'est noté.", certain=True, cut_by="outlook_header_block"),
        id="outlook-for-mac-fr-date",
    ),
    pytest.param(
        GMAIL_FR_WRAPPED,
        ReplyText(
            text=(
                "Bonjour Madame Tremblay,\n\n"
                "Merci pour votre message. Le formulaire signé est bien arrivé, je vous\n"
                "confirme la suite d'ici vendredi.\n\n"
                "Cordialement\nSophie"
            ),
            certain=True,
            cut_by="attribution",
        ),
        id="gmail-fr-ca-wrapped-over-two-lines",
    ),
    pytest.param(
        GMAIL_FR_FRANCE_THREE_LINES,
        ReplyText(text="Réponse envoyée.", certain=True, cut_by="attribution"),
        id="gmail-fr-wrapped-over-three-lines",
    ),
    pytest.param(
        GMAIL_EN,
        ReplyText(
            text="Hi Mr. Smith,\n\nYour application is complete.",
            certain=True,
            cut_by="attribution",
        ),
        id="gmail-en",
    ),
    pytest.param(
        APPLE_MAIL_FR,
        ReplyText(
            text="Oui, l'entrevue est confirmée.\n\nEnvoyé de mon iPhone",
            certain=True,
            cut_by="attribution",
        ),
        id="apple-mail-fr-quoted-attribution",
    ),
    pytest.param(
        APPLE_MAIL_EN,
        ReplyText(text="Yes, the interview is confirmed.", certain=True, cut_by="attribution"),
        id="apple-mail-en",
    ),
    pytest.param(
        THUNDERBIRD_EN,
        ReplyText(text="We will call you on Thursday.", certain=True, cut_by="attribution"),
        id="thunderbird-en",
    ),
    pytest.param(
        THUNDERBIRD_FR,
        ReplyText(text="Nous vous appellerons jeudi.", certain=True, cut_by="attribution"),
        id="thunderbird-fr",
    ),
    pytest.param(
        QUOTED_WITHOUT_HEADER,
        ReplyText(text="Bien reçu, merci.", certain=True, cut_by="quoted_block"),
        id="quote-without-header-at-the-bottom",
    ),
    pytest.param(
        SIGNATURE_KEPT,
        ReplyText(
            text=(
                "Bonjour,\n\nVotre dossier est complet.\n\n-- \n"
                "Sophie Lavoie | Conseillère\n"
                "Ministère des Relations internationales et de la Francophonie\n"
                "418 555-0100"
            ),
            certain=True,
            cut_by="attribution",
        ),
        id="signature-kept",
    ),
    pytest.param(
        SIGNATURE_BELOW_QUOTE,
        ReplyText(text="Bien reçu.", certain=True, cut_by="attribution"),
        id="thunderbird-signature-below-the-quote-is-not-a-reply",
    ),
    pytest.param(
        GMAIL_FORWARD,
        ReplyText(text="Pour information.", certain=True, cut_by="original_message_separator"),
        id="gmail-forwarded-message",
    ),
    pytest.param(
        THUNDERBIRD_FORWARD_FR,
        ReplyText(
            text="Je te transfère le dossier.", certain=True, cut_by="original_message_separator"
        ),
        id="thunderbird-message-transfere",
    ),
    pytest.param(
        BOLD_HEADER_BLOCK,
        ReplyText(text="Voir la pièce jointe.", certain=True, cut_by="outlook_header_block"),
        id="bold-header-block",
    ),
    pytest.param(
        ADDRESS_WROTE,
        ReplyText(text="Je vous confirme la date.", certain=True, cut_by="address_wrote_line"),
        id="name-and-address-wrote",
    ),
    pytest.param(
        PROSE_WITH_LE_AND_A_ECRIT,
        ReplyText(
            text="Le citoyen nous a écrit :\nil demande une copie de son attestation.\n\nSophie",
            certain=True,
            cut_by="",
        ),
        id="prose-le-a-ecrit-without-a-date-is-not-a-header",
    ),
    pytest.param(
        UNDERSCORES_IN_SIGNATURE,
        ReplyText(
            text=(
                "Votre demande est acceptée.\n\n______________________________\n"
                "Sophie Lavoie\nConseillère"
            ),
            certain=True,
            cut_by="",
        ),
        id="underscores-without-header-block-are-kept",
    ),
    pytest.param(
        "Réponse courte, sans historique.\n\n\n",
        ReplyText(text="Réponse courte, sans historique.", certain=True, cut_by=""),
        id="no-history-trailing-space-trimmed",
    ),
    pytest.param(
        "Bien reçu.\r\n\r\nOn Mon, Nov 3, 2025 at 10:00 AM MRI <r@mri.gouv.qc.ca> wrote:"
        "\r\n> x\r\n",
        ReplyText(text="Bien reçu.", certain=True, cut_by="attribution"),
        id="crlf-line-endings",
    ),
    pytest.param("", ReplyText(text="", certain=True, cut_by=""), id="empty-body"),
]


@pytest.mark.parametrize(("body", "expected"), REPLY_CASES)
def test_extract_new_text(body: str, expected: ReplyText) -> None:
    assert extract_new_text(body, internal_markers=MARKERS) == expected


INTERNAL_MARKER_LEFT = """\
Bonjour Madame Tremblay, votre demande est acceptée.

Renseignements MRI a répondu le lundi :
Usage interne : répondez au-dessus de cette ligne.
Demande de Marie Tremblay.
"""

INLINE_REPLY = """\
Voici les réponses.

On Mon, Nov 3, 2025 at 10:00 AM MRI Information <renseignements@mri.gouv.qc.ca> wrote:
> Quelle est la date limite ?
Le 30 novembre.
> Faut-il un original ?
Non, une copie suffit.
"""

BOTTOM_POSTED = """\
On 2025-11-03 10:00, MRI Information wrote:
> Usage interne: reply above this line.
Hello, the form is fine.
"""

QUOTE_IN_THE_MIDDLE = """\
Bonjour,

> Pouvez-vous confirmer la date ?

Oui, le 20 novembre.
Sophie
"""

ANNOUNCED_INLINE = """\
Bonjour, mes réponses sont en rouge dans le texte ci-dessous.

De : Marie Tremblay <marie.tremblay@gmail.com>
Envoyé : 3 novembre 2025 10:00
À : Renseignements MRI
Objet : Questions
"""

NOTHING_BUT_HISTORY = """\
-----Message d'origine-----
De : Renseignements MRI
Envoyé : 3 novembre 2025 10:00
Objet : [MRI-2025-00042]
"""

UNCERTAIN_CASES = [
    pytest.param(
        INTERNAL_MARKER_LEFT,
        ReplyText(
            text=INTERNAL_MARKER_LEFT.rstrip(),
            certain=False,
            cut_by="",
            doubts=("internal_marker",),
        ),
        id="internal-marker-left-in-kept-text",
    ),
    pytest.param(
        INLINE_REPLY,
        ReplyText(
            text="Voici les réponses.",
            certain=False,
            cut_by="attribution",
            doubts=("inline_reply",),
        ),
        id="inline-reply-between-quotes",
    ),
    pytest.param(
        BOTTOM_POSTED,
        ReplyText(
            text="",
            certain=False,
            cut_by="attribution",
            doubts=("text_below_quote", "nothing_to_relay"),
        ),
        id="bottom-posted-reply-leaves-nothing-above",
    ),
    pytest.param(
        QUOTE_IN_THE_MIDDLE,
        ReplyText(
            text="Bonjour,",
            certain=False,
            cut_by="quoted_block",
            doubts=("text_below_quote",),
        ),
        id="quote-in-the-middle-without-header",
    ),
    pytest.param(
        ANNOUNCED_INLINE,
        ReplyText(
            text="Bonjour, mes réponses sont en rouge dans le texte ci-dessous.",
            certain=False,
            cut_by="outlook_header_block",
            doubts=("answers_announced_inline",),
        ),
        id="answers-announced-in-red",
    ),
    pytest.param(
        NOTHING_BUT_HISTORY,
        ReplyText(
            text="",
            certain=False,
            cut_by="original_message_separator",
            doubts=("nothing_to_relay",),
        ),
        id="empty-new-text",
    ),
    pytest.param(
        "> Quelle est la date ?\nLe 30.\n> Et le lieu ?\nQuébec.\n",
        ReplyText(
            text="",
            certain=False,
            cut_by="quoted_block",
            doubts=("inline_reply", "nothing_to_relay"),
        ),
        id="inline-reply-from-the-first-line",
    ),
]


@pytest.mark.parametrize(("body", "expected"), UNCERTAIN_CASES)
def test_extract_new_text_uncertain(body: str, expected: ReplyText) -> None:
    assert extract_new_text(body, internal_markers=MARKERS) == expected


def test_internal_markers_match_across_case_accents_and_line_breaks() -> None:
    body = "Merci.\nREFERENCE\ninterne : 42\n"
    assert extract_new_text(body, internal_markers=MARKERS).doubts == ("internal_marker",)
    assert extract_new_text(body).certain is True  # no markers configured


def test_a_marker_below_the_cut_is_expected_history() -> None:
    assert extract_new_text(OUTLOOK_FR, internal_markers=MARKERS).certain is True


def test_rule_names_are_unique() -> None:
    names = [rule.name for rule in CUT_RULES] + [rule.name for rule in DOUBT_RULES]
    assert len(names) == len(set(names))


def test_reply_text_is_frozen() -> None:
    reply = extract_new_text("Bonjour")
    with pytest.raises(FrozenInstanceError):
        reply.text = "autre"  # type: ignore[misc]


# --- Commands -------------------------------------------------------------------------------

RECOGNISED = (
    "#fermer, #attente, #note, #assigner, #catégorie, #anglais, #entrevue, #comité, "
    "#conservation légale, #fin conservation légale, #incomplet, #complet, #fusionner, "
    "#réponse type, #référer, #libérer"
)
UNKNOWN_TAIL = (
    "Une ligne qui commence par « # » ou « / » en haut de la réponse est une commande : "
    "pour du texte, retirez le « # »."
)
DATE_FORMATS = "2025-11-20, 20/11/2025 ou 20 novembre 2025"
CATEGORIES = "renseignements, plainte, stage, coopération"
ASSIGN_EXAMPLE = "Exemple : « #assigner sophie.lavoie@mri.gouv.qc.ca »."


def command(name: CommandName, argument: str, line: str) -> Command:
    return Command(name=name, argument=argument, line=line)


COMMAND_LINES = [
    # fermer / close: marked by '#' or '/', any case, accents and punctuation
    ("#Fermer", command(CommandName.CLOSE, "", "#Fermer")),
    ("#fermer.", command(CommandName.CLOSE, "", "#fermer.")),
    ("#close", command(CommandName.CLOSE, "", "#close")),
    ("/FERMER", command(CommandName.CLOSE, "", "/FERMER")),
    ("# fermer", command(CommandName.CLOSE, "", "# fermer")),
    ("#Close:", command(CommandName.CLOSE, "", "#Close:")),
    ("  #fermer  ", command(CommandName.CLOSE, "", "#fermer")),
    # attente / hold: the reason is free text, with or without ':'
    (
        "#attente: il manque votre formulaire",
        command(
            CommandName.HOLD, "il manque votre formulaire", "#attente: il manque votre formulaire"
        ),
    ),
    (
        "#Attente\u00a0: il manque votre formulaire",
        command(
            CommandName.HOLD,
            "il manque votre formulaire",
            "#Attente\u00a0: il manque votre formulaire",
        ),
    ),
    (
        "#hold waiting for your signed form",
        command(
            CommandName.HOLD, "waiting for your signed form", "#hold waiting for your signed form"
        ),
    ),
    (
        "/attente pièce manquante",
        command(CommandName.HOLD, "pièce manquante", "/attente pièce manquante"),
    ),
    # note
    ("#Note", command(CommandName.NOTE, "", "#Note")),
    ("/note", command(CommandName.NOTE, "", "/note")),
    (
        "#note : le citoyen a appelé",
        command(CommandName.NOTE, "le citoyen a appelé", "#note : le citoyen a appelé"),
    ),
    # assigner / assign: an address, lower-cased; Outlook's "<mailto:...>" and "à" understood
    (
        "#assigner Marc.Gagnon@MRI.gouv.qc.ca",
        command(
            CommandName.ASSIGN,
            "marc.gagnon@mri.gouv.qc.ca",
            "#assigner Marc.Gagnon@MRI.gouv.qc.ca",
        ),
    ),
    (
        "#Assign: <marc.gagnon@mri.gouv.qc.ca>",
        command(
            CommandName.ASSIGN,
            "marc.gagnon@mri.gouv.qc.ca",
            "#Assign: <marc.gagnon@mri.gouv.qc.ca>",
        ),
    ),
    (
        "#assigner à marc.gagnon@mri.gouv.qc.ca",
        command(
            CommandName.ASSIGN,
            "marc.gagnon@mri.gouv.qc.ca",
            "#assigner à marc.gagnon@mri.gouv.qc.ca",
        ),
    ),
    (
        "#assign marc.gagnon@mri.gouv.qc.ca<mailto:marc.gagnon@mri.gouv.qc.ca>",
        command(
            CommandName.ASSIGN,
            "marc.gagnon@mri.gouv.qc.ca",
            "#assign marc.gagnon@mri.gouv.qc.ca<mailto:marc.gagnon@mri.gouv.qc.ca>",
        ),
    ),
    # catégorie / category: one word, normalised to a Category value
    ("#Catégorie : plainte", command(CommandName.CATEGORY, "complaint", "#Catégorie : plainte")),
    (
        "#categorie renseignements",
        command(CommandName.CATEGORY, "information", "#categorie renseignements"),
    ),
    ("#category internship", command(CommandName.CATEGORY, "internship", "#category internship")),
    ("#CATÉGORIE: Stage", command(CommandName.CATEGORY, "internship", "#CATÉGORIE: Stage")),
    (
        "#catégorie coopération",
        command(CommandName.CATEGORY, "cooperation", "#catégorie coopération"),
    ),
    ("/category: Complaint", command(CommandName.CATEGORY, "complaint", "/category: Complaint")),
    (
        "#category information",
        command(CommandName.CATEGORY, "information", "#category information"),
    ),
    (
        "#Catégorie : cooperation.",
        command(CommandName.CATEGORY, "cooperation", "#Catégorie : cooperation."),
    ),
    # anglais / english: the legal basis is free text
    (
        "#anglais: art. 22 de la Charte, demande d'une personne morale",
        command(
            CommandName.ENGLISH,
            "art. 22 de la Charte, demande d'une personne morale",
            "#anglais: art. 22 de la Charte, demande d'une personne morale",
        ),
    ),
    (
        "#english Charter s. 22",
        command(CommandName.ENGLISH, "Charter s. 22", "#english Charter s. 22"),
    ),
    # entrevue / interview and comité / committee: a date, normalised to ISO
    (
        "#entrevue 2025-11-20",
        command(CommandName.INTERVIEW, "2025-11-20", "#entrevue 2025-11-20"),
    ),
    (
        "#Interview: 20/11/2025",
        command(CommandName.INTERVIEW, "2025-11-20", "#Interview: 20/11/2025"),
    ),
    (
        "#Entrevue le 20 novembre 2025",
        command(CommandName.INTERVIEW, "2025-11-20", "#Entrevue le 20 novembre 2025"),
    ),
    (
        "#comité 1er décembre 2025",
        command(CommandName.COMMITTEE, "2025-12-01", "#comité 1er décembre 2025"),
    ),
    (
        "#Comite : 3 fevr. 2026",
        command(CommandName.COMMITTEE, "2026-02-03", "#Comite : 3 fevr. 2026"),
    ),
    (
        "/committee 2026-01-15",
        command(CommandName.COMMITTEE, "2026-01-15", "/committee 2026-01-15"),
    ),
]


@pytest.mark.parametrize(("line", "expected"), COMMAND_LINES)
def test_command_lines(line: str, expected: Command) -> None:
    assert read_command_line(line) == expected


# line, (code, argument, command), and the French the sender reads (templates/_refusal.j2).
COMMAND_ERRORS = [
    (
        "#fermerr",
        ("unknown_command", "fermerr", ""),
        f"Commande inconnue : « fermerr ». Commandes reconnues : {RECOGNISED}. {UNKNOWN_TAIL}",
    ),
    (
        "/urgent",
        ("unknown_command", "urgent", ""),
        f"Commande inconnue : « urgent ». Commandes reconnues : {RECOGNISED}. {UNKNOWN_TAIL}",
    ),
    (
        "#MRIF",
        ("unknown_command", "MRIF", ""),
        f"Commande inconnue : « MRIF ». Commandes reconnues : {RECOGNISED}. {UNKNOWN_TAIL}",
    ),
    (
        "#fermer maintenant",
        ("takes_no_argument", "maintenant", "close"),
        "La commande « #fermer » ne prend pas d'argument.",
    ),
    (
        "#Fermer : merci",
        ("takes_no_argument", "merci", "close"),
        "La commande « #fermer » ne prend pas d'argument.",
    ),
    (
        "#attente",
        ("missing_argument", "", "hold"),
        "La commande « #attente » demande un motif (il est transmis au "
        "citoyen). Syntaxe : « #attente : MOTIF ».",
    ),
    (
        "#hold:",
        ("missing_argument", "", "hold"),
        "La commande « #attente » demande un motif (il est transmis au "
        "citoyen). Syntaxe : « #attente : MOTIF ».",
    ),
    (
        "/anglais",
        ("missing_argument", "", "english"),
        "La commande « #anglais » demande le fondement légal de la réponse en "
        "anglais. Syntaxe : « #anglais : FONDEMENT ».",
    ),
    (
        "#assigner marc.gagnon",
        ("bad_address", "marc.gagnon", "assign"),
        f"Adresse illisible : « marc.gagnon ». {ASSIGN_EXAMPLE}",
    ),
    (
        "#assign x@y@mri.gouv.qc.ca",
        ("bad_address", "x@y@mri.gouv.qc.ca", "assign"),
        f"Adresse illisible : « x@y@mri.gouv.qc.ca ». {ASSIGN_EXAMPLE}",
    ),
    (
        "#assigner",
        ("missing_argument", "", "assign"),
        "La commande « #assigner » demande l'adresse du collègue. Syntaxe : « #assigner ADRESSE ».",
    ),
    (
        "#catégorie urgente",
        ("bad_category", "urgente", "category"),
        f"Catégorie inconnue : « urgente ». Catégories : {CATEGORIES}.",
    ),
    (
        "#Catégorie : plainte grave",
        ("bad_category", "plainte grave", "category"),
        f"Catégorie inconnue : « plainte grave ». Catégories : {CATEGORIES}.",
    ),
    (
        "#entrevue 2025-02-30",
        ("bad_date", "2025-02-30", "interview"),
        f"Date illisible : « 2025-02-30 ». Formats acceptés : {DATE_FORMATS}.",
    ),
    (
        "#entrevue 20/11/25",
        ("bad_date", "20/11/25", "interview"),
        f"Date illisible : « 20/11/25 ». Formats acceptés : {DATE_FORMATS}.",
    ),
    (
        "#comité 2025-11-20 à 14 h",
        ("bad_date", "2025-11-20 à 14 h", "committee"),
        f"Date illisible : « 2025-11-20 à 14 h ». Formats acceptés : {DATE_FORMATS}.",
    ),
    (
        "#entrevue jeudi prochain",
        ("bad_date", "jeudi prochain", "interview"),
        f"Date illisible : « jeudi prochain ». Formats acceptés : {DATE_FORMATS}.",
    ),
    (
        "#committee:",
        ("missing_argument", "", "committee"),
        f"La commande « #comité » demande une date ({DATE_FORMATS}). Syntaxe : « #comité DATE ».",
    ),
]
REFUSAL = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parents[2] / "templates")),
    undefined=jinja2.StrictUndefined,
).from_string('{% from "_refusal.j2" import refusal_fr %}{{ refusal_fr(problem) }}')


@pytest.mark.parametrize(("line", "expected", "french"), COMMAND_ERRORS)
def test_command_errors(line: str, expected: tuple[str, str, str], french: str) -> None:
    error = read_command_line(line)
    assert error == CommandError(line, *expected)
    assert REFUSAL.render(problem=error) == french


PROSE_LINES = [
    # Without '#' or '/', never a command (the first line of the text meets the safety net).
    "Fermer",
    "fermer",
    "Note : nos bureaux seront fermés le 24 décembre.",
    "attente: il manque votre formulaire",
    "catégorie plainte",
    "Note that the office is closed on Monday.",
    "Notez que nos bureaux sont fermés lundi.",
    "Fermer le dossier serait prématuré.",
    "Fermer. Merci de votre patience.",
    "Close to the deadline, we received your form.",
    "Attente de votre réponse depuis trois semaines.",
    "Hold on, we are checking your file.",
    "English version below.",
    "Anglais et français sont acceptés.",
    "Assigner un dossier prend du temps.",
    "Catégorie de la demande : à déterminer.",
    "Entrevue prévue la semaine prochaine.",
    "Interview scheduling is done by phone.",
    "Comité de sélection : nous vous écrirons.",
    "Bonjour Madame Tremblay,",
    "Objet : votre demande",
    "#123 est le numéro de votre dossier.",
    "#MRI-2025-00042 : suivi",
    "/s/ Sophie Lavoie",
    "https://www.mri.gouv.qc.ca/stages",
    "« Fermer »",
]


@pytest.mark.parametrize("line", PROSE_LINES)
def test_prose_is_not_a_command(line: str) -> None:
    assert read_command_line(line) is None


def test_commands_at_the_top_then_the_body() -> None:
    text = (
        "\n"
        "#Fermer\n"
        "/Catégorie : plainte\n"
        "\n"
        "#entrevue 20 novembre 2025\n"
        "Bonjour Madame Tremblay,\n"
        "\n"
        "Votre entrevue aura lieu le 20 novembre.\n"
        "fermer\n"
    )
    assert parse_commands(text) == StaffMessage(
        commands=(
            command(CommandName.CLOSE, "", "#Fermer"),
            command(CommandName.CATEGORY, "complaint", "/Catégorie : plainte"),
            command(CommandName.INTERVIEW, "2025-11-20", "#entrevue 20 novembre 2025"),
        ),
        errors=(),
        body="Bonjour Madame Tremblay,\n\nVotre entrevue aura lieu le 20 novembre.\nfermer",
    )


def test_errors_are_collected_and_parsing_goes_on() -> None:
    text = (
        "#fermerr\n#attente: pièce manquante\n#entrevue 31/11/2025\n\n"
        "Bonjour,\nIl manque une pièce."
    )
    message = parse_commands(text)
    assert message.commands == (
        command(CommandName.HOLD, "pièce manquante", "#attente: pièce manquante"),
    )
    assert [error.line for error in message.errors] == ["#fermerr", "#entrevue 31/11/2025"]
    assert message.body == "Bonjour,\nIl manque une pièce."


def test_english_prose_starting_with_note_is_the_body() -> None:
    text = "Note that your file is complete.\nFermer\n"
    assert parse_commands(text) == StaffMessage(
        commands=(), errors=(), body="Note that your file is complete.\nFermer"
    )


def test_an_unmarked_label_is_prose_that_reaches_the_citizen() -> None:
    # "Note :" followed by a sentence is text, written as it is: no command, nothing held.
    assert parse_commands("Note : nos bureaux seront fermés lundi.\n\nSophie") == StaffMessage(
        commands=(), errors=(), body="Note : nos bureaux seront fermés lundi.\n\nSophie"
    )


def test_a_marked_note_keeps_its_own_words() -> None:
    message = parse_commands("#note : le citoyen a appelé\n\nSophie")
    assert message.commands == (
        command(CommandName.NOTE, "le citoyen a appelé", "#note : le citoyen a appelé"),
    )
    assert message.body == "Sophie"


def test_repeated_commands_are_all_kept() -> None:
    message = parse_commands("#catégorie plainte\n#catégorie stage\n#fermer\n/fermer")
    assert [(item.name, item.argument) for item in message.commands] == [
        (CommandName.CATEGORY, "complaint"),
        (CommandName.CATEGORY, "internship"),
        (CommandName.CLOSE, ""),
        (CommandName.CLOSE, ""),
    ]
    assert message.body == ""


def test_no_commands_leaves_the_whole_text_as_body() -> None:
    assert parse_commands("  \nBonjour,\n\nVotre dossier est complet.\n\n") == StaffMessage(
        commands=(), errors=(), body="Bonjour,\n\nVotre dossier est complet."
    )


def test_empty_text() -> None:
    assert parse_commands("") == StaffMessage(commands=(), errors=(), body="")


def test_a_whole_reply_cut_then_parsed() -> None:
    reply = extract_new_text(
        "#attente: il manque votre formulaire signé\n"
        "Bonjour,\n"
        "Il nous manque votre formulaire signé.\n"
        "Sophie\n"
        "\n"
        "Le lun. 3 nov. 2025, à 10 h 00, Renseignements MRI <renseignements@mri.gouv.qc.ca>\n"
        "a écrit :\n"
        "> Usage interne\n"
        "> #fermer\n",
        internal_markers=MARKERS,
    )
    assert reply.certain is True
    message = parse_commands(reply.text)
    assert message.commands == (
        command(
            CommandName.HOLD,
            "il manque votre formulaire signé",
            "#attente: il manque votre formulaire signé",
        ),
    )
    assert message.body == "Bonjour,\nIl nous manque votre formulaire signé.\nSophie"
    assert message.errors == () and message.unmarked == ()


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2025-11-20", "2025-11-20"),
        ("2025-1-5", "2025-01-05"),
        ("20/11/2025", "2025-11-20"),
        ("5/1/2026", "2026-01-05"),
        ("20 novembre 2025", "2025-11-20"),
        ("le 20 Novembre 2025", "2025-11-20"),
        ("1er août 2026", "2026-08-01"),
        ("15 aout 2026", "2026-08-15"),
        ("3 déc. 2025", "2025-12-03"),
        ("29 février 2028", "2028-02-29"),
    ],
)
def test_parse_date(text: str, iso: str) -> None:
    parsed = parse_date(text)
    assert parsed is not None and parsed.isoformat() == iso


@pytest.mark.parametrize(
    "text",
    [
        "29 février 2025",
        "2025-13-01",
        "11/20/2025",
        "20 brumaire 2025",
        "20 novembre",
        "demain",
        "",
    ],
)
def test_parse_date_refuses(text: str) -> None:
    assert parse_date(text) is None


def test_every_command_is_in_the_help_staff_receive() -> None:
    help_text = (Path(__file__).parents[2] / "templates" / "command_help.txt").read_text()
    for spec in COMMANDS:
        called = [*spec.words, *(" ".join(phrase) for phrase in spec.phrases)]
        assert called[0] in fold(help_text)
        assert any(f"({name})" in help_text for name in (spec.name.value, *called))
