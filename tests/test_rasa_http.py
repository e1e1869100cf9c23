"""Rasa's HTTP API answers the token only, and rasa_http reaches it with the token the server shares."""

from __future__ import annotations

import pytest
import requests

import rasa_http


@pytest.fixture
def rasa_api(assistant, monkeypatch):
    monkeypatch.setenv(rasa_http.URL_ENV, assistant.rasa_url)
    monkeypatch.setenv(rasa_http.TOKEN_ENV, assistant.env[rasa_http.TOKEN_ENV])
    return assistant


def test_api_refuses_calls_without_the_token_or_with_a_wrong_one(rasa_api):
    url = f"{rasa_api.rasa_url}/conversations/{rasa_api.conversation_id('api-probe')}/tracker"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, params={"token": "guess"}, timeout=10).status_code == 401
    model_url = f"{rasa_api.rasa_url}/model"
    assert requests.delete(model_url, params={"token": "guess"}, timeout=10).status_code == 401


def test_appended_events_are_in_the_tracker_the_patient_channel_uses(rasa_api):
    rasa_api.send("hello", sender="api-events")
    conversation_id = rasa_api.conversation_id("api-events")

    rasa_http.append_events(conversation_id, [{"event": "pause"}])
    assert rasa_http.tracker(conversation_id)["paused"] is True
    # Paused: the patient's message is kept, and the assistant says nothing.
    assert rasa_api.send("does it hurt?", sender="api-events") == []

    rasa_http.append_events(conversation_id, [{"event": "resume"}])
    assert rasa_http.tracker(conversation_id)["paused"] is False
    assert rasa_api.send("does it hurt?", sender="api-events") != []


def test_an_sms_conversation_id_reaches_that_conversation(rasa_api):
    # ':' and '+' percent-escaped would name another conversation ("sms%3A%2B1...").
    conversation_id = "sms:+15550001234"
    rasa_http.append_events(conversation_id, [{"event": "bot", "text": "hello"}])
    assert rasa_http.tracker(conversation_id)["sender_id"] == conversation_id


def test_an_unreachable_server_is_reported_without_the_token(monkeypatch):
    monkeypatch.setenv(rasa_http.URL_ENV, "http://127.0.0.1:9")
    monkeypatch.setenv(rasa_http.TOKEN_ENV, "secret-value")
    with pytest.raises(rasa_http.RasaApiError) as raised:
        rasa_http.tracker("rest:someone")
    assert "secret-value" not in str(raised.value)
