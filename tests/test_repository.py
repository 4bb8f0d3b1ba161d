"""House rules of the repository that a green build could hide."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_stored_without_outputs(nb):
    data = json.loads(nb.read_text())
    dirty = [i for i, c in enumerate(data["cells"])
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{nb.name}: cells {dirty} carry outputs or execution counts"


def test_requirements_pin_the_stack():
    req = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", req, re.M)
    assert re.search(r"^jupyter-book>=1\.0\.4,<2$", req, re.M)
    assert re.search(r"^-e \.$", req, re.M)


def test_repository_url_in_one_place():
    cfg = (ROOT / "_config.yml").read_text()
    assert cfg.count("github.com/") == 1


def test_citations_resolve():
    keys = set(re.findall(r"@\w+\{([^,]+),", (ROOT / "book" / "references.bib").read_text()))
    cited = set()
    for p in list((ROOT / "book").glob("*.ipynb")) + list((ROOT / "book").glob("*.md")):
        for group in re.findall(r"\{cite(?::[pt])?\}`([^`]+)`", p.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited <= keys, f"unknown citation keys: {sorted(cited - keys)}"
