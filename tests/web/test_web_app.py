"""The web app without a browser: the clinic page, its widget settings and its security headers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask

from clinic.settings import load_clinic_settings
from web import clinic_page
from web.app import create_app

REPO_ROOT = Path(__file__).resolve().parents[2]
RASA_URL = "https://chat.clinic.example.org"
THIRD_PARTY_FONT_HOSTS = re.compile(r"fonts\.(googleapis|gstatic)\.com")


class ResourceCollector(HTMLParser):
    """Every URL the page itself asks the browser to load (scripts, styles, images)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag in ("script", "img", "iframe") and attributes.get("src"):
            self.urls.append(attributes["src"])
        if tag == "link" and attributes.get("href"):
            self.urls.append(attributes["href"])


@pytest.fixture
def app() -> Flask:
    return create_app({"TESTING": True, "RASA_PUBLIC_URL": RASA_URL})


@pytest.fixture
def widget_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The page as it is once `make setup` has copied the widget (a stand-in file here)."""
    bundle = tmp_path / "rasa-webchat.js"
    bundle.write_text("window.WebChat = {default: function () {}};")
    monkeypatch.setattr(clinic_page, "WIDGET_BUNDLE", bundle)


def test_the_page_shows_the_clinics_article(app: Flask) -> None:
    page = app.test_client().get("/")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<h1>The Ins and Outs of Hysterosalpingograms</h1>" in html
    assert "<h2>What are the benefits and risks of the procedure?</h2>" in html
    assert "Fill out the form on this page" in html
    assert "outdated web browser" not in html


def test_the_page_says_in_one_line_not_to_share_emergencies_and_gives_the_phone(
    app: Flask,
) -> None:
    phone = load_clinic_settings().phone

    html = app.test_client().get("/").get_data(as_text=True)

    notice = re.search(r'<p class="emergency-notice"[^>]*>(.*?)</p>', html, flags=re.DOTALL)
    assert notice is not None
    assert "\n" not in notice.group(1)
    assert "emergencies" in notice.group(1)
    assert "911" in notice.group(1)
    assert phone in notice.group(1)


def test_the_clinic_details_come_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, app: Flask
) -> None:
    monkeypatch.setenv("CLINIC_NAME", "Test Imaging Center")
    monkeypatch.setenv("CLINIC_PHONE", "555-010-9999")

    html = app.test_client().get("/").get_data(as_text=True)

    assert "Test Imaging Center" in html
    assert 'href="tel:555-010-9999"' in html


def test_the_widget_gets_the_rasa_url_and_opens_with_the_greeting(
    app: Flask, widget_installed: None
) -> None:
    html = app.test_client().get("/").get_data(as_text=True)

    raw_config = re.search(
        r'<script type="application/json" id="chat-widget-config">(.*?)</script>', html
    ).group(1)
    config = json.loads(raw_config)
    assert config["socketUrl"] == RASA_URL
    assert config["initPayload"] == "/greet"
    assert config["storage"] == "session"
    assert '/static/vendor/rasa-webchat.js"' in html
    assert '/static/js/chat.js"' in html


def test_without_the_widget_installed_the_page_gives_the_phone_instead(
    monkeypatch: pytest.MonkeyPatch, app: Flask, tmp_path: Path
) -> None:
    monkeypatch.setattr(clinic_page, "WIDGET_BUNDLE", tmp_path / "missing.js")

    html = app.test_client().get("/").get_data(as_text=True)

    assert "rasa-webchat.js" not in html
    assert "chat assistant is not available" in html


def test_the_page_loads_nothing_from_other_sites(app: Flask, widget_installed: None) -> None:
    collector = ResourceCollector()
    collector.feed(app.test_client().get("/").get_data(as_text=True))

    assert collector.urls
    assert all(url.startswith("/static/") for url in collector.urls), collector.urls


def test_security_headers_allow_only_this_site_and_the_rasa_server(app: Flask) -> None:
    headers = app.test_client().get("/").headers

    policy = dict(
        directive.strip().split(" ", 1)
        for directive in headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == f"'self' {RASA_URL} wss://chat.clinic.example.org"
    assert policy["font-src"] == "'self' data:"
    assert policy["frame-ancestors"] == "'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def test_static_files_are_served_with_security_headers(app: Flask) -> None:
    response = app.test_client().get("/static/js/chat.js")

    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_rasa_url_defaults_to_the_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RASA_PUBLIC_URL", raising=False)
    assert create_app().config["RASA_PUBLIC_URL"] == "http://localhost:5005"

    monkeypatch.setenv("RASA_PUBLIC_URL", RASA_URL)
    assert create_app().config["RASA_PUBLIC_URL"] == RASA_URL


def test_the_app_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "web.app", "--help"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout


def test_the_installed_widget_loads_no_third_party_font() -> None:
    if not clinic_page.WIDGET_BUNDLE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{clinic_page.WIDGET_BUNDLE} is missing: `make setup` installs it")
        pytest.skip(f"{clinic_page.WIDGET_BUNDLE} is not installed (`make setup` installs it)")

    bundle = clinic_page.WIDGET_BUNDLE.read_text(encoding="utf-8")

    assert "WebChat" in bundle
    assert not THIRD_PARTY_FONT_HOSTS.search(bundle)


def test_the_widget_version_is_pinned_exactly() -> None:
    web = REPO_ROOT / "web"
    declared = json.loads((web / "package.json").read_text())["dependencies"]["rasa-webchat"]
    locked = json.loads((web / "package-lock.json").read_text())["packages"][
        "node_modules/rasa-webchat"
    ]

    assert re.fullmatch(r"\d+\.\d+\.\d+", declared)
    assert locked["version"] == declared
    assert locked["integrity"].startswith("sha512-")
