"""The new text of a staff reply as a specification: literal bodies in the shapes of the common
mail clients, the text above the quoted history out.

The reply bodies are our own, written in the shapes of public samples (mailgun/talon
standard_replies, alfonsrv/mail-parser-reply email_fr_wrap, zapier/email-reply-parser);
nothing is copied from them.
"""

from __future__ import annotations

import pytest

from mailbot.mail.quotes import ReplyText, extract_new_text

# The internal markers configured in the tests: a line staff keep out of the citizen's reply.
MARKERS = ("Usage interne", "Référence interne")

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
