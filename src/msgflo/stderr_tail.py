"""What is worth printing of a participant that keeps failing.

A participant that fails at start prints its traceback at every restart. Shown once, it
explains the failure; shown five times, and flattened into every restart line, it buries
everything else. So each run's stderr is shown as it comes except where it repeats the previous
run's line for line, and the line about the exit names only the last error line (for a Python
traceback: the exception) and where the rest is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LINES = 1000
"""Lines of one run's stderr remembered to recognise a repeat; beyond them all is shown."""
MAX_SUMMARY = 300
"""Characters of the last error line quoted in the exit line."""


@dataclass
class StderrTail:
    """The stderr of a participant's current and previous run."""

    previous: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    repeating: bool = True
    """Whether the current run's stderr so far is the previous run's, line for line."""

    def new_run(self) -> None:
        self.previous, self.current, self.repeating = self.current, [], True

    def add(self, line: str) -> bool:
        """Remember a stderr line; whether to show it (not when it repeats the previous run)."""
        index = len(self.current)
        if index < MAX_LINES:
            self.current.append(line)
        self.repeating = (
            self.repeating and index < len(self.previous) and self.previous[index] == line
        )
        return not self.repeating

    def summary(self) -> str:
        """The last error line of this run and where to read the rest; empty without stderr."""
        last = next((line.strip() for line in reversed(self.current) if line.strip()), "")
        if not last:
            return ""
        if len(last) > MAX_SUMMARY:
            last = last[: MAX_SUMMARY - 1] + "…"
        if len(self.current) == 1:
            return last
        if self.repeating:
            return f"{last} (same stderr as the run before, shown above)"
        return f"{last} (full stderr above)"
