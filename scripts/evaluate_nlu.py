"""Scores a trained model's intent classification on the held-out file(s) and the public sample.

Writes results/nlu/report.json and report.md; prints a summary. The public sample
(../shared/eval/public_questions.tsv) is only ever read here, never trained on; it lies outside
the repository, so where it is absent (a lone clone) its score is skipped with a message.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sklearn.metrics import classification_report

REPO_ROOT = Path(__file__).resolve().parent.parent
HELD_OUT_DIR = REPO_ROOT / "tests" / "nlu"
PUBLIC_SAMPLE = REPO_ROOT.parent / "shared" / "eval" / "public_questions.tsv"
FALLBACK_INTENT = "nlu_fallback"


@dataclass
class LabelledQuestion:
    text: str
    topic: str
    also_ok: tuple[str, ...] = field(default_factory=tuple)


def held_out_questions(directory: Path = HELD_OUT_DIR) -> list[LabelledQuestion]:
    from rasa.shared.nlu.training_data.loading import load_data

    return [
        LabelledQuestion(message.get("text"), message.get("intent"))
        for path in sorted(directory.glob("*.yml"))
        for message in load_data(str(path)).intent_examples
    ]


def public_sample_skipped(path: Path = PUBLIC_SAMPLE) -> str | None:
    """Why the public sample is not scored here, or None when it is there to score."""
    if path.exists():
        return None
    return f"Public sample not scored: {path} is absent (it lives outside the repository)."


def public_sample_questions(path: Path = PUBLIC_SAMPLE) -> list[LabelledQuestion]:
    """The public sample's questions; none where the file is absent (see public_sample_skipped)."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return [
            LabelledQuestion(
                row["text"],
                row["topic"],
                tuple(t for t in (row.get("also_ok") or "").split(",") if t),
            )
            for row in rows
        ]


def topic_of(intent: str | None) -> str:
    """The topic key a predicted intent names (retrieval intents: the part after the slash)."""
    if not intent:
        return FALLBACK_INTENT
    return intent.split("/", 1)[-1]


def is_correct(question: LabelledQuestion, predicted: str) -> bool:
    if predicted == question.topic or predicted in question.also_ok:
        return True
    return question.topic == "out_of_scope" and predicted == FALLBACK_INTENT


async def predict(model_path: Path, texts: list[str]) -> list[str]:
    import logging

    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    # Rasa's debug log repeats every parsed text; the questions are not for the console.
    configure_structlog(logging.WARNING)

    agent = Agent.load(str(model_path))
    predictions = []
    for text in texts:
        parse = await agent.parse_message(text)
        predictions.append(topic_of((parse.get("intent") or {}).get("name")))
    return predictions


def score(questions: list[LabelledQuestion], predictions: list[str]) -> dict:
    correct = [is_correct(q, p) for q, p in zip(questions, predictions)]
    # Count an accepted alternative as the expected topic, so F1 reflects what was judged right.
    expected = [q.topic for q in questions]
    judged = [q.topic if ok else p for q, p, ok in zip(questions, predictions, correct)]
    report = classification_report(expected, judged, output_dict=True, zero_division=0)
    confusions = Counter(
        (q.topic, p) for q, p, ok in zip(questions, predictions, correct) if not ok
    )
    warning = report.get("warning_signs", {})
    # A real question refused as out of scope costs a patient an answer, whichever way it was
    # refused: by the out_of_scope intent or by the fallback.
    refused = [q for q, p in zip(questions, predictions) if p in ("out_of_scope", FALLBACK_INTENT)]
    return {
        "examples": len(questions),
        "accuracy": sum(correct) / len(questions) if questions else 0.0,
        "macro_f1": report["macro avg"]["f1-score"],
        "warning_signs_recall": warning.get("recall"),
        "out_of_scope_precision": (
            sum(q.topic == "out_of_scope" for q in refused) / len(refused) if refused else None
        ),
        "per_intent_f1": {
            label: values["f1-score"]
            for label, values in report.items()
            if isinstance(values, dict) and label not in ("macro avg", "weighted avg")
        },
        "top_confusions": [
            {"expected": e, "predicted": p, "count": n} for (e, p), n in confusions.most_common(10)
        ],
        "errors": [
            {"text": q.text, "expected": q.topic, "predicted": p}
            for q, p, ok in zip(questions, predictions, correct)
            if not ok
        ],
    }


def evaluate(model_path: Path) -> dict:
    held_out = held_out_questions()
    public = public_sample_questions()
    predictions = asyncio.run(predict(model_path, [q.text for q in held_out + public]))
    return {
        "held_out": score(held_out, predictions[: len(held_out)]),
        "public_sample": score(public, predictions[len(held_out) :]) if public else None,
    }


def markdown(results: dict) -> str:
    lines = [
        "| set | examples | accuracy | macro F1 | warning_signs recall |",
        "|---|---|---|---|---|",
    ]
    for name, result in results.items():
        if result:
            lines.append(
                f"| {name} | {result['examples']} | {result['accuracy']:.3f} | "
                f"{result['macro_f1']:.3f} | {result['warning_signs_recall']} |"
            )
    skipped = public_sample_skipped()
    if skipped and not results.get("public_sample"):
        lines += ["", skipped]
    held_out = results["held_out"]
    lines += ["", "Per-intent F1 (held-out):", ""]
    lines += [f"- {label}: {f1:.2f}" for label, f1 in sorted(held_out["per_intent_f1"].items())]
    lines += ["", "Most confused (held-out):", ""]
    lines += [
        f"- {c['expected']} -> {c['predicted']}: {c['count']}" for c in held_out["top_confusions"]
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "hsg-assistant.tar.gz")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "nlu")
    args = parser.parse_args()
    skipped = public_sample_skipped()
    if skipped:
        print(skipped)
    results = evaluate(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(results, indent=2))
    (args.out / "report.md").write_text(markdown(results))
    print(markdown(results))
    for name, result in results.items():
        if result and result["errors"]:
            print(f"Errors on {name}:")
            for error in result["errors"]:
                print(f"  {error['expected']:>22} -> {error['predicted']:<22} {error['text']}")


if __name__ == "__main__":
    main()
