"""The MPNet featurizer: the ONNX graph matches the reference forward pass and fits Rasa's tokens."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema, SchemaNode
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu_components import mpnet_weights
from nlu_components.encoder_graph import (
    GRAPH_DIR,
    MANIFEST_NAME,
    build_graph,
    offset_bias_table,
    relative_position_buckets,
)
from nlu_components.mpnet_weights import (
    EMBEDDING_DIM,
    JoinedFiles,
    read_model,
    read_safetensors,
    read_tokenizer_json,
)
from nlu_components.onnx_encoder import (
    OnnxMPNetEncoder,
    checked_graph,
    mean_pooled,
    session_options,
    shared_session,
)
from nlu_components.sentence_embeddings import SentenceEmbeddingFeaturizer
from tests.nlu_components import mpnet_numpy_reference

# The served graph is the int8 one `make setup` builds into models/onnx; the fp32 graph and the
# NumPy oracle are built here from the same checked weights (about 15 s, 1.5 GB, once per run).
SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "does an hsg hurt?",
    "Is it normal to have some cramping and spotting for a day or two after the dye test?",
    "hi",
    "",
]


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
def encoder() -> OnnxMPNetEncoder:
    return OnnxMPNetEncoder()


@pytest.fixture(scope="module")
def weights() -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    return read_model()


@pytest.fixture(scope="module")
def batch(encoder: OnnxMPNetEncoder) -> Tuple[np.ndarray, np.ndarray]:
    """Token ids of SENTENCES padded to the longest, and their mask."""
    encodings = encoder._tokenizer.encode_batch(SENTENCES)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
    return ids, mask


@pytest.fixture(scope="module")
def reference_states(weights: Any, batch: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    raw, config = weights
    return mpnet_numpy_reference.forward(mpnet_numpy_reference.prepare_weights(raw, config), *batch)


@pytest.fixture(scope="module")
def fp32_states(weights: Any, batch: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    raw, config = weights
    session = ort.InferenceSession(build_graph(raw, config).SerializeToString(), session_options(2))
    return session.run(None, {"input_ids": batch[0]})[0]


def test_the_numpy_oracle_matches_hugging_face(
    reference_states: np.ndarray, batch: Tuple[np.ndarray, np.ndarray]
) -> None:
    # Scores of Hugging Face transformers 4.46.3 (torch 2.13, MPNetModel, mean pooling, L2 norm)
    # on the same weights: the oracle reproduces the reference implementation.
    embeddings = mean_pooled(reference_states, batch[1])[:3]
    similarities = embeddings @ embeddings.T
    assert similarities[0, 1] == pytest.approx(0.6817, abs=1e-3)
    assert similarities[0, 2] == pytest.approx(0.0492, abs=1e-3)
    assert similarities[1, 2] == pytest.approx(0.0421, abs=1e-3)


def test_the_fp32_graph_computes_what_the_oracle_computes(
    fp32_states: np.ndarray, reference_states: np.ndarray, batch: Tuple[np.ndarray, np.ndarray]
) -> None:
    # Every real token's state, padding inside the batch included: the graph is the model.
    real = batch[1].astype(bool)
    np.testing.assert_allclose(fp32_states[real], reference_states[real], atol=1e-4)


def test_the_served_int8_graph_stays_within_1_percent_of_fp32(
    encoder: OnnxMPNetEncoder, fp32_states: np.ndarray, batch: Tuple[np.ndarray, np.ndarray]
) -> None:
    ids, mask = batch
    served = mean_pooled(encoder.hidden_states(ids), mask)
    exact = mean_pooled(fp32_states, mask)
    assert (served * exact).sum(axis=1).min() >= 0.99


def test_the_served_graph_keeps_the_reference_similarities(encoder: OnnxMPNetEncoder) -> None:
    embeddings = encoder.embed(SENTENCES[:3])
    similarities = embeddings @ embeddings.T
    assert similarities[0, 1] == pytest.approx(0.6817, abs=1e-2)
    assert similarities[0, 2] == pytest.approx(0.0492, abs=1e-2)
    assert similarities[1, 2] == pytest.approx(0.0421, abs=1e-2)


def test_paraphrases_are_closer_than_unrelated_questions(encoder: OnnxMPNetEncoder) -> None:
    question, paraphrase, unrelated = encoder.embed(
        ["Does the HSG procedure hurt?", "Is the HSG test painful?", "Where can I park my car?"]
    )
    assert question @ paraphrase > 0.7
    assert question @ unrelated < 0.3


def test_embeddings_are_unit_length_and_deterministic(encoder: OnnxMPNetEncoder) -> None:
    texts = ["how long does it take", "can i eat before the test?", "hi"]
    batched = encoder.embed(texts, batch_size=3)
    one_by_one = np.stack([encoder.embed([text])[0] for text in texts])
    assert batched.shape == (3, EMBEDDING_DIM)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # Padding inside a batch must not change a text's embedding.
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_array_equal(batched, encoder.embed(texts, batch_size=3))


def test_empty_and_blank_texts_embed_without_error(encoder: OnnxMPNetEncoder) -> None:
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


def test_sessions_are_configured_explicitly() -> None:
    import onnxruntime as ort

    served = shared_session(1).get_session_options()
    assert served.intra_op_num_threads == 1
    assert served.inter_op_num_threads == 1
    assert served.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_relative_position_buckets_match_mpnet() -> None:
    # Values of transformers' MPNetEncoder.relative_position_bucket: offsets within 8 get their
    # own bucket, farther ones share log-spaced buckets, keys after the query use the upper half.
    buckets = relative_position_buckets(200)
    assert buckets[0, 0] == 0
    assert buckets[5, 0] == 5 and buckets[0, 5] == 21
    assert buckets[20, 0] == 10
    assert buckets[199, 0] == 15 and buckets[0, 199] == 31


def test_the_offset_table_gives_each_query_and_key_its_bucket_bias() -> None:
    relative_bias = np.random.default_rng(0).normal(size=(32, 12)).astype(np.float32)
    table = offset_bias_table(relative_bias, 32)
    length = 300
    offsets = np.arange(length)[None, :] - np.arange(length)[:, None]
    np.testing.assert_array_equal(
        table[offsets + 511], relative_bias[relative_position_buckets(length)]
    )


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


@pytest.fixture
def graph_copy(tmp_path: Path) -> Path:
    for name in (MANIFEST_NAME, json.loads((GRAPH_DIR / MANIFEST_NAME).read_text())["graph"]):
        shutil.copy(GRAPH_DIR / name, tmp_path / name)
    return tmp_path


def test_the_built_graph_is_read_when_it_matches_its_manifest(graph_copy: Path) -> None:
    assert checked_graph(graph_copy) == graph_copy / "all-mpnet-base-v2.int8.onnx"


def test_a_changed_graph_is_refused(graph_copy: Path) -> None:
    graph = graph_copy / json.loads((graph_copy / MANIFEST_NAME).read_text())["graph"]
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="sha256"):
        checked_graph(graph_copy)


def test_a_graph_from_another_builder_is_refused(graph_copy: Path) -> None:
    manifest = json.loads((graph_copy / MANIFEST_NAME).read_text())
    manifest["builder_sha256"] = "0" * 64
    (graph_copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(RuntimeError, match="another version of the builder"):
        checked_graph(graph_copy)


def test_a_missing_graph_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="make setup"):
        checked_graph(tmp_path)


def test_a_changed_tokenizer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mpnet_weights, "TOKENIZER_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="tokenizer.json"):
        read_tokenizer_json()


def test_a_texts_embedding_does_not_depend_on_its_batch(encoder: OnnxMPNetEncoder) -> None:
    # The int8 kernel handles token rows in pairs: odd lengths once made batches disagree.
    text = "how long does it take"
    alone = encoder.embed([text])
    for company in (["hi"], [text, text], ["can i eat before the test? please tell me", "no"]):
        together = encoder.embed(company + [text], batch_size=8)
        np.testing.assert_allclose(together[-1:], alone, atol=1e-6)


def test_no_forward_pass_takes_more_token_rows_than_the_cap(encoder: OnnxMPNetEncoder) -> None:
    from nlu_components.onnx_encoder import MAX_BATCH_TOKENS

    # 40 long texts (truncated at 128 tokens) and 40 short ones, as a busy server might batch.
    texts = ["is it normal to bleed a little " * 40] * 40 + ["does it hurt"] * 40
    tokens = [sum(e.attention_mask) for e in encoder._tokenizer.encode_batch(texts)]

    batches = list(encoder._batches(texts, batch_size=32))

    assert sorted(i for batch in batches for i in batch) == list(range(len(texts)))
    for batch in batches:
        padded = max(tokens[i] + tokens[i] % 2 for i in batch)
        assert len(batch) <= 32 and len(batch) * padded <= MAX_BATCH_TOKENS
    # A long text's embedding does not depend on how it was batched.
    alone = encoder.embed(texts[:1])[0]
    assert float(np.dot(alone, encoder.embed(texts)[0])) > 0.9999


def varied_sentences(count: int) -> List[str]:
    """Questions from one word to past the truncation length, in no particular order."""
    words = "can i eat before the hsg test and will it hurt or cause bleeding afterwards".split()
    rng = np.random.default_rng(7)
    lengths = [1, 2, 3, 5, 8, 13, 21, 40, 90, 200]
    return [" ".join(rng.choice(words, size=lengths[i % len(lengths)])) + "?" for i in range(count)]


def test_training_on_several_threads_embeds_what_one_thread_does(
    encoder: OnnxMPNetEncoder,
) -> None:
    # Training spreads batches over threads; serving runs them on one. The classifier must be
    # trained on the very numbers it sees when served, so equal to the bit, not merely close.
    texts = varied_sentences(40)
    one = encoder.encode(texts, batch_size=4)

    several = encoder.encode(texts, batch_size=4, workers=2)

    assert len(several) == len(texts)
    for served, trained in zip(one, several):
        np.testing.assert_array_equal(trained.sentence, served.sentence)
        np.testing.assert_array_equal(trained.wordpieces, served.wordpieces)
        assert trained.offsets == served.offsets


def test_only_a_served_featurizer_patches_rasa_and_the_allocator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Rasa loads the featurizer for training too; the server's allocator slowed training's fit.
    import rasa_patches

    calls: List[str] = []
    monkeypatch.setattr(rasa_patches, "install", lambda: calls.append("install") or {})

    def load(fn: str) -> None:
        node = SchemaNode(
            needs={}, uses=SentenceEmbeddingFeaturizer, constructor_name="load", fn=fn, config={}
        )
        context = ExecutionContext(
            graph_schema=GraphSchema({"run_embeddings": node}), node_name="run_embeddings"
        )
        SentenceEmbeddingFeaturizer.load({}, None, None, context)  # type: ignore[arg-type]

    load("process_training_data")
    assert calls == []
    load("process")
    assert calls == ["install"]
