"""The benchmarks' common ending: write a report to benchmarks/_out/NAME and print it."""
from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parent / "_out"


def write_report(name: str, text: str) -> None:
    """Write ``text`` to ``benchmarks/_out/<name>`` (for copying into RESULTS.md) and print it."""
    OUT.mkdir(exist_ok=True)
    (OUT / name).write_text(text)
    print(text)
