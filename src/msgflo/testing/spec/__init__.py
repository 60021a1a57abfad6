"""fbp-spec in Python: load suites, run them against any FBP runtime, report the results."""

from msgflo.testing.spec.client import FbpClient
from msgflo.testing.spec.expect import ExpectationFailed, Failure, verdict
from msgflo.testing.spec.report import TextReport, junit, summary, tap
from msgflo.testing.spec.runner import CaseResult, run_suites
from msgflo.testing.spec.suite import Case, Suite, SuiteError, load_suites, parse_suites

__all__ = [
    "Case",
    "CaseResult",
    "ExpectationFailed",
    "Failure",
    "FbpClient",
    "Suite",
    "SuiteError",
    "TextReport",
    "junit",
    "load_suites",
    "parse_suites",
    "run_suites",
    "summary",
    "tap",
    "verdict",
]
