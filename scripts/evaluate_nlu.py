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

from actions.topic_choice import (
    GUARD_REASON_KEY,
    RUNNER_UP_FLOOR,
    WARNING_SIGNS,
    classifier_ranking,
    likely_topics,
    plausible_runner_up,
)
from nlu_contract import PART_OF_TOPIC

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
    """Whether the answer to ``predicted`` is right for the question (see PART_OF_TOPIC)."""
    for topic in (predicted, PART_OF_TOPIC.get(predicted)):
        if topic and (topic == question.topic or topic in question.also_ok):
            return True
    return question.topic == "out_of_scope" and predicted == FALLBACK_INTENT


@dataclass(frozen=True)
class Unsure:
    """When the FallbackClassifier asks instead of answering (config.yml)."""

    threshold: float
    ambiguity: float


def deployed_unsure(config_path: Path = REPO_ROOT / "config.yml") -> Unsure:
    """The FallbackClassifier's settings in config.yml, the ones the trained model applies."""
    import yaml

    for component in yaml.safe_load(config_path.read_text())["pipeline"]:
        if component["name"] == "FallbackClassifier":
            return Unsure(component["threshold"], component.get("ambiguity_threshold", 0.1))
    raise ValueError(f"no FallbackClassifier in {config_path}")


def as_if(parse: dict, unsure: Unsure) -> dict:
    """The parse as a FallbackClassifier with ``unsure`` would have left it (for the sweep).

    The ranking under the fallback's entry is the classifier's own, so any threshold can be
    replayed; where the message guard chose the intent, its choice stands.
    """
    if parse.get(GUARD_REASON_KEY):
        return parse
    ranking = classifier_ranking(parse)
    if not ranking:
        return parse
    first = ranking[0][1]
    second = ranking[1][1] if len(ranking) > 1 else 0.0
    asks = first < unsure.threshold or first - second < unsure.ambiguity
    name = FALLBACK_INTENT if asks else ranking[0][0]
    return {**parse, "intent": {"name": name, "confidence": first}}


def reply_outcome(
    question: LabelledQuestion, parse: dict, runner_up_floor: float = RUNNER_UP_FLOOR
) -> str:
    """What the patient gets: "first" (the right answer straight away), "tap" (one tap away
    on a button the reply offers), or "wrong"; "asked" replies are also counted apart.

    A warning_signs guess is answered, never offered, so it counts as shown. A fallback reply to
    an out-of-scope question is right, as in plain accuracy: it answers nothing about the HSG.
    """
    predicted = topic_of((parse.get("intent") or {}).get("name"))
    if predicted != FALLBACK_INTENT or parse.get(GUARD_REASON_KEY):
        runner_up = plausible_runner_up(parse, runner_up_floor)
        if is_correct(question, predicted):
            return "first"
        if runner_up == WARNING_SIGNS and is_correct(question, runner_up):
            return "first"
        return "tap" if runner_up and is_correct(question, runner_up) else "wrong"
    choices = likely_topics(parse)
    if is_correct(question, FALLBACK_INTENT):
        return "first"
    if WARNING_SIGNS in choices and is_correct(question, WARNING_SIGNS):
        return "first"
    return "tap" if any(is_correct(question, choice) for choice in choices) else "wrong"


def one_tap_scores(
    questions: list[LabelledQuestion], parses: list[dict], runner_up_floor: float = RUNNER_UP_FLOOR
) -> dict:
    """Right first, right first or after one tap, and how often the assistant asked."""
    outcomes = [reply_outcome(q, p, runner_up_floor) for q, p in zip(questions, parses)]
    asked = sum(topic_of((p.get("intent") or {}).get("name")) == FALLBACK_INTENT for p in parses)
    also = sum(
        topic_of((p.get("intent") or {}).get("name")) != FALLBACK_INTENT
        and plausible_runner_up(p, runner_up_floor) is not None
        for p in parses
    )
    total = len(questions) or 1
    return {
        "right_first": outcomes.count("first") / total,
        "right_first_or_one_tap": (outcomes.count("first") + outcomes.count("tap")) / total,
        "asked": asked / total,
        "wrong_answer": outcomes.count("wrong") / total,
        "also_offered": also / total,
    }


async def predict(model_path: Path, texts: list[str]) -> list[str]:
    """The predicted topic of each text."""
    return [
        topic_of((parse.get("intent") or {}).get("name"))
        for parse in await parse_all(model_path, texts)
    ]


async def parse_all(model_path: Path, texts: list[str]) -> list[dict]:
    """The trained model's whole parse of each text (intent, ranking, guard reason)."""
    import logging

    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    # Rasa's debug log repeats every parsed text; the questions are not for the console.
    configure_structlog(logging.WARNING)

    agent = Agent.load(str(model_path))
    return [await agent.parse_message(text) for text in texts]


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


def scored(questions: list[LabelledQuestion], parses: list[dict]) -> dict:
    """Plain accuracy and the rest (score) beside what the patient gets (one_tap_scores)."""
    predictions = [topic_of((parse.get("intent") or {}).get("name")) for parse in parses]
    return {**score(questions, predictions), **one_tap_scores(questions, parses)}


# The settings the sweep tries; only ever scored on the held-out set.
SWEEP_THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
SWEEP_AMBIGUITIES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
SWEEP_RUNNER_UP_FLOORS = (0.1, 0.15, 0.2, 0.25, 0.3)


def sweep(questions: list[LabelledQuestion], parses: list[dict]) -> list[dict]:
    """Each unsure setting replayed on the held-out parses (how config.yml's values were chosen)."""
    rows = []
    for threshold in SWEEP_THRESHOLDS:
        for ambiguity in SWEEP_AMBIGUITIES:
            replayed = [as_if(parse, Unsure(threshold, ambiguity)) for parse in parses]
            predictions = [topic_of(p["intent"]["name"]) for p in replayed]
            accuracy = sum(map(is_correct, questions, predictions)) / len(questions)
            for floor in SWEEP_RUNNER_UP_FLOORS:
                rows.append(
                    {
                        "threshold": threshold,
                        "ambiguity": ambiguity,
                        "runner_up_floor": floor,
                        "accuracy": accuracy,
                        **one_tap_scores(questions, replayed, floor),
                    }
                )
    return rows


def evaluate(model_path: Path) -> dict:
    held_out = held_out_questions()
    public = public_sample_questions()
    parses = asyncio.run(parse_all(model_path, [q.text for q in held_out + public]))
    held_out_parses, public_parses = parses[: len(held_out)], parses[len(held_out) :]
    return {
        "held_out": scored(held_out, held_out_parses),
        "public_sample": scored(public, public_parses) if public else None,
        "held_out_sweep": sweep(held_out, held_out_parses),
    }


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown(results: dict) -> str:
    lines = [
        '| set | examples | accuracy | right first or after one tap | asked | "Also:" offered '
        "| wrong answer | macro F1 | warning_signs recall | out_of_scope precision |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("held_out", "public_sample"):
        result = results.get(name)
        if result:
            lines.append(
                f"| {name} | {result['examples']} | {result['accuracy']:.3f} | "
                f"{result['right_first_or_one_tap']:.3f} | {result['asked']:.3f} | "
                f"{result['also_offered']:.3f} | {result['wrong_answer']:.3f} | {result['macro_f1']:.3f} | "
                f"{_figure(result['warning_signs_recall'])} | "
                f"{_figure(result['out_of_scope_precision'])} |"
            )
    lines += [
        "",
        "Right first or after one tap: the right answer straight away, or on a button the reply "
        "offers (the fallback's likely topics, or an answer's \"Also:\" reply). Asked: share of "
        "messages that got the likely topics as buttons instead of an answer.",
    ]
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


def sweep_markdown(rows: list[dict]) -> str:
    """The held-out sweep, fewest wrong answers first (ties: fewest questions asked)."""
    deployed = deployed_unsure()
    lines = [
        "# Unsure settings replayed on the held-out set",
        "",
        f"Deployed (config.yml): threshold {deployed.threshold}, ambiguity {deployed.ambiguity}; "
        f"runner-up floor {RUNNER_UP_FLOOR} (actions/topic_choice.py). Never run on the public sample.",
        "",
        "| threshold | ambiguity | runner-up floor | accuracy | right first or one tap | asked "
        "| wrong answer |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: (r["wrong_answer"], r["asked"]))[:40]:
        lines.append(
            f"| {row['threshold']} | {row['ambiguity']} | {row['runner_up_floor']} | "
            f"{row['accuracy']:.3f} | {row['right_first_or_one_tap']:.3f} | {row['asked']:.3f} | "
            f"{row['wrong_answer']:.3f} |"
        )
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
    (args.out / "thresholds.md").write_text(sweep_markdown(results["held_out_sweep"]))
    print(markdown(results))
    for name in ("held_out", "public_sample"):
        result = results.get(name)
        if result and result["errors"]:
            print(f"Errors on {name}:")
            for error in result["errors"]:
                print(f"  {error['expected']:>22} -> {error['predicted']:<22} {error['text']}")


if __name__ == "__main__":
    main()
