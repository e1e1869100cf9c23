"""The block-trained classifier fits what scikit-learn's own LogisticRegression fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import threadpoolctl
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, FEATURE_TYPE_SEQUENCE, INTENT, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from sklearn.linear_model import LogisticRegression

from nlu_components.logistic_regression import (
    BlockDesignMatrix,
    BlockLogisticRegressionClassifier,
    fit_multinomial,
    row_blocks,
    sentence_features,
)


def sparse_and_dense(seed: int = 0) -> tuple[scipy.sparse.csr_matrix, np.ndarray, list[str]]:
    """Counts and scaled unit vectors like the pipeline's, with unbalanced topics."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(
        ["pain", "prep", "risks", "cost", "results"], size=300, p=[0.4, 0.3, 0.15, 0.1, 0.05]
    )
    centres = {label: rng.normal(size=32) for label in set(labels)}
    dense = np.vstack([centres[label] + rng.normal(scale=0.8, size=32) for label in labels])
    dense = 17 * dense / np.linalg.norm(dense, axis=1, keepdims=True)
    counts = scipy.sparse.random(300, 400, density=0.03, random_state=seed, format="csr")
    counts.data = np.ceil(counts.data * 3)
    return counts, dense, [str(label) for label in labels]


def test_the_fit_matches_scikit_learns_on_the_joined_matrix():
    counts, dense, labels = sparse_and_dense()
    expected = LogisticRegression(
        solver="lbfgs", C=1.0, tol=1e-4, max_iter=1000, class_weight="balanced", random_state=42
    ).fit(scipy.sparse.hstack([counts, scipy.sparse.csr_matrix(dense)]).tocsr(), labels)

    fitted = fit_multinomial(
        BlockDesignMatrix(counts, dense), labels, C=1.0, tol=1e-4, max_iter=1000
    )

    joined = scipy.sparse.hstack([counts, scipy.sparse.csr_matrix(dense)]).tocsr()
    assert list(fitted.classes_) == list(expected.classes_)
    np.testing.assert_allclose(
        fitted.predict_proba(joined), expected.predict_proba(joined), atol=1e-3
    )
    assert (fitted.predict(joined) == expected.predict(joined)).all()
    assert fitted.coef_.shape == expected.coef_.shape


def test_the_blocks_multiply_like_the_joined_matrix():
    counts, dense, _labels = sparse_and_dense(seed=1)
    blocks = BlockDesignMatrix(counts, dense)
    joined = scipy.sparse.hstack([counts, scipy.sparse.csr_matrix(dense)]).toarray()
    rng = np.random.default_rng(2)
    right, left = rng.normal(size=(joined.shape[1], 5)), rng.normal(size=(5, joined.shape[0]))

    np.testing.assert_allclose(blocks @ right, joined @ right)
    np.testing.assert_allclose(left @ blocks, left @ joined)
    assert blocks.shape == joined.shape


def test_blocks_with_different_row_counts_are_refused():
    counts, dense, _labels = sparse_and_dense()
    with pytest.raises(ValueError):
        BlockDesignMatrix(counts, dense[:-1])


def messages_with_blocks(counts: scipy.sparse.csr_matrix, dense: np.ndarray) -> list[Message]:
    """Messages carrying a sentence's two feature blocks, as the pipeline's featurizers set them."""
    messages = []
    for row in range(counts.shape[0]):
        message = Message(data={TEXT: f"question {row}"})
        message.add_features(Features(counts[row], FEATURE_TYPE_SENTENCE, TEXT, "counts"))
        message.add_features(Features(dense[row : row + 1], FEATURE_TYPE_SENTENCE, TEXT, "mpnet"))
        messages.append(message)
    return messages


def test_served_topics_and_rankings_are_rasas_own(tmp_path: Path) -> None:
    counts, dense, labels = sparse_and_dense(seed=3)
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), node_name="classifier")
    config = {**BlockLogisticRegressionClassifier.get_default_config(), "ranking_length": 3}
    ours = BlockLogisticRegressionClassifier.create(
        config, storage, Resource("classifier"), context
    )
    ours.clf = fit_multinomial(
        BlockDesignMatrix(counts, dense), labels, C=1.0, tol=1e-4, max_iter=1000
    )
    rasas = LogisticRegressionClassifier.create(config, storage, Resource("rasas"), context)
    rasas.clf = ours.clf

    served = ours.process(messages_with_blocks(counts[:40], dense[:40]))
    expected = rasas.process(messages_with_blocks(counts[:40], dense[:40]))

    for mine, theirs in zip(served, expected):
        assert mine.get(INTENT)["name"] == theirs.get(INTENT)["name"]
        assert [e["name"] for e in mine.get("intent_ranking")] == [
            e["name"] for e in theirs.get("intent_ranking")
        ]
        assert len(mine.get("intent_ranking")) == 3
        np.testing.assert_allclose(
            [e["confidence"] for e in mine.get("intent_ranking")],
            [e["confidence"] for e in theirs.get("intent_ranking")],
            rtol=1e-9,
        )


def blas_threads() -> set[int]:
    return {
        pool["num_threads"]
        for pool in threadpoolctl.threadpool_info()
        if pool["user_api"] == "blas"
    }


def test_a_loaded_model_serves_with_blas_on_one_thread(tmp_path: Path) -> None:
    counts, dense, labels = sparse_and_dense(seed=4)
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), node_name="classifier")
    config = BlockLogisticRegressionClassifier.get_default_config()
    trained = BlockLogisticRegressionClassifier.create(
        config, storage, Resource("classifier"), context
    )
    trained.clf = fit_multinomial(
        BlockDesignMatrix(counts, dense), labels, C=1.0, tol=1e-4, max_iter=1000
    )
    trained.persist()
    before = max(blas_threads())
    try:
        loaded = BlockLogisticRegressionClassifier.load(
            config, storage, Resource("classifier"), context
        )

        assert blas_threads() == {1}
        served = loaded.process(messages_with_blocks(counts[:5], dense[:5]))
        assert [m.get(INTENT)["name"] for m in served] == list(
            trained.clf.predict(scipy.sparse.hstack([counts[:5], dense[:5]]).tocsr())
        )
    finally:
        threadpoolctl.threadpool_limits(limits=before, user_api="blas")


@pytest.mark.parametrize("workers", [2, 3])
def test_several_threads_give_the_products_of_one(workers: int) -> None:
    counts, dense, _labels = sparse_and_dense(seed=3)
    blocks = BlockDesignMatrix(counts, dense)
    rng = np.random.default_rng(4)
    right, left = rng.normal(size=(blocks.shape[1], 5)), rng.normal(size=(5, blocks.shape[0]))
    one = (blocks @ right, left @ blocks)

    with blocks.threads(workers):
        several = (blocks @ right, left @ blocks)

    # The same rows computed by the same code: equal to the bit, not merely close.
    np.testing.assert_array_equal(several[0], one[0])
    np.testing.assert_array_equal(several[1], one[1])
    # The pool is gone after the block; the products still work, on this thread.
    np.testing.assert_array_equal(blocks @ right, one[0])


def test_the_fit_does_not_depend_on_the_number_of_threads() -> None:
    counts, dense, labels = sparse_and_dense(seed=5)
    fits = [
        fit_multinomial(
            BlockDesignMatrix(counts, dense), labels, C=1.0, tol=1e-4, max_iter=1000, workers=n
        )
        for n in (1, 2)
    ]
    np.testing.assert_array_equal(fits[0].coef_, fits[1].coef_)
    np.testing.assert_array_equal(fits[0].intercept_, fits[1].intercept_)
    assert fits[0].n_iter_ == fits[1].n_iter_


class BlasThreadsSeen(BlockDesignMatrix):
    """Records how many threads BLAS had each time the fit multiplied."""

    seen: set[int]

    def __matmul__(self, weights: np.ndarray) -> np.ndarray:
        self.seen |= blas_threads()
        return super().__matmul__(weights)


def test_the_fit_runs_blas_on_one_thread_whatever_the_process_has() -> None:
    counts, dense, labels = sparse_and_dense(seed=7)
    matrix = BlasThreadsSeen(counts, dense)
    matrix.seen = set()

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        fit_multinomial(matrix, labels, C=1.0, tol=1e-4, max_iter=1000, workers=2)
        after = blas_threads()

    assert matrix.seen == {1}
    # The process's own setting is back once the fit is done.
    assert after == {2}


def test_row_blocks_cover_every_row_once_in_order() -> None:
    counts, _dense, _labels = sparse_and_dense(seed=6)
    for count in (1, 2, 3, 7):
        blocks = row_blocks(counts, count)
        assert len(blocks) == count
        np.testing.assert_array_equal(scipy.sparse.vstack(blocks).toarray(), counts.toarray())


def test_a_messages_sentence_features_are_those_rasa_joins() -> None:
    rng = np.random.default_rng(5)
    message = Message(data={TEXT: "does it hurt", "response": "a little"})
    for origin, width in (("word counts", 7), ("char counts", 11)):
        counts = scipy.sparse.random(1, width, density=0.4, random_state=width, format="coo")
        tokens = scipy.sparse.random(3, width, density=0.4, random_state=width + 1, format="coo")
        message.add_features(Features(counts, FEATURE_TYPE_SENTENCE, TEXT, origin))
        message.add_features(Features(tokens, FEATURE_TYPE_SEQUENCE, TEXT, origin))
    message.add_features(Features(rng.normal(size=(1, 5)), FEATURE_TYPE_SENTENCE, TEXT, "mpnet"))
    message.add_features(Features(rng.normal(size=(3, 5)), FEATURE_TYPE_SEQUENCE, TEXT, "mpnet"))
    message.add_features(Features(rng.normal(size=(1, 5)), FEATURE_TYPE_SENTENCE, "response", "x"))

    sparse, dense = sentence_features(message)

    assert (sparse != message.get_sparse_features(TEXT)[1].features).nnz == 0
    assert sparse.shape == (1, 18)
    np.testing.assert_array_equal(dense, message.get_dense_features(TEXT)[1].features)
    assert sentence_features(Message(data={TEXT: "hi"})) == (None, None)
