"""Every chapter, executed as a student runs it: a fresh plain kernel, top to bottom.

For each chapter (:func:`memprior.edition.check_chapter`):

- every code cell runs, and every ``{eval}`` in the prose evaluates;
- every plotly figure it displays is a captioned figure cell (name, caption, alt text in the cell's
  metadata), one figure per cell, so the notebook shows each figure where it is made;
- the thin-chapter limits hold (15 lines per cell, 120 per chapter, 30 hidden);
- its notebook edition carries no raw MyST markup, and the committed edition (``edition/``, which the
  Colab button opens) is up to date with it.

The number of figures each chapter displays is written to ``_build/chapter_figures.json``; the built-book
tests (which run last) check that the chapter's page shows the same number.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from memprior import edition

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [p.name for p in edition.chapters(ROOT / "book")]
FIGURES_JSON = ROOT / "_build" / "chapter_figures.json"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_as_a_notebook(chapter):
    rep = edition.check_chapter(ROOT / "book" / chapter)
    FIGURES_JSON.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(FIGURES_JSON.read_text()) if FIGURES_JSON.exists() else {}
    known[Path(chapter).stem] = rep["figures"]
    FIGURES_JSON.write_text(json.dumps(known, indent=2, sort_keys=True))
    assert not rep["problems"], f"{chapter}:\n" + "\n".join(rep["problems"])
    assert rep["figures"] >= 1 and rep["figures"] == rep["figure_cells"]
    committed = ROOT / "edition" / chapter
    assert committed.exists(), f"edition/{chapter} is missing: run `python -m memprior.edition edition`"
    assert edition.same_text(nbformat.read(committed, as_version=4), rep["edition"]), (
        f"edition/{chapter} is out of date with book/{chapter}: run `python -m memprior.edition edition`")
