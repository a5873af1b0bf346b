"""What the hand-run benchmarks share for their reports: the revision they measured and where
their report goes (prepended to benches/RESULTS.md, newest first)."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def revision() -> str:
    """The short commit, `+dirty` when the tree has changes."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return commit + ("+dirty" if dirty else "")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def prepend(report: str) -> None:
    """Puts `report` (starting with its `## ` heading) first among RESULTS.md's sections."""
    results = ROOT / "benches" / "RESULTS.md"
    text = results.read_text()
    head, _, rest = text.partition("\n## ")
    results.write_text(head + "\n" + report + "## " + rest)


def publish(report: str, write: bool) -> None:
    """Prints `report`, and prepends it to RESULTS.md when `write`."""
    print(report)
    if write:
        prepend(report)
