"""Tests for the budget report (memprior.budgets), on synthetic notebooks and a fake HTML build."""
from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from memprior import budgets

MB = 10 ** 6


def _notebook(path, *sources):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


# --------------------------------------------------------------------------- notebooks

def test_run_notebook_measures_time_and_a_short_memory_spike(tmp_path):
    # A 300 MB array, written (so resident) and freed at once: a spike that 1-second polling would miss.
    base = _notebook(tmp_path / "base.ipynb", "import numpy as np\nimport time\ntime.sleep(0.5)")
    spike = _notebook(tmp_path / "spike.ipynb",
                      "import numpy as np\na = np.ones(300 * 10**6 // 8)\nassert a.sum() > 0\ndel a")
    r0 = budgets.run_notebook(base, poll_s=1.0)
    r1 = budgets.run_notebook(spike, poll_s=1.0)
    assert r0.ok and r1.ok, (r0.error, r1.error)
    assert r0.notebook == "base.ipynb"
    assert r0.wall_s >= 0.5, "the wall time includes the cell's sleep"
    assert 20 * MB < r0.peak_rss_bytes < r1.peak_rss_bytes
    assert r1.peak_rss_bytes - r0.peak_rss_bytes > 250 * MB, "the 300 MB spike must be seen"


def test_run_notebook_reports_a_failing_cell(tmp_path):
    nb = _notebook(tmp_path / "bad.ipynb", "x = 1", "raise RuntimeError('boom in cell two')")
    r = budgets.run_notebook(nb)
    assert not r.ok and "boom in cell two" in r.error


def test_run_notebook_runs_in_the_notebook_folder(tmp_path):
    (tmp_path / "data.txt").write_text("here")
    nb = _notebook(tmp_path / "cwd.ipynb", "assert open('data.txt').read() == 'here'",
                   "import os\nassert os.environ['MEMPRIOR_QUIET'] == '1'")
    r = budgets.run_notebook(nb)
    assert r.ok, r.error


def test_run_notebook_bad_input(tmp_path):
    with pytest.raises(ValueError, match="path"):
        budgets.run_notebook(tmp_path / "missing.ipynb")
    txt = tmp_path / "x.txt"
    txt.write_text("")
    with pytest.raises(ValueError, match="path"):
        budgets.run_notebook(txt)
    nb = _notebook(tmp_path / "ok.ipynb", "1")
    with pytest.raises(ValueError, match="timeout"):
        budgets.run_notebook(nb, timeout=0)
    with pytest.raises(ValueError, match="poll_s"):
        budgets.run_notebook(nb, poll_s=5)


# --------------------------------------------------------------------------- pages

@pytest.fixture()
def html(tmp_path):
    root = tmp_path / "html"
    (root / "_static" / "mathjax").mkdir(parents=True)
    (root / "_images").mkdir()
    (root / "book").mkdir()
    (root / "_static" / "plotly.min.js").write_bytes(b"p" * 4000)
    (root / "_static" / "mathjax" / "tex-chtml.js").write_bytes(b"m" * 3000)
    (root / "_static" / "theme.css").write_bytes(b"c" * 500)
    (root / "searchindex.js").write_bytes(b"s" * 700)
    (root / "_images" / "fig.png").write_bytes(b"i" * 5000)
    (root / "_images" / "other.png").write_bytes(b"o" * 9999)  # not referenced by the chapter
    page = (
        '<html><head><link rel="stylesheet" href="../_static/theme.css?v=1">'
        '<link rel="canonical" href="../_images/other.png">'
        '<script src="../_static/plotly.min.js"></script>'
        '<script src="../_static/mathjax/tex-chtml.js"></script>'
        '<script src="../searchindex.js" defer></script>'
        '<script src="https://cdn.example.org/remote.js"></script></head><body>'
        '<img src="../_images/fig.png" alt="a"><img src="../_images/fig.png#again" alt="b">'
        '<img src="data:image/png;base64,AAAA" alt="c"><img src="../_images/missing.png" alt="d">'
        '<a href="../_images/other.png">a link is not loaded</a></body></html>'
    )
    (root / "book" / "ch.html").write_text(page)
    (root / "book" / "big.html").write_text("<html>" + "x" * (7 * MB) + "</html>")
    (root / "search.html").write_text("<html></html>")
    (root / "genindex.html").write_text("<html></html>")
    (root / "_static" / "skip.html").write_text("<html></html>")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "README.html").write_text("<html></html>")
    return root


def test_page_weight_separates_own_and_shared(html):
    w = budgets.page_weight(html / "book" / "ch.html", html)
    assert w.page == "book/ch.html"
    assert w.html_bytes == (html / "book" / "ch.html").stat().st_size
    assert w.own_assets == ["_images/fig.png"] and w.own_asset_bytes == 5000
    assert w.shared_bytes == 4000 + 3000 + 500 + 700
    assert w.own_bytes == w.html_bytes + 5000


def test_find_pages_lists_content_pages_only(html):
    names = [p.relative_to(html).as_posix() for p in budgets.find_pages(html)]
    assert names == ["book/big.html", "book/ch.html"]
    assert [p.name for p in budgets.find_pages(html, stems=["ch"])] == ["ch.html"]


def test_page_bad_input(html, tmp_path):
    with pytest.raises(ValueError, match="html_root"):
        budgets.find_pages(tmp_path / "nope")
    with pytest.raises(ValueError, match="page"):
        budgets.page_weight(html / "book" / "nope.html", html)
    with pytest.raises(ValueError, match="html_root"):
        budgets.page_weight(html / "book" / "ch.html", tmp_path / "nope")


# --------------------------------------------------------------------------- verdicts, report, exit codes

def test_verdict_thresholds():
    assert budgets.verdict(90, 90) == "ok"
    assert budgets.verdict(90.1, 90) == "over budget"
    assert budgets.verdict(270, 90) == "over budget"
    assert budgets.verdict(270.1, 90) == "RUNAWAY"
    assert budgets.RUNAWAY_FACTOR * budgets.WALL_BUDGET_S == 270
    assert budgets.RUNAWAY_FACTOR * budgets.RSS_BUDGET_BYTES == 4.5e9
    assert budgets.RUNAWAY_FACTOR * budgets.PAGE_BUDGET_BYTES == 18e6


def test_main_pages_over_budget_is_not_a_failure(html, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert budgets.main(["--no-run", "--html", str(html), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| book/big.html |" in table and "over budget" in table
    rec = json.loads(out.read_text())
    assert rec["runaways"] == [] and {p["page"] for p in rec["pages"]} == {"book/big.html", "book/ch.html"}


def test_main_runaway_page_fails(html, tmp_path):
    (html / "book" / "huge.html").write_text("<html>" + "x" * (19 * MB) + "</html>")
    out = tmp_path / "r.json"
    assert budgets.main(["--no-run", "--html", str(html), "--json", str(out)]) == 1
    assert any("huge.html" in r for r in json.loads(out.read_text())["runaways"])


@pytest.mark.parametrize("run, code", [
    (budgets.NotebookRun("a.ipynb", 100.0, int(2e9), True), 0),           # over budget, not a runaway
    (budgets.NotebookRun("a.ipynb", 271.0, int(1e8), True), 1),           # wall-time runaway
    (budgets.NotebookRun("a.ipynb", 10.0, int(4.6e9), True), 1),          # memory runaway
    (budgets.NotebookRun("a.ipynb", 1.0, int(1e8), False, "CellExecutionError: x"), 3),  # failed, not usage
])
def test_main_exit_codes_for_notebooks(tmp_path, monkeypatch, capsys, run, code):
    nb = _notebook(tmp_path / "a.ipynb", "1")
    monkeypatch.setattr(budgets, "run_notebook", lambda path, timeout: run)
    out = tmp_path / "r.json"
    assert budgets.main([str(nb), "--no-pages", "--json", str(out)]) == code
    assert "| a.ipynb |" in capsys.readouterr().out
    assert json.loads(out.read_text())["notebooks"][0]["wall_s"] == run.wall_s


def test_command_line(html, tmp_path):
    nb = _notebook(tmp_path / "tiny.ipynb", "print(1 + 1)")
    out = tmp_path / "r.json"
    res = subprocess.run([sys.executable, "-m", "memprior.budgets", str(nb), "--html", str(html),
                          "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "| tiny.ipynb |" in res.stdout and "| book/ch.html |" in res.stdout
    rec = json.loads(out.read_text())
    assert rec["notebooks"][0]["ok"] and rec["notebooks"][0]["peak_rss_bytes"] > 0
