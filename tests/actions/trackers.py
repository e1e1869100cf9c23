"""Builds rasa_sdk trackers as the action server would receive them, for action tests."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker


def user_event(text: str, intent: str, confidence: float = 0.9, **parse_extra: Any) -> dict:
    return {
        "event": "user",
        "text": text,
        "parse_data": {
            "text": text,
            "intent": {"name": intent, "confidence": confidence},
            "entities": [],
            **parse_extra,
        },
        "input_channel": "rest",
    }


def make_tracker(
    events: list[dict] | None = None,
    slots: dict | None = None,
    sender_id: str = "patient-1",
    active_loop: dict | None = None,
    paused: bool = False,
) -> Tracker:
    events = events or []
    latest = next((e["parse_data"] for e in reversed(events) if e["event"] == "user"), {})
    return Tracker(
        sender_id=sender_id,
        slots=slots or {},
        latest_message=latest,
        events=events,
        paused=paused,
        followup_action=None,
        active_loop=active_loop or {},
        latest_action_name=None,
    )
