"""The project stands alone: its own copy of the topic contract, and nothing read from beside it.

A clone with nothing next to it must collect and run every test. The shared contract and the
public sample (``../shared/``) are only compared with or scored where they exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nlu_contract import SHARED_TOPICS_PATH, TOPICS_PATH, faq_topics, load_topics
from scripts.evaluate_nlu import public_sample_questions, public_sample_skipped

REPO_ROOT = Path(__file__).resolve().parents[2]
# Code that builds a path into ../shared; only these two files may.
SHARED_PATH_CODE = re.compile(r"""(?:parent|parents\[\d\])\s*/\s*["']shared["']""")
MAY_POINT_AT_SHARED = {Path("nlu_contract/__init__.py"), Path("scripts/evaluate_nlu.py")}
NOT_OURS = {".venv", "node_modules", "models", "results", ".git"}


def test_the_contract_lives_in_the_repository() -> None:
    topics = load_topics()
    assert TOPICS_PATH.is_relative_to(REPO_ROOT)
    assert topics["faq"] and topics["dialogue"]
    assert "warning_signs" in faq_topics()


def test_the_copy_agrees_with_the_shared_contract() -> None:
    if not SHARED_TOPICS_PATH.exists():
        pytest.skip(f"{SHARED_TOPICS_PATH} is absent (a lone clone): nothing to compare with")
    assert load_topics(TOPICS_PATH) == load_topics(SHARED_TOPICS_PATH), (
        f"{TOPICS_PATH} differs from {SHARED_TOPICS_PATH}: copy the shared contract in, "
        "then run `.venv/bin/python -m scripts.generate_faq_rules`"
    )


def test_no_other_code_reads_from_beside_the_repository() -> None:
    readers = {
        path.relative_to(REPO_ROOT)
        for path in REPO_ROOT.rglob("*.py")
        if not NOT_OURS & set(path.relative_to(REPO_ROOT).parts)
        and SHARED_PATH_CODE.search(path.read_text(errors="replace"))
    }
    assert readers <= MAY_POINT_AT_SHARED


def test_without_the_public_sample_its_score_is_skipped_with_a_message(tmp_path: Path) -> None:
    missing = tmp_path / "public_questions.tsv"
    assert public_sample_questions(missing) == []
    message = public_sample_skipped(missing)
    assert message and str(missing) in message and "not scored" in message
