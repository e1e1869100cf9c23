"""The public clinic page ("/"): the clinic's HSG article with the chat widget in the corner."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict

import markdown
from flask import Blueprint, current_app, render_template
from markupsafe import Markup

from clinic.settings import load_clinic_settings

logger = logging.getLogger(__name__)

WEB_ROOT = Path(__file__).resolve().parent
ARTICLE_PATH = WEB_ROOT / "content" / "hsg-article.md"
# Copied from the pinned npm package by `make setup` (web/scripts/vendor-widget.mjs).
WIDGET_BUNDLE = WEB_ROOT / "static" / "vendor" / "rasa-webchat.js"
# What the page asks the assistant when the widget first opens: the greeting and its buttons.
WIDGET_INIT_PAYLOAD = "/greet"

blueprint = Blueprint("clinic_page", __name__)


@lru_cache(maxsize=1)
def article_html() -> Markup:
    """The article as HTML; it is the clinic's own text, so its markup is trusted."""
    return Markup(markdown.markdown(ARTICLE_PATH.read_text(encoding="utf-8")))  # noqa: S704


def chat_widget_config() -> Dict[str, Any]:
    """The widget's settings, handed to static/js/chat.js as JSON in the page."""
    clinic = load_clinic_settings()
    return {
        "socketUrl": current_app.config["RASA_PUBLIC_URL"],
        "socketPath": "/socket.io/",
        "initPayload": WIDGET_INIT_PAYLOAD,
        "title": clinic.name,
        "subtitle": "HSG questions. Not for emergencies.",
        "inputTextFieldHint": "Type your question…",
        # sessionStorage: the conversation survives a reload but not closing the tab, so it is
        # not left behind on a shared computer.
        "storage": "session",
    }


@blueprint.route("/")
def article_page() -> str:
    widget_installed = WIDGET_BUNDLE.exists()
    if not widget_installed:
        logger.warning("%s is missing: run `make setup` to install the chat widget", WIDGET_BUNDLE)
    return render_template(
        "clinic_page.html",
        clinic=load_clinic_settings(),
        article=article_html(),
        widget_installed=widget_installed,
        widget_config=chat_widget_config(),
    )
