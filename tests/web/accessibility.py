"""axe-core in the browser tests: the `axe` fixture checks a Playwright page against WCAG 2.2 AA.

axe-core is pinned in web/package.json and installed by `make setup` (npm ci); it is read from
web/node_modules and evaluated in the page, so nothing is downloaded while the tests run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

AXE_SCRIPT = (
    Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
)
# Every success criterion of levels A and AA up to WCAG 2.2 that axe-core can test.
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
# Rules that fail in the pinned widget and cannot be fixed around it: rule id -> the reason (the
# README's "Accessibility" section lists the same). Empty: every page passes every rule.
KNOWN_EXCEPTIONS: dict[str, str] = {}


def describe(violations: list[dict]) -> str:
    """One line per failing element: rule, impact, element and axe's own explanation."""
    lines = []
    for violation in violations:
        for node in violation["nodes"]:
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(
                f"{violation['id']} ({violation['impact']}): {json.dumps(node['target'])}: {summary}"
            )
    return "\n".join(lines)


def axe_violations(page, tags: list[str] = WCAG_22_AA) -> list[dict]:
    """The page's violations of the tagged rules, minus the known exceptions."""
    # Evaluated rather than added as a <script>: the page's Content-Security-Policy allows only
    # its own scripts, and the check must not loosen the policy it runs under.
    if not page.evaluate("() => Boolean(window.axe)"):
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    results = page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags},
                                       resultTypes: ['violations']})""",
        tags,
    )
    return [v for v in results["violations"] if v["id"] not in KNOWN_EXCEPTIONS]


@pytest.fixture(scope="session")
def axe() -> Callable[..., None]:
    """``axe(page, "what is shown")`` fails the test with every WCAG 2.2 AA violation found."""
    if not AXE_SCRIPT.exists():
        message = f"{AXE_SCRIPT} is missing: `make setup` installs axe-core (npm ci in web/)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    def check(page, state: str) -> None:
        violations = axe_violations(page)
        assert not violations, f"axe-core, {state}:\n{describe(violations)}"

    return check


def focused_element_is_visible(page) -> dict:
    """What a sighted keyboard user sees of the focused element: its outline, and whether
    anything (the fixed chat launcher, a header) covers its middle (WCAG 2.4.7 and 2.4.11)."""
    return page.evaluate(
        """() => {
            const element = document.activeElement;
            const style = getComputedStyle(element);
            const box = element.getBoundingClientRect();
            const x = Math.min(Math.max(box.left + box.width / 2, 0), innerWidth - 1);
            const y = Math.min(Math.max(box.top + box.height / 2, 0), innerHeight - 1);
            const onTop = document.elementFromPoint(x, y);
            return {
                element: element.outerHTML.slice(0, 120),
                outlined: (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2)
                    || style.boxShadow !== 'none',
                inView: box.bottom > 0 && box.top < innerHeight && box.right > 0
                    && box.left < innerWidth,
                uncovered: onTop !== null && (element.contains(onTop) || onTop.contains(element)),
            };
        }"""
    )


def press_tab_until(page, matches: str, *, backwards: bool = False, limit: int = 80) -> None:
    """Presses Tab (or Shift+Tab) until ``matches`` (a JS function of the focused element) is true;
    fails when it is never reached, or when the element reached has no visible focus."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(limit):
        page.keyboard.press(key)
        if page.evaluate(f"() => Boolean(({matches})(document.activeElement))"):
            seen = focused_element_is_visible(page)
            assert seen["outlined"] and seen["inView"] and seen["uncovered"], seen
            return
    raise AssertionError(f"{limit} presses of {key} never reached {matches}")
