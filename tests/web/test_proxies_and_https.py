"""Behind PROXY_COUNT proxies the app sees the client's address and scheme; HSTS over HTTPS only."""

from __future__ import annotations

import pytest
from flask import Flask, request

from web.app import create_app

HSTS = "max-age=31536000; includeSubDomains"
FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


def _app(**config: object) -> Flask:
    app = create_app({"TESTING": True, "SECRET_KEY": "x", **config})

    # A page that shows what the app believes about the request.
    @app.route("/_request")
    def seen() -> dict:
        return {"remote_addr": request.remote_addr, "is_secure": request.is_secure}

    return app


def test_behind_one_proxy_its_forwarded_address_and_scheme_are_used() -> None:
    client = _app(PROXY_COUNT=1).test_client()

    response = client.get("/_request", headers=FORWARDED)

    assert response.get_json() == {"remote_addr": "203.0.113.9", "is_secure": True}
    assert response.headers["Strict-Transport-Security"] == HSTS


def test_only_the_entry_our_proxy_added_is_believed() -> None:
    client = _app(PROXY_COUNT=1).test_client()
    # A client may send its own X-Forwarded-For; nginx appends the address it really saw.
    headers = {"X-Forwarded-For": "10.9.9.9, 203.0.113.9", "X-Forwarded-Proto": "http"}
    assert client.get("/_request", headers=headers).get_json() == {
        "remote_addr": "203.0.113.9",
        "is_secure": False,
    }


def test_without_proxies_the_headers_are_ignored() -> None:
    client = _app(PROXY_COUNT=0).test_client()

    response = client.get("/_request", headers=FORWARDED)

    assert response.get_json() == {"remote_addr": "127.0.0.1", "is_secure": False}
    assert "Strict-Transport-Security" not in response.headers


def test_proxy_count_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROXY_COUNT", raising=False)
    assert create_app({"SECRET_KEY": "x"}).config["PROXY_COUNT"] == 0

    monkeypatch.setenv("PROXY_COUNT", "1")
    monkeypatch.setenv("FLASK_SECRET_KEY", "x")
    app = create_app()
    assert app.config["PROXY_COUNT"] == 1

    @app.route("/_request")
    def seen() -> str:
        return request.remote_addr or ""

    assert app.test_client().get("/_request", headers=FORWARDED).text == "203.0.113.9"


@pytest.mark.parametrize("value", ["one", "-1", "1.5"])
def test_a_proxy_count_that_is_not_a_number_stops_the_start(value: str) -> None:
    with pytest.raises(ValueError, match="PROXY_COUNT must be a whole number"):
        create_app({"SECRET_KEY": "x", "PROXY_COUNT": value})


def test_hsts_on_every_page_over_https_never_over_http() -> None:
    client = _app().test_client()
    for path in ("/", "/staff/login", "/no-such-page"):
        secure = client.get(path, base_url="https://clinic.example")
        plain = client.get(path, base_url="http://clinic.example")
        assert secure.headers["Strict-Transport-Security"] == HSTS, path
        assert "Strict-Transport-Security" not in plain.headers, path
