"""``msgflo-python FILE ROLE`` with uvloop hidden, to measure what the optional extra buys."""

from __future__ import annotations

import sys

sys.modules["uvloop"] = None  # type: ignore[assignment]  # makes ``import uvloop`` fail

from msgflo.cli.python import main  # noqa: E402

if __name__ == "__main__":
    main()
