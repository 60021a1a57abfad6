"""Results as people and CI systems read them: fbp-spec's own text, TAP and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from msgflo.testing.spec.runner import CaseResult

INDENT = "  "


class TextReport:
    """fbp-spec's console output (suite name once, then each case with ✓ or ✗), plus, for a
    failed check, what was expected and what arrived, side by side with the JSONPath."""

    def __init__(self) -> None:
        self._shown: set[int] = set()

    def lines(self, result: CaseResult) -> list[str]:
        lines: list[str] = []
        if id(result.suite) not in self._shown:
            self._shown.add(id(result.suite))
            lines.append(result.suite.name)
        case = result.case
        if result.skipped:
            outcome = f"SKIP: {case.skip or result.suite.skip}"
        elif result.failure is None:
            outcome = "✓"
        else:
            outcome = f"✗ Error: {result.failure.message}"
        lines.append(f"{INDENT}{case.name}\n{INDENT * 2}{case.assertion}: {outcome}")
        if result.failure is not None:
            for check in result.failure.checks:
                where = f"port {check.port}" + (f", path {check.path}" if check.path else "")
                lines.append(f"{INDENT * 3}{where}: actual {_json(check.actual)}")
            lines.append(f"{INDENT * 3}at {result.suite.file}:{case.line}")
        return lines


def summary(results: Sequence[CaseResult]) -> str:
    failed = sum(1 for r in results if not r.skipped and not r.passed)
    skipped = sum(1 for r in results if r.skipped)
    passed = len(results) - failed - skipped
    text = f"{passed} passed, {failed} failed"
    return text + (f", {skipped} skipped" if skipped else "")


def tap(results: Sequence[CaseResult]) -> str:
    lines = ["TAP version 13", f"1..{len(results)}"]
    for number, result in enumerate(results, 1):
        title = f"{result.suite.name}: {result.case.name}: {result.case.assertion}"
        if result.skipped:
            lines.append(f"ok {number} - {title} # SKIP {result.case.skip or result.suite.skip}")
        elif result.failure is None:
            lines.append(f"ok {number} - {title}")
        else:
            lines.append(f"not ok {number} - {title}")
            lines.append("  ---")
            lines.append(f"  message: {json.dumps(result.failure.message, ensure_ascii=False)}")
            lines.append(f"  at: {json.dumps(f'{result.suite.file}:{result.case.line}')}")
            lines.append("  ...")
    return "\n".join(lines) + "\n"


def junit(results: Sequence[CaseResult]) -> str:
    root = ET.Element("testsuites", name="msgflo-spec")
    by_suite: dict[int, ET.Element] = {}
    for result in results:
        element = by_suite.get(id(result.suite))
        if element is None:
            element = ET.SubElement(root, "testsuite", name=result.suite.name)
            element.set("file", result.suite.file)
            by_suite[id(result.suite)] = element
        case = ET.SubElement(
            element,
            "testcase",
            name=f"{result.case.name}: {result.case.assertion}",
            classname=result.suite.name,
            time=f"{result.seconds:.3f}",
            file=result.suite.file,
            line=str(result.case.line),
        )
        if result.skipped:
            ET.SubElement(case, "skipped", message=result.case.skip or result.suite.skip or "")
        elif result.failure is not None:
            failure = ET.SubElement(case, "failure", message=result.failure.message)
            failure.text = "\n".join(_check_text(c) for c in result.failure.checks) or None
    for element in by_suite.values():
        cases = element.findall("testcase")
        element.set("tests", str(len(cases)))
        element.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        element.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _check_text(check: Any) -> str:
    path = f" at {check.path}" if check.path else ""
    return f"port {check.port}{path}: {check}; actual {_json(check.actual)}"


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)
