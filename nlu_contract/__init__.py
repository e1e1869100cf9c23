"""The topic contract, kept in the repository so that a clone stands alone.

``topics.yml`` here is a copy of the contract shared with the evaluation (``../shared/topics.yml``
where that checkout sits beside this one); tests/nlu/test_topic_contract.py checks that the two
still agree wherever the shared file exists. Everything that needs the topics reads them from
``TOPICS_PATH``, never from outside the repository.
"""

from __future__ import annotations

from pathlib import Path

import yaml

TOPICS_PATH = Path(__file__).resolve().parent / "topics.yml"
# Only for the comparison test: the shared original, absent from a lone clone.
SHARED_TOPICS_PATH = Path(__file__).resolve().parents[2] / "shared" / "topics.yml"


def load_topics(path: Path = TOPICS_PATH) -> dict:
    """The contract as written: ``faq`` and ``dialogue`` topics, each with what it is about."""
    return yaml.safe_load(path.read_text())


def faq_topics() -> list[str]:
    """The FAQ topic keys, in the contract's order (each an intent with an ``utter_<topic>``)."""
    return list(load_topics()["faq"])


# Intents that answer one part of a contract topic with an answer of their own. The contract files
# alternatives to the HSG under what_is_hsg (facts.md, "what_is_hsg: Alternatives"); the model gives
# them their own intent so that the answer is about the alternatives. The evaluation counts such
# a prediction as the contract topic it belongs to.
PART_OF_TOPIC = {"hsg_alternatives": "what_is_hsg"}
