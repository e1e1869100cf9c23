"""The MPNet featurizer: embeddings match the reference implementation and fit Rasa's tokens."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu_components.sentence_embeddings import (
    EMBEDDING_DIM,
    JoinedFiles,
    MPNetEncoder,
    SentenceEmbeddingFeaturizer,
    read_safetensors,
    relative_position_buckets,
)

# Tests share the process-wide cached weights, so only the first one pays the ~3 s load.


def featurizer(**config: Any) -> SentenceEmbeddingFeaturizer:
    context = ExecutionContext(graph_schema=None, node_name="sentence_embeddings")  # type: ignore[arg-type]
    return SentenceEmbeddingFeaturizer(config, context)


def tokenized(*texts: str) -> List[Message]:
    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    messages = [Message(data={TEXT: text}) for text in texts]
    tokenizer.process(messages)
    return messages


def features(message: Message) -> Dict[str, np.ndarray]:
    sequence, sentence = message.get_dense_features(TEXT)
    return {"sequence": sequence.features, "sentence": sentence.features}


@pytest.fixture(scope="module")
def encoder() -> MPNetEncoder:
    return MPNetEncoder()


def test_matches_the_reference_implementation(encoder: MPNetEncoder) -> None:
    # Scores of Hugging Face transformers 4.46.3 (torch 2.13, MPNetModel, mean pooling, L2 norm)
    # on the same weights: agreement to 1e-3 means the NumPy forward pass, relative position
    # buckets, pooling and normalisation reproduce the reference implementation.
    embeddings = encoder.embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    similarities = embeddings @ embeddings.T
    assert similarities[0, 1] == pytest.approx(0.6817, abs=1e-3)
    assert similarities[0, 2] == pytest.approx(0.0492, abs=1e-3)
    assert similarities[1, 2] == pytest.approx(0.0421, abs=1e-3)


def test_paraphrases_are_closer_than_unrelated_questions(encoder: MPNetEncoder) -> None:
    question, paraphrase, unrelated = encoder.embed(
        ["Does the HSG procedure hurt?", "Is the HSG test painful?", "Where can I park my car?"]
    )
    assert question @ paraphrase > 0.7
    assert question @ unrelated < 0.3


def test_embeddings_are_unit_length_and_deterministic(encoder: MPNetEncoder) -> None:
    texts = ["how long does it take", "can i eat before the test?", "hi"]
    batched = encoder.embed(texts, batch_size=3)
    one_by_one = np.stack([encoder.embed([text])[0] for text in texts])
    assert batched.shape == (3, EMBEDDING_DIM)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # Padding inside a batch must not change a text's embedding.
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_array_equal(batched, encoder.embed(texts, batch_size=3))


def test_empty_and_blank_texts_embed_without_error(encoder: MPNetEncoder) -> None:
    embeddings = encoder.embed(["", "   ", "\u200b"])
    assert embeddings.shape == (3, EMBEDDING_DIM)
    assert np.isfinite(embeddings).all()
    assert encoder.embed([]).shape == (0, EMBEDDING_DIM)


def test_featurizer_adds_sentence_and_per_token_sequence_features() -> None:
    messages = tokenized("Can my husband come in with me?", "hsg pain")
    featurizer().process(messages)
    for message in messages:
        found = features(message)
        assert found["sentence"].shape == (1, EMBEDDING_DIM)
        assert found["sequence"].shape == (len(message.get("text_tokens")), EMBEDDING_DIM)
        assert np.abs(found["sequence"]).sum(axis=1).all()


def test_training_data_and_single_messages_get_the_same_features() -> None:
    component = featurizer(batch_size=2)
    texts = ["what should I wear", "is bleeding normal after the test", "thanks", "bye now"]
    data = TrainingData(training_examples=tokenized(*texts))
    component.process_training_data(data)
    for text, trained in zip(texts, data.training_examples):
        (single,) = component.process(tokenized(text))
        np.testing.assert_allclose(
            features(trained)["sentence"], features(single)["sentence"], atol=1e-5
        )


def test_scale_multiplies_the_features() -> None:
    (plain,) = featurizer().process(tokenized("will it hurt"))
    (scaled,) = featurizer(scale=3.0).process(tokenized("will it hurt"))
    np.testing.assert_allclose(
        features(scaled)["sentence"], 3 * features(plain)["sentence"], rtol=1e-5
    )
    np.testing.assert_allclose(
        features(scaled)["sequence"], 3 * features(plain)["sequence"], rtol=1e-5
    )


def test_text_longer_than_max_length_keeps_one_row_per_token() -> None:
    text = " ".join(["word"] * 300)
    (message,) = featurizer(max_length=16).process(tokenized(text))
    sequence = features(message)["sequence"]
    assert sequence.shape == (300, EMBEDDING_DIM)
    # 14 wordpieces fit between <s> and </s>; tokens past the cut get zero rows.
    assert np.abs(sequence[:14]).sum(axis=1).all()
    assert not sequence[14:].any()


def test_empty_message_does_not_crash() -> None:
    # Rasa's tokenizers give an empty text one empty token, so features must still line up.
    for message in featurizer().process(tokenized("", "   ")):
        found = features(message)
        assert found["sentence"].shape == (1, EMBEDDING_DIM)
        assert np.isfinite(found["sentence"]).all()
        assert found["sequence"].shape == (len(message.get("text_tokens")), EMBEDDING_DIM)
        assert not found["sequence"].any()


@pytest.mark.parametrize(
    "config", [{"scale": 0}, {"scale": "big"}, {"batch_size": 0}, {"max_length": 1000}]
)
def test_invalid_config_is_rejected(config: Dict[str, Any]) -> None:
    with pytest.raises(InvalidConfigException):
        featurizer(**config)


def test_a_served_message_is_embedded_on_one_blas_thread_and_training_batches_on_all(
    encoder: MPNetEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadpoolctl import threadpool_info

    seen: List[int] = []
    forward = encoder._forward

    def recording_forward(*args: Any) -> np.ndarray:
        seen.append(
            min(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")
        )
        return forward(*args)

    monkeypatch.setattr(encoder, "_forward", recording_forward)
    before = max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")
    encoder.encode(["does it hurt"])
    encoder.encode([f"question number {n}" for n in range(8)])
    assert seen == [1, before]


def test_relative_position_buckets_match_mpnet() -> None:
    # Values of transformers' MPNetEncoder.relative_position_bucket: offsets within 8 get their
    # own bucket, farther ones share log-spaced buckets, keys after the query use the upper half.
    buckets = relative_position_buckets(200)
    assert buckets[0, 0] == 0
    assert buckets[5, 0] == 5 and buckets[0, 5] == 21
    assert buckets[20, 0] == 10
    assert buckets[199, 0] == 15 and buckets[0, 199] == 31


def test_a_changed_weights_file_is_refused() -> None:
    # A tampered or different model would silently shift every embedding the classifier uses.
    tampered = io.BytesIO()
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    tampered.write(len(header).to_bytes(8, "little") + header + np.ones(2, np.float32).tobytes())
    tampered.seek(0)
    with pytest.raises(RuntimeError, match="sha256"):
        read_safetensors(tampered)


def test_split_files_read_as_one_stream(tmp_path: Path) -> None:
    parts = []
    for index, chunk in enumerate([b"abc", b"", b"defgh", b"ij"]):
        part = tmp_path / f"part{index}"
        part.write_bytes(chunk)
        parts.append(part)
    with JoinedFiles(parts) as joined:
        assert joined.read() == b"abcdefghij"
        joined.seek(-4, io.SEEK_END)
        assert joined.read(3) == b"ghi"
        joined.seek(2)
        assert joined.read(3) == b"cde"
