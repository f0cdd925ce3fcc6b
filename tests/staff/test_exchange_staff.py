"""Staff replies on Exchange Online: recognised by the organisation headers Exchange stamps,
held whenever anything about them is doubtful (header blocks shaped like real messages)."""

from __future__ import annotations

import email
import email.policy

import pytest

from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import Settings
from mailbot.staff.exchange import check_exchange_origin
from tests.conftest import AppFactory
from tests.intake.test_spine import INFO, office
from tests.staff.test_staff_server import citizen_replies, event_kinds, open_ticket, staff_reply

TENANT = "3f2c1a6e-8b4d-4e1f-9a7c-2d5e6f708192"
OTHER_TENANT = "9e8d7c6b-5a49-4382-b1a0-f9e8d7c6b5a4"

# A reply an agent sent from Outlook inside the tenant to a mailbox of the same tenant.
INSIDE = (
    "Received: from YT3PR01MB9171.CANPRD01.PROD.OUTLOOK.COM (2603:10b6:b01:b2::12) by\r\n"
    " YT2PR01MB8838.CANPRD01.PROD.OUTLOOK.COM with HTTPS; Tue, 4 Nov 2025 14:00:01 +0000\r\n"
    "Authentication-Results: dkim=none (message not signed) header.d=none;dmarc=none\r\n"
    " action=none header.from=mri.gouv.qc.ca;\r\n"
    "X-MS-Exchange-Organization-SCL: -1\r\n"
    "X-MS-Exchange-Organization-AuthSource: YT3PR01MB9171.CANPRD01.PROD.OUTLOOK.COM\r\n"
    "X-MS-Exchange-Organization-AuthAs: Internal\r\n"
    "X-MS-Exchange-Organization-AuthMechanism: 04\r\n"
    "X-MS-Exchange-Organization-Network-Message-Id: 5f0a2c1e-7b3d-4c8e-a9f0-1b2c3d4e5f60\r\n"
    "X-MS-Exchange-CrossTenant-Network-Message-Id: 5f0a2c1e-7b3d-4c8e-a9f0-1b2c3d4e5f60\r\n"
    "X-MS-Exchange-CrossTenant-originalarrivaltime: 04 Nov 2025 14:00:00.8110 (UTC)\r\n"
    "X-MS-Exchange-CrossTenant-fromentityheader: Hosted\r\n"
    f"X-MS-Exchange-CrossTenant-id: {TENANT}\r\n"
    "X-MS-Exchange-CrossTenant-AuthAs: Internal\r\n"
    "X-MS-Exchange-CrossTenant-AuthSource: YT3PR01MB9171.CANPRD01.PROD.OUTLOOK.COM\r\n"
    "X-MS-Exchange-CrossTenant-mailboxtype: HOSTED\r\n"
    "X-MS-Exchange-Transport-CrossTenantHeadersStamped: YT2PR01MB8838\r\n"
)

# Mail from the Internet as Exchange Online delivers it: stamped Anonymous by the service.
FROM_INTERNET = (
    "Received: from mail.attacker.example (203.0.113.7) by\r\n"
    " YT1PEPF00001234.mail.protection.outlook.com (10.167.1.2) with Microsoft SMTP Server;\r\n"
    " Tue, 4 Nov 2025 14:00:01 +0000\r\n"
    "Authentication-Results: spf=pass (sender IP is 203.0.113.7)\r\n"
    " smtp.mailfrom=attacker.example; dkim=none (message not signed) header.d=none;\r\n"
    " dmarc=fail action=none header.from=mri.gouv.qc.ca;compauth=fail reason=000\r\n"
    "X-MS-Exchange-Organization-SCL: 5\r\n"
    "X-MS-Exchange-Organization-AuthSource: YT1PEPF00001234.CANPRD01.PROD.OUTLOOK.COM\r\n"
    "X-MS-Exchange-Organization-AuthAs: Anonymous\r\n"
    "X-MS-Exchange-CrossTenant-fromentityheader: Internet\r\n"
    f"X-MS-Exchange-CrossTenant-id: {TENANT}\r\n"
    "X-MS-Exchange-CrossTenant-AuthAs: Anonymous\r\n"
    "X-MS-Exchange-CrossTenant-AuthSource: YT1PEPF00001234.CANPRD01.PROD.OUTLOOK.COM\r\n"
)

# What the outside sender wrote into their own message, hoping to pass as internal.
FORGED = (
    "X-MS-Exchange-Organization-AuthAs: Internal\r\n"
    "X-MS-Exchange-Organization-AuthMechanism: 04\r\n"
    "X-MS-Exchange-CrossTenant-AuthAs: Internal\r\n"
)

# A user of another Microsoft 365 tenant: internal there, anonymous here.
OTHER_TENANT_MAIL = (
    "Received: from YQBPR0101MB5678.CANPRD01.PROD.OUTLOOK.COM (2603:10b6:c01:1::1) by\r\n"
    " YT2PR01MB8838.CANPRD01.PROD.OUTLOOK.COM with HTTPS; Tue, 4 Nov 2025 14:00:01 +0000\r\n"
    "X-MS-Exchange-Organization-AuthSource: YT2PR01MB8838.CANPRD01.PROD.OUTLOOK.COM\r\n"
    "X-MS-Exchange-Organization-AuthAs: Anonymous\r\n"
    "X-MS-Exchange-CrossTenant-fromentityheader: Hosted\r\n"
    f"X-MS-Exchange-CrossTenant-id: {OTHER_TENANT}\r\n"
    "X-MS-Exchange-CrossTenant-AuthAs: Internal\r\n"
    "X-MS-Exchange-CrossTenant-AuthSource: YQBPR0101MB5678.CANPRD01.PROD.OUTLOOK.COM\r\n"
)


def headers_of(block: str) -> list[tuple[str, str]]:
    message = email.message_from_string(block + "\r\n", policy=email.policy.default)
    return [(name.lower(), " ".join(str(value).split())) for name, value in message.items()]


def test_a_message_sent_inside_the_tenant_passes() -> None:
    verdict = check_exchange_origin(headers_of(INSIDE), TENANT)
    assert verdict.passed, verdict.reasons
    assert verdict.reasons == (
        f"exchange online: AuthAs Internal in tenant {TENANT} via "
        "YT3PR01MB9171.CANPRD01.PROD.OUTLOOK.COM",
    )


@pytest.mark.parametrize(
    ("block", "tenant", "reason"),
    [
        (FROM_INTERNET, TENANT, "x-ms-exchange-organization-authas is 'Anonymous', not Internal"),
        (FROM_INTERNET, TENANT, "no x-ms-exchange-organization-authmechanism header"),
        (FROM_INTERNET + FORGED, TENANT, "2 x-ms-exchange-organization-authas headers"),
        (FORGED + FROM_INTERNET, TENANT, "2 x-ms-exchange-crosstenant-authas headers"),
        (OTHER_TENANT_MAIL, TENANT, f"from another tenant ({OTHER_TENANT})"),
        (OTHER_TENANT_MAIL, TENANT, "x-ms-exchange-organization-authas is 'Anonymous'"),
        (INSIDE, OTHER_TENANT, f"from another tenant ({TENANT})"),
        (INSIDE.replace("AuthAs: Internal", "AuthAs: Partner"), TENANT, "is 'Partner'"),
        (INSIDE + INSIDE, TENANT, "2 x-ms-exchange-crosstenant-id headers"),
        (
            INSIDE.replace("X-MS-Exchange-CrossTenant-id", "X-Other"),
            TENANT,
            "no x-ms-exchange-crosstenant-id header",
        ),
        ("From: a@mri.gouv.qc.ca\r\n", TENANT, "no x-ms-exchange-organization-authas header"),
        (INSIDE, "", "no tenant_id configured"),
    ],
)
def test_anything_doubtful_is_held(block: str, tenant: str, reason: str) -> None:
    verdict = check_exchange_origin(headers_of(block), tenant)
    assert not verdict.passed
    assert any(reason in item for item in verdict.reasons), verdict.reasons


@pytest.fixture
def exchange_settings(settings: Settings) -> Settings:
    organisation = settings.organisation.model_copy(
        update={"staff_authentication": "exchange_online", "tenant_id": TENANT}
    )
    return settings.model_copy(update={"organisation": organisation})


@pytest.mark.server
def test_a_reply_from_inside_the_tenant_is_relayed(
    sandbox: Sandbox, make_app: AppFactory, exchange_settings: Settings
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    sandbox.deliver(
        INFO,
        staff_reply(notice, "Bonjour Madame,\r\n\r\nVoici la réponse.", auth=INSIDE),
        received_at=office("2025-11-04T09:00"),
    )
    app = make_app("2025-11-04T09:05:00-05:00", exchange_settings)
    assert run_pass(app).ok
    [relayed] = citizen_replies(sandbox)
    assert b"Voici la r" in relayed
    assert "message_held" not in event_kinds(app)


@pytest.mark.server
@pytest.mark.parametrize(
    "block", [FROM_INTERNET + FORGED, FORGED + FROM_INTERNET, OTHER_TENANT_MAIL, INSIDE + FORGED]
)
def test_a_reply_from_outside_or_another_tenant_is_held(
    sandbox: Sandbox, make_app: AppFactory, exchange_settings: Settings, block: str
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    sandbox.deliver(
        INFO,
        staff_reply(notice, "Bonjour Madame,\r\n\r\nVoici la réponse.", auth=block),
        received_at=office("2025-11-04T09:00"),
    )
    app = make_app("2025-11-04T09:05:00-05:00", exchange_settings)
    assert run_pass(app).ok
    assert citizen_replies(sandbox) == []
    assert "message_held" in event_kinds(app)


@pytest.mark.server
def test_the_authentication_results_mode_stays_the_default(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    # Exchange's headers mean nothing in the default mode: its own verdict has no server id.
    _app, notice = open_ticket(sandbox, make_app)
    sandbox.deliver(
        INFO,
        staff_reply(notice, "Bonjour Madame,\r\n\r\nVoici la réponse.", auth=INSIDE),
        received_at=office("2025-11-04T09:00"),
    )
    app = make_app("2025-11-04T09:05:00-05:00")
    assert run_pass(app).ok
    assert citizen_replies(sandbox) == []
    assert "message_held" in event_kinds(app)
