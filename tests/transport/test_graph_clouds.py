"""Microsoft Graph's national clouds, and the settings [graph] makes useless. Each deployment is
read from `base_url` (or named by `cloud`); what its reference pages say it lacks is done
another way (a listing for the delta query), or said plainly (erasure without
permanentDelete, attachments without upload sessions)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from mailbot.ops.passes import run_pass
from mailbot.privacy.erasure import erase_requester
from mailbot.settings import (
    AuthSettings,
    DatabaseSettings,
    GraphSettings,
    Settings,
    graph_cloud_of,
    journal_over_graph,
    parse_settings,
)
from mailbot.transport.graph_check import deployment_lines, erasure_note
from tests.conftest import REPO, AppFactory
from tests.graph_server import RECOVERABLE, TENANT, GraphServer
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office
from tests.transport.test_graph import acknowledgements, graph_settings
from tests.transport.test_graph_process import mailbot, write_graph_config

MICROSOFT = AuthSettings(
    method="oauth2", provider="microsoft", tenant_id=TENANT, client_id="c", client_secret_env="S"
)


@pytest.mark.parametrize(
    ("base_url", "cloud", "login"),
    [
        ("https://graph.microsoft.com/v1.0", "global", "login.microsoftonline.com"),
        ("https://graph.microsoft.us/v1.0", "us_gov_l4", "login.microsoftonline.us"),
        ("https://dod-graph.microsoft.us/v1.0", "us_gov_l5", "login.microsoftonline.us"),
        ("https://microsoftgraph.chinacloudapi.cn/v1.0", "china", "login.chinacloudapi.cn"),
    ],
)
def test_the_deployment_is_read_from_base_url_with_its_scope_and_login(
    base_url: str, cloud: str, login: str
) -> None:
    graph = GraphSettings(auth=MICROSOFT, base_url=base_url)
    assert graph.deployment.name == cloud
    host = base_url.split("/")[2]
    assert graph.scopes == (f"https://{host}/.default",)
    assert graph.token_auth.authority_host == login
    assert graph.token_auth.scope == f"https://{host}/.default"


def test_a_written_login_host_or_scope_is_kept_and_another_host_is_global() -> None:
    auth = MICROSOFT.model_copy(
        update={"authority_host": "login.partner.microsoftonline.cn", "scope": "x/.default"}
    )
    graph = GraphSettings(auth=auth, base_url="https://microsoftgraph.chinacloudapi.cn/v1.0")
    assert graph.token_auth.authority_host == "login.partner.microsoftonline.cn"
    assert graph.scopes == ("x/.default",)
    assert graph_cloud_of("https://graph-proxy.example.org/v1.0") is None
    proxy = GraphSettings(auth=MICROSOFT, base_url="https://graph-proxy.example.org/v1.0")
    assert proxy.deployment.name == "global"
    named = proxy.model_copy(update={"cloud": "us_gov_l5"})
    assert named.deployment.name == "us_gov_l5"
    assert named.scopes == ("https://dod-graph.microsoft.us/.default",)


def test_check_says_what_each_deployment_lacks() -> None:
    def said(base_url: str) -> str:
        return "\n".join(deployment_lines(GraphSettings(auth=MICROSOFT, base_url=base_url)))

    global_ = said("https://graph.microsoft.com/v1.0")
    assert "warn" not in global_ and "assumed" not in global_
    proxy = said("https://graph-proxy.example.org/v1.0")
    assert "the global service" in proxy and "assumed for graph-proxy.example.org" in proxy
    us = said("https://graph.microsoft.us/v1.0")
    assert "no permanentDelete in US Government L4" in us
    assert "Recoverable Items" in us and "no upload sessions" in us
    assert "no delta query" not in us
    china = said("https://microsoftgraph.chinacloudapi.cn/v1.0")
    assert "no permanentDelete in China operated by 21Vianet" in china
    assert "no delta query for messages" in china and "no upload sessions" not in china


def example_with_graph(**graph: Any) -> dict[str, Any]:
    document: dict[str, Any] = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    document["graph"] = {
        "auth": {
            "method": "oauth2",
            "provider": "microsoft",
            "tenant_id": TENANT,
            "client_id": "c",
            "client_secret_env": "S",
        },
        **graph,
    }
    return document


def test_every_setting_graph_ignores_is_named(tmp_path: Path) -> None:
    document = example_with_graph()
    document["graph"]["auth"]["mechanism"] = "xoauth2"
    document["smtp"]["bounce_address"] = "rebonds@mri.gouv.qc.ca"
    document["daemon"] = {"idle": False, "idle_renew_minutes": 5, "fetch_batch_bytes": 4096}
    info = document["mailboxes"][0]
    info.update(login="autre@mri.gouv.qc.ca", sent_copy="append", sent_folder="Envoyés")
    ignored = parse_settings(document, base_dir=tmp_path, environ={}).ignored_under_graph
    named = [setting.split(" (")[0] for setting in ignored]
    assert named == [
        "[imap]",
        "[smtp]",
        "[smtp] bounce_address",
        "[daemon] idle",
        "[daemon] idle_renew_minutes",
        "[daemon] fetch_batch_bytes",
        "[graph.auth] mechanism",
        "[[mailboxes]] renseignements password_env",
        "[[mailboxes]] renseignements login",
        '[[mailboxes]] renseignements sent_copy = "append"',
        "[[mailboxes]] renseignements sent_folder",
        "[[mailboxes]] plaintes password_env",
    ]


def test_a_graph_configuration_with_nothing_useless_names_nothing(tmp_path: Path) -> None:
    document = example_with_graph()
    del document["imap"], document["smtp"], document["daemon"]
    for mailbox in document["mailboxes"]:
        for key in ("password_env", "sent_copy", "sent_folder"):
            mailbox.pop(key, None)
    settings = parse_settings(document, base_dir=tmp_path, environ={})
    assert settings.ignored_under_graph == ()


# --- against the local Graph, playing a national cloud -----------------------------------------


@pytest.fixture
def settings_graph(
    base_settings: Settings, graph: GraphServer, tmp_path: Path, database_url: str
) -> Settings:
    for mailbox in base_settings.mailboxes:
        graph.register(mailbox.address)
    return base_settings.model_copy(
        update={
            "graph": graph_settings(graph),
            "mailboxes": journal_over_graph(base_settings.mailboxes),
            "data_dir": tmp_path / "data",
            "database": DatabaseSettings(url=database_url),
        }
    )


def in_cloud(settings: Settings, cloud: str) -> Settings:
    assert settings.graph is not None
    return settings.model_copy(update={"graph": settings.graph.model_copy(update={"cloud": cloud})})


def test_without_permanent_delete_erasure_deletes_and_says_the_copy_stays_recoverable(
    graph: GraphServer, graph_app: AppFactory, settings_graph: Settings
) -> None:
    graph.offers_permanent_delete = False
    graph.offers_upload_sessions = False
    us = in_cloud(settings_graph, "us_gov_l4")
    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    assert run_pass(graph_app("2025-11-03T10:01:00-05:00", us)).ok
    app = graph_app("2025-11-10T10:00:00-05:00", us)
    report = erase_requester(app, CITIZEN, "demande d'effacement", "test")
    assert report.copies_deleted == 1
    assert graph.folder(INFO, "Traites") == []
    # DELETE, the only deletion there: the copy waits in the dumpster for its retention.
    assert len(graph.folder(INFO, RECOVERABLE)) == 1
    assert graph.count("POST", r"/permanentDelete$") == 0
    assert us.graph is not None
    assert "stays in its mailbox's Recoverable Items" in erasure_note(us.graph)


def test_without_the_delta_query_the_watched_folder_is_listed_at_each_pass(
    graph: GraphServer, graph_app: AppFactory, settings_graph: Settings
) -> None:
    graph.offers_message_delta = False
    graph.offers_permanent_delete = False
    china = in_cloud(settings_graph, "china")
    graph.deliver(INFO, citizen_request(), at=office("2025-11-03T10:00"))
    assert run_pass(graph_app("2025-11-03T10:01:00-05:00", china)).ok
    graph.deliver(
        INFO,
        citizen_request("<req-2@example.org>", sender="autre@example.org"),
        at=office("2025-11-03T10:02"),
    )
    assert run_pass(graph_app("2025-11-03T10:03:00-05:00", china)).ok
    assert run_pass(graph_app("2025-11-03T10:04:00-05:00", china)).ok
    assert len(acknowledgements(graph)) == 1
    assert len(acknowledgements(graph, "autre@example.org")) == 1
    assert graph.count("GET", r"/messages/delta$") == 0
    assert graph.folder(INFO, "Inbox") == []


def test_check_and_erase_say_plainly_what_the_deployment_cannot_do(
    graph: GraphServer, tmp_path: Path
) -> None:
    graph.offers_permanent_delete = False
    graph.offers_upload_sessions = False
    config = write_graph_config(tmp_path / "mailbot.toml", graph, tmp_path / "data")
    document = tomllib.loads(config.read_text())
    document["graph"]["cloud"] = "us_gov_l4"
    config.write_text(tomli_w.dumps(document))
    checked = mailbot(config, graph, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok   graph deployment: US Government L4 (GCC High)" in checked.stdout
    assert "warn no permanentDelete in US Government L4" in checked.stdout
    assert "warn no upload sessions here" in checked.stdout
    graph.deliver(INFO, citizen_request())
    assert mailbot(config, graph, "run", "--once").returncode == 0
    erased = mailbot(config, graph, "erase", "--requester", CITIZEN, "--reason", "D-2025-7")
    assert erased.returncode == 0, erased.stderr
    assert "mail store: no permanentDelete in US Government L4" in erased.stdout
    assert "Recoverable Items" in erased.stdout
