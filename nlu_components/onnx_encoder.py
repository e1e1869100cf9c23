"""all-mpnet-base-v2 on ONNX Runtime: the set-up's int8 graph, checked against its manifest."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import numpy as np

from nlu_components.encoder_graph import (
    GRAPH_DIR,
    MANIFEST_NAME,
    MAX_TOKENS,
    builder_sha256,
    sha256_of,
)
from nlu_components.mpnet_weights import (
    EMBEDDING_DIM,
    PAD_ID,
    PAD_TOKEN,
    WEIGHTS_SHA256,
    read_tokenizer_json,
)

SETUP_HINT = "run `make setup` (python -m nlu_components.encoder_graph) to build it"

_LOCK = threading.Lock()
_SESSIONS: Dict[Tuple[str, int], Any] = {}
_TOKENIZER: Dict[str, str] = {}


@dataclass
class Encoding:
    """One text's pooled embedding, plus its wordpiece states for mapping onto Rasa tokens."""

    sentence: np.ndarray  # (768,), L2-normalised
    wordpieces: np.ndarray  # (n_wordpieces, 768), last hidden states, special tokens dropped
    offsets: List[Tuple[int, int]]  # character span of each wordpiece in the original text


def read_manifest(directory: Path = GRAPH_DIR) -> Dict[str, str]:
    """The manifest the builder wrote beside the graph; refuses one from other weights or builder."""
    path = directory / MANIFEST_NAME
    if not path.exists():
        raise RuntimeError(f"The sentence encoder's graph is missing ({path}): {SETUP_HINT}.")
    manifest = json.loads(path.read_text())
    if manifest.get("weights_sha256") != WEIGHTS_SHA256:
        raise RuntimeError(f"{path} was built from other weights: {SETUP_HINT}.")
    if manifest.get("builder_sha256") != builder_sha256():
        raise RuntimeError(f"{path} was built by another version of the builder: {SETUP_HINT}.")
    return manifest


def checked_graph(directory: Path = GRAPH_DIR) -> Path:
    """The graph's path, once its SHA-256 matches the manifest's.

    The session then loads the file itself: loaded from a bytes copy instead, the Rasa server
    held about 170 MB more at rest. The folder is written only by the set-up.
    """
    manifest = read_manifest(directory)
    graph = directory / manifest["graph"]
    found = sha256_of(graph)
    if found != manifest["graph_sha256"]:
        raise RuntimeError(
            f"{graph} has sha256 {found}, not the {manifest['graph_sha256']} it was built with: "
            f"{SETUP_HINT}."
        )
    return graph


def session_options(threads: int) -> Any:
    """Every option that matters set explicitly, rather than left to ONNX Runtime's defaults."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads spinning for work would take CPU from the rest of the server.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return options


def shared_session(threads: int, directory: Path = GRAPH_DIR) -> Any:
    """One session per thread count in a process: every featurizer shares its weights."""
    import onnxruntime as ort

    key = (str(directory), threads)
    with _LOCK:
        if key not in _SESSIONS:
            _SESSIONS[key] = ort.InferenceSession(
                str(checked_graph(directory)),
                session_options(threads),
                providers=["CPUExecutionProvider"],
            )
        return _SESSIONS[key]


def all_cores() -> int:
    """Cores this process may run on (a container's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# The most token rows one forward pass takes: a batch of 32 questions of up to 32 tokens, or of 8
# texts of 128. ONNX Runtime's CPU arena keeps, for the life of the process, what the biggest
# pass ever needed (a batch of 32 texts of 128 tokens: about 300 MB more than one question), so
# without a cap a server's memory grew with the busiest moment it had seen: +12-14% over the
# soak suite's 10,000 messages. Splitting costs no compute: a pass costs per token row (more,
# for long texts, whose attention grows with the square of their length).
MAX_BATCH_TOKENS = 1024


class OnnxMPNetEncoder:
    """all-mpnet-base-v2 (12 layers, 768 dims) with mean pooling and L2 norm, on ONNX Runtime.

    ``threads`` is ONNX Runtime's intra-op thread count: 1, for a server, where messages are
    short and the other core has the rest of the server's work, and for training too, whose
    batches ``encode`` spreads over the cores itself (see there).
    """

    def __init__(
        self, max_length: int = 128, threads: int = 1, directory: Path = GRAPH_DIR
    ) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        if not 2 <= max_length <= MAX_TOKENS:
            raise ValueError(f"max_length must be from 2 to {MAX_TOKENS}, got {max_length}.")
        self._session = shared_session(threads, directory)
        self._tokenizer = HFTokenizer.from_str(_tokenizer_json())
        self._tokenizer.enable_truncation(max_length=max_length)
        # Padding to the batch's longest text, not a fixed length, saves most of the compute.
        # An even length: ONNX Runtime's int8 kernel works on token rows in pairs and rounds a
        # leftover row differently, so with odd lengths a text's embedding would depend on
        # the texts it shares a batch with.
        self._tokenizer.enable_padding(pad_id=PAD_ID, pad_token=PAD_TOKEN, pad_to_multiple_of=2)

    def encode(
        self, texts: Sequence[str], batch_size: int = 32, workers: int = 1
    ) -> List[Encoding]:
        """Encodes texts in length-sorted batches so little compute is spent on padding.

        ``workers`` threads each run whole batches, for training's thousands of texts: ONNX
        Runtime releases the GIL while it runs a session, and one session may be run from
        several threads at once. With a 1-thread session, two workers on two cores come close
        to twice the speed, where one session on two threads gave 1.5 times. Each batch is the
        same forward pass whichever thread runs it, so the embeddings are the same to the bit.
        """
        results: List[Encoding | None] = [None] * len(texts)
        chunks = list(self._batches(texts, batch_size))
        for chunk, encodings in zip(chunks, self._encoded_batches(texts, chunks, workers)):
            for index, encoding in zip(chunk, encodings):
                results[index] = encoding
        return [r for r in results if r is not None]

    def _encoded_batches(
        self, texts: Sequence[str], chunks: List[List[int]], workers: int
    ) -> List[List[Encoding]]:
        """Each chunk's encodings, in the chunks' order, computed on ``workers`` threads."""

        def run(chunk: List[int]) -> List[Encoding]:
            return self._encode_batch([texts[i] for i in chunk])

        if workers < 2 or len(chunks) < 2:
            return [run(chunk) for chunk in chunks]
        # Longest batches first, so no thread is left with a long one at the end.
        with ThreadPoolExecutor(workers, thread_name_prefix="sentence-encoder") as pool:
            return list(pool.map(run, chunks[::-1]))[::-1]

    def _batches(self, texts: Sequence[str], batch_size: int) -> Iterator[List[int]]:
        """Indexes of ``texts``, shortest first, in batches of at most ``batch_size`` texts
        and ``MAX_BATCH_TOKENS`` token rows (texts times the batch's padded length)."""
        if not texts:
            return
        tokens = [sum(e.attention_mask) for e in self._tokenizer.encode_batch(list(texts))]
        chunk: List[int] = []
        for index in sorted(range(len(texts)), key=lambda i: tokens[i]):
            padded = tokens[index] + tokens[index] % 2
            if chunk and (len(chunk) == batch_size or (len(chunk) + 1) * padded > MAX_BATCH_TOKENS):
                yield chunk
                chunk = []
            chunk.append(index)
        yield chunk

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Sentence embeddings only, shape (len(texts), 768)."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.stack([e.sentence for e in self.encode(texts, batch_size)])

    def hidden_states(self, ids: np.ndarray) -> np.ndarray:
        """The graph itself: (batch, length) token ids to (batch, length, 768) last states."""
        return self._session.run(None, {"input_ids": ids})[0]

    def _encode_batch(self, texts: List[str]) -> List[Encoding]:
        batch = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        hidden = self.hidden_states(ids)
        sentences = mean_pooled(hidden, mask)
        encodings = []
        for row, enc in enumerate(batch):
            keep = [
                i
                for i, (special, m) in enumerate(zip(enc.special_tokens_mask, enc.attention_mask))
                if m and not special
            ]
            encodings.append(
                Encoding(
                    sentence=sentences[row],
                    wordpieces=hidden[row, keep],
                    offsets=[enc.offsets[i] for i in keep],
                )
            )
        return encodings


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' pooling: the mean over real tokens, then unit length."""
    summed = (hidden * mask[:, :, None]).sum(axis=1)
    pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _tokenizer_json() -> str:
    with _LOCK:
        if "tokenizer" not in _TOKENIZER:
            _TOKENIZER["tokenizer"] = read_tokenizer_json()
        return _TOKENIZER["tokenizer"]
