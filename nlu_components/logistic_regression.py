"""Rasa's LogisticRegressionClassifier, trained with its dense sentence embeddings kept dense.

Rasa joins each message's sparse n-gram counts and its 768 dense embedding values into one sparse
matrix. scikit-learn's lbfgs then multiplies 768 stored "sparse" values per row in every one of
its hundreds of iterations, one value at a time: 120 s of the 190 s training took. This
component minimises scikit-learn's own objective (its `LinearModelLoss` with the multinomial
loss, the same L-BFGS-B call, tolerance, iteration limit, L2 strength and balanced class
weights) over a design matrix kept in two blocks, so the dense block goes through BLAS. The
result is the same fitted `LogisticRegression` (tests/nlu_components/test_logistic_regression.py
compares it with scikit-learn's own fit); persistence and loading are Rasa's.

The sparse block is also kept transposed, as a CSR built once: the gradient's ``left @ X`` had
multiplied by the transpose of a CSR, a CSC, which is two to five times slower. During the fit
both sparse products are split by rows across every core (scipy's sparse products release the
GIL). Each row of a product is computed by the same code, in the same order, however the rows
are split: the products, and so the fit, are the same to the bit. On this project's training
data the fit went from 56 to 39 s on two idle cores (48 s with the transpose alone), in the
same 279 iterations.

Served, Rasa's ``process`` joins each message's two blocks into one sparse row (``hstack``) before
``predict_proba``: 3 ms a message, against 0.2 ms for the same softmax of the same products taken
block by block, which ``process`` here does (the same intents and ranking as Rasa's, tested).
A served model also keeps BLAS to one thread (see ``load``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Text

import numpy as np
import scipy.sparse
import threadpoolctl
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.utils.tensorflow.constants import RANKING_LENGTH
from scipy import optimize
from sklearn._loss.loss import HalfMultinomialLoss
from sklearn.linear_model import LogisticRegression
from sklearn.linear_model._linear_loss import LinearModelLoss
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.extmath import softmax

from nlu_components.onnx_encoder import all_cores

# Rasa's LogisticRegressionClassifier does not expose C and fits with scikit-learn's default.
RASA_C = 1.0


class BlockDesignMatrix:
    """``[sparse | dense]`` as two blocks: the two products scikit-learn's loss needs, no more."""

    # Makes NumPy hand ``array @ X`` to __rmatmul__ instead of treating X as a 0-d object array.
    __array_ufunc__ = None

    def __init__(self, sparse: scipy.sparse.csr_matrix, dense: np.ndarray) -> None:
        if sparse.shape[0] != dense.shape[0]:
            raise ValueError(f"{sparse.shape[0]} sparse rows but {dense.shape[0]} dense rows")
        self.sparse = sparse.tocsr().astype(np.float64)
        # A CSR's transpose is a CSC, whose product with a dense block is the slow one.
        self.sparse_t = self.sparse.T.tocsr()
        self.dense = np.ascontiguousarray(dense, dtype=np.float64)
        self.shape = (sparse.shape[0], sparse.shape[1] + dense.shape[1])
        self._pool: ThreadPoolExecutor | None = None
        self._rows = [self.sparse]
        self._rows_t = [self.sparse_t]

    @contextmanager
    def threads(self, workers: int) -> Iterator[BlockDesignMatrix]:
        """Within this block, the sparse products run on ``workers`` threads, each on its share
        of the rows; the pool is shut down when the block ends."""
        if workers < 2:
            yield self
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="block-design-matrix") as pool:
            self._pool = pool
            self._rows = row_blocks(self.sparse, workers)
            self._rows_t = row_blocks(self.sparse_t, workers)
            try:
                yield self
            finally:
                self._pool = None
                self._rows, self._rows_t = [self.sparse], [self.sparse_t]

    def __matmul__(self, weights: np.ndarray) -> np.ndarray:
        """X @ weights, for weights of shape (n_features, k)."""
        split = self.sparse.shape[1]
        return self._sparse_product(self._rows, weights[:split]) + self.dense @ weights[split:]

    def __rmatmul__(self, left: np.ndarray) -> np.ndarray:
        """left @ X, for left of shape (k, n_samples)."""
        return np.hstack([self._sparse_product(self._rows_t, left.T).T, left @ self.dense])

    def _sparse_product(
        self, blocks: List[scipy.sparse.csr_matrix], right: np.ndarray
    ) -> np.ndarray:
        """``vstack(blocks) @ right``, one block per thread, stacked in order."""
        right = np.ascontiguousarray(right)
        if self._pool is None or len(blocks) == 1:
            return np.asarray(blocks[0] @ right)
        return np.vstack(list(self._pool.map(lambda block: np.asarray(block @ right), blocks)))


def row_blocks(matrix: scipy.sparse.csr_matrix, count: int) -> List[scipy.sparse.csr_matrix]:
    """``matrix`` cut into ``count`` runs of rows with about as many stored values each (rows of
    the transpose, the features, hold very different numbers of them)."""
    cuts = np.searchsorted(matrix.indptr, np.arange(1, count) * matrix.nnz / count)
    bounds = [0, *np.minimum(cuts, matrix.shape[0]).tolist(), matrix.shape[0]]
    return [matrix[start:stop] for start, stop in zip(bounds, bounds[1:])]


def fit_multinomial(
    X: BlockDesignMatrix,
    y: List[str],
    *,
    C: float,
    tol: float,
    max_iter: int,
    workers: int = 1,
) -> LogisticRegression:
    """What ``LogisticRegression(solver="lbfgs", class_weight="balanced").fit`` fits, on ``X``.

    Follows scikit-learn 1.1's ``_logistic_regression_path`` for a multinomial lbfgs fit with an
    intercept: zero start, balanced sample weights, L2 strength 1/C, gtol ``tol``. ``workers``
    threads share the sparse products; the result depends neither on their number nor on the
    machine's cores.
    """
    classes = np.unique(y)
    encoded = LabelEncoder().fit(classes).transform(y)
    sample_weight = compute_class_weight("balanced", classes=classes, y=y)[encoded]
    n_features = X.shape[1]
    loss = LinearModelLoss(
        base_loss=HalfMultinomialLoss(n_classes=classes.size), fit_intercept=True
    )
    start = np.zeros((classes.size, n_features + 1), order="F").ravel(order="F")
    # BLAS on one thread: with more, OpenBLAS splits the dense products and L-BFGS-B's vector
    # steps by the machine's core count, so their rounding, the iterations and the fitted
    # model differed from machine to machine. One thread also fitted faster (45 -> 38 s).
    with X.threads(workers), threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        result = optimize.minimize(
            loss.loss_gradient,
            start,
            method="L-BFGS-B",
            jac=True,
            args=(X, encoded.astype(np.float64), sample_weight, 1.0 / C, 1),
            options={"gtol": tol, "maxiter": max_iter},
        )
    weights = result.x.reshape((classes.size, -1), order="F")
    classifier = LogisticRegression(solver="lbfgs", C=C, tol=tol, max_iter=max_iter)
    classifier.classes_ = classes
    classifier.coef_ = np.ascontiguousarray(weights[:, :n_features])
    classifier.intercept_ = weights[:, -1].copy()
    classifier.n_iter_ = np.array([result.nit], dtype=np.int32)
    classifier.n_features_in_ = n_features
    return classifier


def sentence_features(
    message: Message,
) -> tuple[scipy.sparse.csr_matrix | None, np.ndarray | None]:
    """A message's sentence features of its text, sparse and dense, each joined in the order
    the featurizers added them: what ``get_sparse_features(TEXT)[1]`` and
    ``get_dense_features(TEXT)[1]`` return, without what those also do on every call, deep-copy
    and join the per-token features (5-8 s of a training run, over the training sentences).
    """
    ours = [
        f.features
        for f in message.features
        if f.attribute == TEXT and f.type == FEATURE_TYPE_SENTENCE
    ]
    sparse = [features for features in ours if scipy.sparse.issparse(features)]
    dense = [features for features in ours if not scipy.sparse.issparse(features)]
    return (
        scipy.sparse.hstack(sparse, format="csr") if sparse else None,
        np.hstack(dense) if dense else None,
    )


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class BlockLogisticRegressionClassifier(LogisticRegressionClassifier, GraphComponent):
    """Rasa's logistic regression intent classifier, trained on blocks (see the module)."""

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        labels = [e.get(INTENT) for e in examples]
        if len(set(labels)) < 3:
            # Two classes take scikit-learn's binary path, which this module does not follow.
            return super().train(training_data)
        rows = [sentence_features(example) for example in examples]
        X = BlockDesignMatrix(
            scipy.sparse.vstack([sparse for sparse, _ in rows], format="csr"),
            np.vstack([dense for _, dense in rows]),
        )
        self.clf = fit_multinomial(
            X,
            labels,
            C=RASA_C,
            tol=float(self.config["tol"]),
            max_iter=int(self.config["max_iter"]),
            workers=all_cores(),
        )
        self.persist()
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LogisticRegressionClassifier:
        """Rasa's load, in a process that then serves: BLAS on one thread.

        A served product is one message's 768 values by 36 topics. OpenBLAS's second thread
        gained nothing on it and spun waiting for the next one, on the core the sentence encoder
        runs on: 5 ms of CPU a message under load. Training (which never loads) keeps every core.
        """
        threadpoolctl.threadpool_limits(limits=1, user_api="blas")
        return super().load(config, model_storage, resource, execution_context, **kwargs)

    def process(self, messages: List[Message]) -> List[Message]:
        """Rasa's process, with the probabilities taken block by block (see the module)."""
        blocks = [sentence_features(message) for message in messages]
        if not messages or any(sparse is None or dense is None for sparse, dense in blocks):
            return super().process(messages)
        probabilities = self._probabilities(
            scipy.sparse.vstack([sparse for sparse, _ in blocks], format="csr"),
            np.vstack([dense for _, dense in blocks]),
        )
        for message, row in zip(messages, probabilities):
            ranking = sorted(
                ({"name": name, "confidence": p} for name, p in zip(self.clf.classes_, row)),
                key=lambda entry: -entry["confidence"],
            )
            intent = ranking[0]
            if self.config[RANKING_LENGTH] > 0:
                ranking = ranking[: self.config[RANKING_LENGTH]]
            message.set("intent", intent, add_to_output=True)
            message.set("intent_ranking", ranking, add_to_output=True)
        return messages

    def _probabilities(self, sparse: scipy.sparse.csr_matrix, dense: np.ndarray) -> np.ndarray:
        """scikit-learn's multinomial predict_proba: the softmax of X @ coef.T + intercept."""
        weights = self._weights()
        split = sparse.shape[1]
        scores = np.asarray(sparse @ weights[:split]) + dense.astype(np.float64) @ weights[split:]
        return softmax(scores + self.clf.intercept_, copy=False)

    def _weights(self) -> np.ndarray:
        """``coef_`` as a contiguous (n_features, n_classes) array, copied once per fitted model."""
        made_for, weights = getattr(self, "_contiguous_weights", (None, None))
        if made_for is not self.clf:
            weights = np.ascontiguousarray(self.clf.coef_.T)
            self._contiguous_weights = (self.clf, weights)
        return weights
