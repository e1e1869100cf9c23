"""The sentence encoder alone: the served int8 graph against fp32 on every training sentence.

`make bench` reports how close the int8 embeddings stay to the fp32 ones (cosine similarity),
how long the set-up's graph build takes, and what one message and a batch of ten cost on one
ONNX Runtime thread with each graph.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.latency import FAQ_QUESTIONS
from nlu_components.encoder_graph import build, build_graph
from nlu_components.mpnet_weights import read_model
from nlu_components.onnx_encoder import (
    OnnxMPNetEncoder,
    all_cores,
    mean_pooled,
    session_options,
)

# The served FAQ questions, plus a short one and a warning sign: ten, for one batch of ten.
QUESTIONS = [*FAQ_QUESTIONS, "what if i get a fever afterwards", "hi"]


def training_sentences() -> list[str]:
    from rasa.shared.nlu.training_data.loading import load_data

    from scripts.assistant_servers import REPO_ROOT

    return [m.get("text") for m in load_data(str(REPO_ROOT / "data" / "nlu")).intent_examples]


def _embed(session: object, encoder: OnnxMPNetEncoder, texts: list[str]) -> np.ndarray:
    rows = []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), 64):
        chunk = [texts[i] for i in order[start : start + 64]]
        batch = encoder._tokenizer.encode_batch(chunk)
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        rows.append(mean_pooled(session.run(None, {"input_ids": ids})[0], mask))  # type: ignore[attr-defined]
    embeddings = np.concatenate(rows)
    return embeddings[np.argsort(order)]


def _timing(session: object, encoder: OnnxMPNetEncoder) -> tuple[float, float]:
    """Best of five: one FAQ question, and ten questions in one batch, in ms."""

    def run(texts: list[str]) -> float:
        batch = encoder._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        session.run(None, {"input_ids": ids})  # type: ignore[attr-defined]
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            session.run(None, {"input_ids": ids})  # type: ignore[attr-defined]
            best = min(best, time.perf_counter() - started)
        return best * 1000

    return run(QUESTIONS[:1]), run(QUESTIONS)


def measure() -> dict:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        graph = build(Path(tmp))
        build_seconds = time.monotonic() - started
        raw, config = read_model()
        fp32_graph = build_graph(raw, config).SerializeToString()
        del raw
        encoder = OnnxMPNetEncoder()
        texts = training_sentences()
        # Thousands of sentences on every core; the timings below on one thread, as served.
        int8 = ort.InferenceSession(str(graph), session_options(all_cores()))
        fp32 = ort.InferenceSession(fp32_graph, session_options(all_cores()))
        cosines = (_embed(int8, encoder, texts) * _embed(fp32, encoder, texts)).sum(axis=1)
        int8 = ort.InferenceSession(str(graph), session_options(1))
        fp32 = ort.InferenceSession(fp32_graph, session_options(1))
        return {
            "sentences": len(texts),
            "min": float(cosines.min()),
            "mean": float(cosines.mean()),
            "below_0_99": int((cosines < 0.99).sum()),
            "build_seconds": build_seconds,
            "graph_mb": graph.stat().st_size / 1e6,
            "int8_ms": _timing(int8, encoder),
            "fp32_ms": _timing(fp32, encoder),
        }


def markdown_table(result: dict) -> str:
    return "\n".join(
        [
            f"Cosine similarity of the served int8 embeddings to fp32, on all {result['sentences']} "
            f"training sentences: min {result['min']:.4f}, mean {result['mean']:.4f}, "
            f"{result['below_0_99']} below 0.99. The set-up's graph build: "
            f"{result['build_seconds']:.0f} s, {result['graph_mb']:.0f} MB.",
            "",
            "| graph (one ONNX Runtime thread) | one FAQ question | ten questions in one batch |",
            "|---|---|---|",
            f"| int8 (served) | {result['int8_ms'][0]:.1f} ms | {result['int8_ms'][1]:.1f} ms |",
            f"| fp32 (same weights) | {result['fp32_ms'][0]:.1f} ms | "
            f"{result['fp32_ms'][1]:.1f} ms |",
        ]
    )
