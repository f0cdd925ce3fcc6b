"""Token sources and OAuth2 settings. MSAL and google-auth run for real; only their HTTP is
answered by a fake transport mounted on a requests.Session, shaped like the providers'."""

from __future__ import annotations

import builtins
import json
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mailbot.errors import ConfigError, TokenError
from mailbot.settings import AuthSettings, parse_settings
from mailbot.transport.logins import choose_mechanism, oauthbearer_response
from mailbot.transport.oauth import AccessToken, CachedTokens, Grant, build_token_source
from tests.conftest import REPO

NOW = datetime(2025, 11, 3, 15, 0, tzinfo=UTC)
TENANT = "3f2c1a6e-8b4d-4e1f-9a7c-2d5e6f708192"
CLIENT = "0d3c6f1e-1111-4222-8333-944455556666"
SECRET = "good~secret~value"
MAILBOX = "renseignements@mri.gouv.qc.ca"

Route = Callable[[requests.PreparedRequest], tuple[int, dict[str, Any]]]


class FakeTransport(requests.adapters.BaseAdapter):
    """Answers requests the way the provider would; records what was asked."""

    def __init__(self, route: Route) -> None:
        super().__init__()
        self.route = route
        self.seen: list[requests.PreparedRequest] = []

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        self.seen.append(request)
        status, payload = self.route(request)
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(payload).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass


def session_with(transport: FakeTransport) -> requests.Session:
    session = requests.Session()
    session.mount("https://", transport)
    return session


def form(request: requests.PreparedRequest) -> dict[str, str]:
    body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
    return {key: values[0] for key, values in parse_qs(body).items()}


def auth(**values: str) -> AuthSettings:
    return AuthSettings.model_validate({"method": "oauth2", **values})


# --- the cache -------------------------------------------------------------------------------


def test_a_token_is_kept_until_shortly_before_it_expires_then_renewed() -> None:
    answers = iter(["first", "second", "third"])
    tokens = CachedTokens(lambda: Grant(next(answers), timedelta(hours=1)), "test")

    assert tokens.token(NOW) == AccessToken("first", NOW + timedelta(hours=1))
    assert tokens.token(NOW + timedelta(minutes=54)).value == "first"
    assert tokens.token(NOW + timedelta(minutes=55)).value == "second"  # 5 minutes' margin
    tokens.invalidate()
    assert tokens.token(NOW + timedelta(minutes=56)).value == "third"
    assert tokens.fetched == 3
    assert "first" not in repr(tokens.token(NOW)) + repr(tokens)  # never in a repr


def test_a_short_lived_token_is_renewed_at_three_quarters_of_its_life() -> None:
    answers = iter(["a", "b"])
    tokens = CachedTokens(lambda: Grant(next(answers), timedelta(seconds=4)), "test")
    assert tokens.token(NOW).value == "a"
    assert tokens.token(NOW + timedelta(seconds=2.9)).value == "a"
    assert tokens.token(NOW + timedelta(seconds=3)).value == "b"


@pytest.mark.parametrize(
    ("wanted", "offered", "chosen"),
    [
        ("auto", ["PLAIN", "XOAUTH2", "OAUTHBEARER"], "oauthbearer"),
        ("auto", ["xoauth2"], "xoauth2"),
        ("auto", [], "xoauth2"),
        ("xoauth2", ["OAUTHBEARER", "XOAUTH2"], "xoauth2"),
        ("oauthbearer", ["XOAUTH2"], "oauthbearer"),
    ],
)
def test_the_mechanism(wanted: Any, offered: list[str], chosen: str) -> None:
    assert choose_mechanism(wanted, offered) == chosen


def test_the_oauthbearer_response_follows_rfc_7628() -> None:
    token = AccessToken("abc", NOW)
    assert oauthbearer_response("a,b=c@x.org", token) == (
        b"n,a=a=2Cb=3Dc@x.org,\x01auth=Bearer abc\x01\x01"
    )


# --- Microsoft (MSAL) ------------------------------------------------------------------------


def microsoft_route(
    *, good_secret: str = SECRET, tenant: str = TENANT, certificate: Any = None
) -> tuple[Route, list[dict[str, str]]]:
    posts: list[dict[str, str]] = []
    token_url = f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"

    def route(request: requests.PreparedRequest) -> tuple[int, dict[str, Any]]:
        url = str(request.url)
        if "discovery/instance" in url:
            return 200, {
                "tenant_discovery_endpoint": f"https://login.microsoftonline.com/{tenant}"
                "/v2.0/.well-known/openid-configuration",
                "metadata": [],
            }
        if "openid-configuration" in url:
            if f"/{tenant}/" not in url:
                return 400, {
                    "error": "invalid_tenant",
                    "error_description": "AADSTS90002: Tenant 'wrong' not found. Check to make "
                    "sure you have the correct tenant ID.",
                    "error_codes": [90002],
                }
            return 200, {
                "token_endpoint": token_url,
                "authorization_endpoint": token_url.replace("token", "authorize"),
                "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
            }
        if url == token_url:
            fields = form(request)
            posts.append(fields)
            if certificate is not None:
                assertion = fields["client_assertion"]
                header = jwt.get_unverified_header(assertion)
                claims = jwt.decode(
                    assertion,
                    certificate.public_key(),
                    algorithms=["PS256", "RS256"],
                    audience=token_url,
                )
                good = claims["iss"] == CLIENT and "x5t#S256" in header
            else:
                good = fields.get("client_secret") == good_secret
            if not good:
                return 401, {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. "
                    "Ensure the secret being sent in the request is the client secret value, "
                    "not the client secret ID.\r\nTrace ID: 1\r\nTimestamp: 2025-11-03",
                    "error_codes": [7000215],
                }
            return 200, {"token_type": "Bearer", "expires_in": 3599, "access_token": "eyJ0.ms"}
        return 404, {"error": "not_found"}

    return route, posts


def test_microsoft_client_secret_gives_a_token_for_exchange_online() -> None:
    route, posts = microsoft_route()
    transport = FakeTransport(route)
    source = build_token_source(
        auth(provider="microsoft", tenant_id=TENANT, client_id=CLIENT, client_secret_env="S"),
        MAILBOX,
        {"S": SECRET},
        where="[imap.auth]",
        http_session=session_with(transport),
    )
    token = source.token(NOW)
    assert token == AccessToken("eyJ0.ms", NOW + timedelta(seconds=3599))
    assert source.description == f"https://login.microsoftonline.com/{TENANT}, client {CLIENT}"
    [post] = posts
    assert post["grant_type"] == "client_credentials"
    assert post["scope"] == "https://outlook.office365.com/.default"
    assert post["client_id"] == CLIENT
    # Renewal asks the provider again, never MSAL's own cache (it judges by the system clock).
    source.invalidate()
    source.token(NOW)
    assert len(posts) == 2


def test_microsoft_bad_secret_and_unknown_tenant_are_explained_without_the_secret() -> None:
    route, _posts = microsoft_route(good_secret="the-real-one")
    bad_secret = build_token_source(
        auth(provider="microsoft", tenant_id=TENANT, client_id=CLIENT, client_secret_env="S"),
        MAILBOX,
        {"S": SECRET},
        where="[imap.auth]",
        http_session=session_with(FakeTransport(route)),
    )
    with pytest.raises(TokenError) as refused:
        bad_secret.token(NOW)
    assert "invalid client secret" in str(refused.value)
    assert "(AADSTS7000215)" in str(refused.value) and SECRET not in str(refused.value)

    wrong_tenant = build_token_source(
        auth(provider="microsoft", tenant_id="wrong", client_id=CLIENT, client_secret_env="S"),
        MAILBOX,
        {"S": SECRET},
        where="[imap.auth]",
        http_session=session_with(FakeTransport(route)),
    )
    with pytest.raises(TokenError) as unknown:
        wrong_tenant.token(NOW)
    assert "unknown tenant" in str(unknown.value)


def make_certificate(directory: Path) -> tuple[Path, Path, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbot")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "mailbot.crt", directory / "mailbot.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, certificate


def test_microsoft_certificate_signs_a_client_assertion(tmp_path: Path) -> None:
    cert_path, key_path, certificate = make_certificate(tmp_path)
    route, posts = microsoft_route(certificate=certificate)
    source = build_token_source(
        auth(
            provider="microsoft",
            tenant_id=TENANT,
            client_id=CLIENT,
            certificate_file=str(cert_path),
            private_key_file=str(key_path),
        ),
        MAILBOX,
        {},
        where="[smtp.auth]",
        http_session=session_with(FakeTransport(route)),
    )
    assert source.token(NOW).value == "eyJ0.ms"
    assert posts[0]["client_assertion_type"].endswith("jwt-bearer")
    assert "client_secret" not in posts[0]


def test_a_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def without_msal(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "msal":
            raise ImportError("No module named 'msal'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_msal)
    with pytest.raises(ConfigError, match=r'pip install "mailbot\[microsoft\]"'):
        build_token_source(
            auth(provider="microsoft", tenant_id=TENANT, client_id=CLIENT, client_secret_env="S"),
            MAILBOX,
            {"S": SECRET},
            where="[imap.auth]",
        )


# --- Google (google-auth) --------------------------------------------------------------------

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


def service_account_file(directory: Path) -> tuple[Path, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = directory / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "mailbot-test",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "mailbot@mailbot-test.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": GOOGLE_TOKEN_URI,
            }
        )
    )
    return path, key


def google_route(key: rsa.RSAPrivateKey, delegated: bool = True) -> Route:
    def route(request: requests.PreparedRequest) -> tuple[int, dict[str, Any]]:
        assert str(request.url) == GOOGLE_TOKEN_URI
        fields = form(request)
        assert fields["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        claims = jwt.decode(
            fields["assertion"], key.public_key(), algorithms=["RS256"], audience=GOOGLE_TOKEN_URI
        )
        if claims["sub"] != MAILBOX:
            return 400, {"error": "invalid_grant", "error_description": "Invalid email or User ID"}
        if not delegated or claims["scope"] != "https://mail.google.com/":
            return 401, {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using "
                "this method, or client not authorized for any of the scopes requested.",
            }
        return 200, {"access_token": "ya29.test", "expires_in": 3599, "token_type": "Bearer"}

    return route


def test_google_service_account_acts_as_the_mailbox(tmp_path: Path) -> None:
    path, key = service_account_file(tmp_path)
    transport = FakeTransport(google_route(key))
    source = build_token_source(
        auth(provider="google", service_account_file=str(path)),
        MAILBOX,
        {},
        where="[imap.auth]",
        http_session=session_with(transport),
    )
    assert source.token(NOW) == AccessToken("ya29.test", NOW + timedelta(hours=1))
    assert "as renseignements@mri.gouv.qc.ca" in source.description


@pytest.mark.parametrize(
    ("subject", "delegated", "reason"),
    [
        ("nobody@mri.gouv.qc.ca", True, "does not exist in the Workspace domain"),
        (MAILBOX, False, "domain-wide delegation is not granted"),
    ],
)
def test_google_refusals_are_explained(
    tmp_path: Path, subject: str, delegated: bool, reason: str
) -> None:
    path, key = service_account_file(tmp_path)
    source = build_token_source(
        auth(provider="google", service_account_file=str(path)),
        subject,
        {},
        where="[imap.auth]",
        http_session=session_with(FakeTransport(google_route(key, delegated))),
    )
    with pytest.raises(TokenError, match=reason):
        source.token(NOW)


# --- settings --------------------------------------------------------------------------------


def document() -> dict[str, Any]:
    return tomllib.loads((REPO / "config" / "mailbot.toml").read_text())


def oauth_document(imap_auth: dict[str, Any]) -> dict[str, Any]:
    doc = document()
    doc["imap"]["auth"] = imap_auth
    for mailbox in doc["mailboxes"]:
        mailbox.pop("password_env")
    return doc


MICROSOFT = {
    "method": "oauth2",
    "provider": "microsoft",
    "tenant_id": TENANT,
    "client_id": CLIENT,
    "client_secret_env": "MAILBOT_MS_SECRET",
}


def test_an_oauth2_configuration_loads_and_relative_key_files_are_resolved(tmp_path: Path) -> None:
    settings = parse_settings(
        oauth_document(
            {"method": "oauth2", "provider": "google", "service_account_file": "keys/sa.json"}
        ),
        base_dir=tmp_path,
        environ={},
    )
    assert settings.imap.auth.service_account_file == tmp_path / "keys" / "sa.json"
    assert settings.imap.auth.scopes == ("https://mail.google.com/",)
    assert settings.smtp.auth.method == "password"  # the default stays
    microsoft = parse_settings(oauth_document(MICROSOFT), base_dir=tmp_path, environ={})
    assert microsoft.imap.auth.scopes == ("https://outlook.office365.com/.default",)


@pytest.mark.parametrize(
    ("imap_auth", "message"),
    [
        ({"method": "oauth2"}, 'needs provider = "microsoft", "google" or "generic"'),
        ({**MICROSOFT, "tenant_id": None}, "needs ['tenant_id']"),
        ({**MICROSOFT, "certificate_file": "a.crt", "private_key_file": "a.key"}, "one of the two"),
        ({k: v for k, v in MICROSOFT.items() if k != "client_secret_env"}, "either"),
        ({**MICROSOFT, "service_account_file": "sa.json"}, "are not used with provider"),
        ({"method": "password", "provider": "google"}, 'only apply with method = "oauth2"'),
        ({**MICROSOFT, "mechanism": "plain"}, "imap.auth.mechanism"),
        (
            {
                "method": "oauth2",
                "provider": "generic",
                "client_id": "x",
                "client_secret_env": "S",
                "token_endpoint": "http://idp.example/token",
            },
            "must be an https:// URL",
        ),
    ],
)
def test_a_bad_auth_section_is_refused_naming_the_key(
    imap_auth: dict[str, Any], message: str
) -> None:
    auth_section = {k: v for k, v in imap_auth.items() if v is not None}
    with pytest.raises(ConfigError) as refused:
        parse_settings(oauth_document(auth_section), base_dir=Path("/"), environ={})
    assert "imap.auth" in str(refused.value)
    assert message in str(refused.value)


def test_passwords_and_oauth2_do_not_mix() -> None:
    doc = document()
    doc["imap"]["auth"] = MICROSOFT  # mailboxes still name password variables
    with pytest.raises(ConfigError, match="password_env is not used with"):
        parse_settings(doc, base_dir=Path("/"), environ={})
    doc = document()
    doc["smtp"]["auth"] = MICROSOFT  # no [smtp] username
    with pytest.raises(ConfigError, match=r"needs \[smtp\] username"):
        parse_settings(doc, base_dir=Path("/"), environ={})


def test_exchange_online_staff_mode_needs_the_tenant_id() -> None:
    doc = document()
    doc["organisation"]["staff_authentication"] = "exchange_online"
    with pytest.raises(ConfigError, match="needs tenant_id"):
        parse_settings(doc, base_dir=Path("/"), environ={})
    doc["organisation"]["tenant_id"] = TENANT
    settings = parse_settings(doc, base_dir=Path("/"), environ={})
    assert settings.organisation.staff_authentication == "exchange_online"
