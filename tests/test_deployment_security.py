"""What the compose set-up exposes, and how: one public proxy over HTTPS, secrets kept out.

docker-compose.yml is not started here (no Docker engine on these machines): its files are read,
and what can run here (the Twilio signature behind nginx, the read-only role) is run.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from twilio.request_validator import RequestValidator

from channels.twilio_sms import TwilioSmsInput, posted_params
from scripts.assistant_servers import REPO_ROOT, scratch_postgres_database

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
NGINX = (REPO_ROOT / "deploy" / "nginx.conf").read_text()


def server_blocks(config: str) -> list[str]:
    """The text of each top-level ``server { ... }`` block."""
    blocks, depth, start = [], 0, None
    for match in re.finditer(r"server\s*\{|\{|\}", config):
        token = match.group(0)
        if token.startswith("server") and depth == 0:
            start, depth = match.start(), 1
        elif token == "{" and start is not None:
            depth += 1
        elif token == "}" and start is not None:
            depth -= 1
            if depth == 0:
                blocks.append(config[start : match.end()])
                start = None
    return blocks


def location_block(server: str, path: str) -> str:
    match = re.search(r"location " + re.escape(path) + r" \{(.*?)\n    \}", server, re.S)
    assert match, path
    return match.group(1)


def test_only_the_proxy_publishes_ports_and_the_rest_are_on_the_internal_network() -> None:
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == {"proxy"}
    assert COMPOSE["networks"]["internal"]["internal"] is True
    for name, service in SERVICES.items():
        networks = service.get("networks") or COMPOSE["x-assistant"]["networks"]
        assert "internal" in networks, name
        assert name == "proxy" or "edge" not in networks, name
        # Only the senders of texts go out (to Twilio's API): the outreach worker, and Rasa for
        # staff messages during an SMS takeover. Neither publishes a port.
        assert name in {"outreach-worker", "rasa"} or "egress" not in networks, name


def test_plain_http_only_redirects_and_https_sends_hsts() -> None:
    plain, secure = server_blocks(NGINX)
    assert "listen 80;" in plain
    assert re.sub(r"\s+", " ", plain).count("return 301 https://$host$request_uri;") == 1
    assert "proxy_pass" not in plain
    assert "listen 443 ssl;" in secure
    assert 'Strict-Transport-Security "max-age=31536000; includeSubDomains" always' in secure


def test_the_chat_and_sign_in_are_rate_limited_by_address_in_nginx() -> None:
    _, secure = server_blocks(NGINX)
    assert "limit_req zone=chat" in location_block(secure, "/socket.io/")
    assert "limit_req zone=staff_login" in location_block(secure, "= /staff/login")
    assert "limit_req_status 429;" in NGINX


def test_a_twilio_post_signed_for_the_https_address_passes_behind_nginx() -> None:
    """nginx's own headers for the webhook, as it sends them for an https request."""
    _, secure = server_blocks(NGINX)
    host, token = "chat.example-clinic.org", "a-twilio-auth-token"
    variables = {"$scheme": "https", "$host": host, "$proxy_add_x_forwarded_for": "203.0.113.9"}
    headers = {
        name: variables.get(value, value)
        for name, value in re.findall(
            r"proxy_set_header (\S+) (\S+);", location_block(secure, "/webhooks/twilio/")
        )
    }
    params = {"From": "+12015550123", "Body": "does an hsg hurt", "MessageSid": "SM1"}
    signature = RequestValidator(token).compute_signature(
        f"https://{host}/webhooks/twilio/webhook", params
    )
    request = SimpleNamespace(
        headers={
            **headers,
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
        scheme="http",  # nginx talks plain HTTP to Rasa on the internal network
        host="rasa:5005",
        path="/webhooks/twilio/webhook",
        query_string="",
        body=urlencode(params).encode(),
    )
    channel = TwilioSmsInput(auth_token=token)

    assert headers["X-Forwarded-Proto"] == "https"
    assert channel.is_signed_by_twilio(request, posted_params(request))


def test_rasa_in_production_has_no_rest_channel_and_no_open_http_api() -> None:
    command = SERVICES["rasa"]["command"]
    credentials_file = command[command.index("--credentials") + 1]
    channels = yaml.safe_load((REPO_ROOT / credentials_file).read_text())
    assert not any("rest" in name.lower() for name in channels), channels
    for name, service in SERVICES.items():
        arguments = service.get("command") or []
        if "--enable-api" in arguments:
            assert "--auth-token" in arguments, name


def test_the_action_server_requires_the_secret_rasa_sends() -> None:
    endpoints = yaml.safe_load((REPO_ROOT / "endpoints.production.yml").read_text())
    assert endpoints["action_endpoint"]["headers"] == {
        "X-Action-Server-Token": "${ACTION_SERVER_TOKEN}"
    }
    assert SERVICES["actions"]["command"][:3] == ["python", "-m", "action_server"]
    assert "ACTION_SERVER_TOKEN" in COMPOSE["x-assistant"]["environment"]


def test_secrets_stay_out_of_the_docker_image() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for pattern in (".env", ".env.*", "var/", "deploy/certs/"):
        assert pattern in ignored, pattern


def test_behind_the_proxy_the_servers_trust_exactly_one_proxy() -> None:
    assert SERVICES["rasa"]["environment"]["SANIC_PROXIES_COUNT"] == "1"
    assert SERVICES["web"]["environment"]["PROXY_COUNT"] == "1"


def test_the_web_apps_tracker_role_can_read_conversations_and_change_nothing() -> None:
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        pytest.skip("TEST_DATABASE_URL is not set; the PostgreSQL role test runs in CI")
    reader = f"hsg_reader_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    try:
        with scratch_postgres_database(server_url) as database_url:
            check_reader_role(database_url, reader, password)
    finally:
        # The role's grants went with the scratch database; the role itself is cluster-wide.
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT", future=True)
        with admin.connect() as connection:
            connection.execute(text(f'DROP ROLE IF EXISTS "{reader}"'))
        admin.dispose()


def check_reader_role(database_url: str, reader: str, password: str) -> None:
    """Applies deploy/tracker-reader.sql as the owner, then tries everything as the reader."""
    url = make_url(database_url)
    owner_name = url.username or "postgres"
    owner = create_engine(database_url, future=True)
    with owner.begin() as connection:
        connection.execute(text("CREATE TABLE events (id serial, data text)"))
    subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", "-h", url.host or "127.0.0.1"]
        + ["-p", str(url.port or 5432), "-U", owner_name, "-d", url.database]
        + ["-v", f"reader={reader}", "-v", f"reader_password={password}"]
        + ["-v", f"owner={owner_name}", "-f", str(REPO_ROOT / "deploy/tracker-reader.sql")],
        check=True,
        capture_output=True,
    )
    with owner.begin() as connection:
        # Created after the grant, as Rasa creates its table on first start.
        connection.execute(text("CREATE TABLE later (id serial, data text)"))
        connection.execute(text("INSERT INTO events (data) VALUES ('hello')"))
    owner.dispose()
    reader_engine = create_engine(url.set(username=reader, password=password), future=True)
    try:
        with reader_engine.connect() as connection:
            assert connection.execute(text("SELECT data FROM events")).scalars().all() == ["hello"]
            assert connection.execute(text("SELECT count(*) FROM later")).scalar_one() == 0
        for statement in (
            "INSERT INTO events (data) VALUES ('forged')",
            "DELETE FROM events",
            "UPDATE events SET data = 'x'",
            "CREATE TABLE mine (id int)",
        ):
            with pytest.raises(ProgrammingError), reader_engine.begin() as connection:
                connection.execute(text(statement))
    finally:
        reader_engine.dispose()
