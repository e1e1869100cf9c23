"""Unanswered messages grouped by meaning: the project's sentence encoder and agglomerative clustering.

Each message is embedded with the assistant's own encoder (all-mpnet-base-v2, the 8-bit ONNX
graph in models/onnx/, loaded once per process on first use), and scikit-learn's
AgglomerativeClustering joins messages whose average cosine distance stays under
DISTANCE_THRESHOLD. No number of groups is chosen in advance: a new kind of question becomes a
group of its own. Groups are listed largest first, each named by the message nearest its centre.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

import numpy as np

# Cosine distance (1 - similarity) under which messages share a group, on average. Rewordings
# of one question measured 0.15-0.65 with this encoder, different questions 0.73 and more
# (tests/insights/test_grouping.py holds both).
DISTANCE_THRESHOLD = 0.65
# Texts shown per group on the page; the export has them all.
SHOWN_PER_GROUP = 10

Embedder = Callable[[Sequence[str]], np.ndarray]

_encoder_lock = threading.Lock()
_encoder = None


def sentence_embeddings(texts: Sequence[str]) -> np.ndarray:
    """Unit-length embeddings of ``texts`` from the assistant's encoder (loaded once)."""
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            from nlu_components.onnx_encoder import OnnxMPNetEncoder

            _encoder = OnnxMPNetEncoder(max_length=128, threads=1)
        return _encoder.embed(list(texts))


@dataclass(frozen=True)
class Message:
    """One unanswered message, as the grouping needs it."""

    text: str
    kind: str
    channel: str
    occurred_at: datetime


@dataclass
class Group:
    label: str
    messages: list[Message] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.messages)

    @property
    def shown(self) -> list[Message]:
        return self.messages[-SHOWN_PER_GROUP:][::-1]

    @property
    def kinds(self) -> Counter:
        return Counter(message.kind for message in self.messages)

    @property
    def channels(self) -> Counter:
        return Counter(message.channel for message in self.messages)


def group_labels(
    texts: Sequence[str],
    embed: Embedder = sentence_embeddings,
    threshold: float = DISTANCE_THRESHOLD,
) -> list[int]:
    """A group number per text: texts close in meaning share one."""
    if len(texts) < 2:
        return [0] * len(texts)
    return _labels(np.asarray(embed(texts), dtype=np.float64), threshold)


def _labels(vectors: np.ndarray, threshold: float) -> list[int]:
    if len(vectors) < 2:
        return [0] * len(vectors)
    # Imported here: scikit-learn takes a noticeable part of a second to import, and every web
    # worker imports this module at start, while only the insights page clusters.
    from sklearn.cluster import AgglomerativeClustering

    clustering = AgglomerativeClustering(
        n_clusters=None,
        distance_threshold=threshold,
        # scikit-learn 1.1 names the distance "affinity" (1.2 renamed it "metric").
        affinity="cosine",
        linkage="average",
    )
    return [int(label) for label in clustering.fit_predict(vectors)]


def group_messages(
    messages: Sequence[Message],
    embed: Embedder = sentence_embeddings,
    threshold: float = DISTANCE_THRESHOLD,
) -> list[Group]:
    """The messages in groups of similar meaning, largest first (then the latest first)."""
    if not messages:
        return []
    texts = [message.text for message in messages]
    vectors = np.asarray(embed(texts), dtype=np.float64)
    labels = _labels(vectors, threshold)
    groups: dict[int, Group] = {}
    members: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        members.setdefault(label, []).append(index)
    for label, indexes in members.items():
        centre = vectors[indexes].mean(axis=0)
        nearest = indexes[int(np.argmax(vectors[indexes] @ centre))]
        groups[label] = Group(label=texts[nearest], messages=[messages[i] for i in indexes])
    return sorted(
        groups.values(),
        key=lambda group: (-group.count, -max(m.occurred_at.timestamp() for m in group.messages)),
    )


def week_of(moment: datetime, zone: tzinfo) -> str:
    """The ISO week of ``moment`` in the clinic's time zone, e.g. "2026-W49"."""
    year, week, _ = moment.astimezone(zone).isocalendar()
    return f"{year}-W{week:02d}"


def counts_per_week_and_channel(
    messages: Sequence[Message], zone: tzinfo
) -> tuple[list[str], list[str], dict[tuple[str, str], int]]:
    """Weeks (newest first), channels, and the count of each (week, channel)."""
    counts = Counter((week_of(m.occurred_at, zone), m.channel) for m in messages)
    weeks = sorted({week for week, _ in counts}, reverse=True)
    channels = sorted({channel for _, channel in counts})
    return weeks, channels, dict(counts)
