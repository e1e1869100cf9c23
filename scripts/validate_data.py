"""`rasa data validate` that fails on every warning except two that Rasa 3.6 gets wrong.

Rasa's validator calls a response unused unless a story or rule names it, so it flags every
response that a custom action sends (form hints, the fallback's messages, the "tell me more"
details) or the staff inbox sends (handoff/). Those, and only those, are allowed: each must be
named in actions/ or handoff/ as `"utter_..."`
or match an f-string that composes names (`f"utter_invalid_{...}"`, `f"utter_{topic}_detail"`).
Responses the outreach worker sends (outreach/) count as sent by an action too. Intents that only
buttons' payloads produce (PAYLOAD_ONLY_INTENTS) have no NLU examples on purpose.
Rasa also warns that slot auto-fill was removed in 3.0 every time it reads slot mappings,
whatever they are.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Sent only as button payloads: classifying free text as one of them would be a mistake.
PAYLOAD_ONLY_INTENTS = {"checkin_reply"}
NO_EXAMPLES = re.compile(
    r"The intent '(\w+)' is listed in the domain file, but is not found in the NLU"
)
UNUSED_RESPONSE = re.compile(r"The utterance '(utter_\w+)' is not used in any story or rule\.")
ALWAYS_RAISED = "Slot auto-fill has been removed in 3.0"
# An f-string naming responses, e.g. f"utter_invalid_{hint or 'empty'}" or f"utter_{topic}_detail".
COMPOSED_NAME = re.compile(r"""f(["'])(utter_(?:\w|\{[^{}]*\})*)\1""")
PLACEHOLDER = re.compile(r"\{[^{}]*\}")
# What a name composed from nothing but a placeholder would match: every response. Such an
# f-string (f"utter_{intent}") only looks a name up, and must not excuse every unused response.
ANY_RESPONSE = r"utter_\w+"


def responses_sent_by_actions() -> tuple[set[str], list[re.Pattern[str]]]:
    """Response names the actions send, and patterns of the names they compose.

    A composed name is matched whole, not by its prefix: f"utter_{topic}_detail" allows the
    `_detail` family that actions/faq_details.py picks by the topic, and nothing else.
    """
    names: set[str] = set()
    patterns: set[str] = set()
    sources = [
        *(REPO_ROOT / "actions").glob("*.py"),
        *(REPO_ROOT / "outreach").glob("*.py"),
        *(REPO_ROOT / "handoff").glob("*.py"),
    ]
    for path in sources:
        source = path.read_text()
        names |= set(re.findall(r"[\"'](utter_\w+)[\"']", source))
        for _, template in COMPOSED_NAME.findall(source):
            literal_parts = PLACEHOLDER.split(template)
            pattern = r"\w+".join(re.escape(part) for part in literal_parts)
            if len(literal_parts) > 1 and pattern != ANY_RESPONSE:
                patterns.add(pattern)
    return names, [re.compile(pattern) for pattern in sorted(patterns)]


def responses_of_form_questions() -> set[str]:
    """Rasa asks each required slot of a form with utter_ask_<slot> itself."""
    from rasa.shared.core.domain import Domain

    domain = Domain.load(str(REPO_ROOT / "domain"))
    return {
        f"utter_ask_{slot}"
        for form in domain.forms.values()
        for slot in form.get("required_slots", [])
    }


def main() -> int:
    from rasa.cli.utils import validate_files
    from rasa.shared.importers.importer import TrainingDataImporter

    importer = TrainingDataImporter.load_from_config(
        config_path=str(REPO_ROOT / "config.yml"),
        domain_path=str(REPO_ROOT / "domain"),
        training_data_paths=[str(REPO_ROOT / "data")],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        validate_files(fail_on_warnings=False, max_history=None, importer=importer)
    sent, composed = responses_sent_by_actions()
    allowed = sent | responses_of_form_questions()
    problems = []
    for warning in caught:
        message = str(warning.message)
        if not issubclass(warning.category, UserWarning) or message.startswith(ALWAYS_RAISED):
            continue
        no_examples = NO_EXAMPLES.search(message)
        if no_examples and no_examples.group(1) in PAYLOAD_ONLY_INTENTS:
            continue
        unused = UNUSED_RESPONSE.search(message)
        if unused and (
            unused.group(1) in allowed
            or any(pattern.fullmatch(unused.group(1)) for pattern in composed)
        ):
            continue
        problems.append(message)
    for problem in problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    print(f"data validation: {len(problems)} warning(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
