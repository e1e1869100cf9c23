"""Intent recognition on the held-out file: this project's model beside two baselines.

Baselines, trained on the same data/nlu: Rasa's stock pipeline (the one `rasa init` trains
with, read from Rasa's own default config) and TF-IDF + logistic regression in scikit-learn.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from scripts.evaluate_nlu import (
    LabelledQuestion,
    held_out_questions,
    predict,
    score,
    topic_of,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def training_examples() -> tuple[list[str], list[str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    examples = load_data(str(REPO_ROOT / "data" / "nlu")).intent_examples
    return [m.get("text") for m in examples], [m.get("intent") for m in examples]


def tfidf_predictions(texts: list[str]) -> list[str]:
    """The textbook baseline: word and character TF-IDF, one linear model over both."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    train_texts, train_intents = training_examples()
    model = make_pipeline(
        make_union(
            TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(
                lowercase=True, analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True
            ),
        ),
        LogisticRegression(max_iter=2000, C=10, random_state=42),
    )
    model.fit(train_texts, train_intents)
    return [topic_of(intent) for intent in model.predict(texts)]


def evaluate_all(
    project_model: Path, stock_model: Path, stock_seconds: float
) -> list[tuple[str, dict, float | None]]:
    """(label, score, training seconds) for each of the three, on the held-out questions."""
    questions: list[LabelledQuestion] = held_out_questions()
    texts = [q.text for q in questions]
    rows = [
        (
            "this project (config.yml)",
            score(questions, asyncio.run(predict(project_model, texts))),
            None,
        )
    ]
    rows.append(
        (
            "Rasa stock pipeline (`rasa init`: DIET)",
            score(questions, asyncio.run(predict(stock_model, texts))),
            stock_seconds,
        )
    )
    started = time.monotonic()
    baseline = tfidf_predictions(texts)
    rows.append(
        (
            "TF-IDF + logistic regression (scikit-learn)",
            score(questions, baseline),
            time.monotonic() - started,
        )
    )
    return rows


def markdown_table(rows: list[tuple[str, dict, float | None]]) -> str:
    def figure(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        "| pipeline | accuracy | macro F1 | warning_signs recall | out_of_scope precision | "
        "most confused (expected → predicted: count) |",
        "|---|---|---|---|---|---|",
    ]
    for label, result, _ in rows:
        confused = "; ".join(
            f"{c['expected']} → {c['predicted']}: {c['count']}"
            for c in result["top_confusions"][:3]
        )
        lines.append(
            f"| {label} | {figure(result['accuracy'])} | {figure(result['macro_f1'])} | "
            f"{figure(result['warning_signs_recall'])} | "
            f"{figure(result['out_of_scope_precision'])} | {confused} |"
        )
    return "\n".join(lines)
