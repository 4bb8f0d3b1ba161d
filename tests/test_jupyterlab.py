"""What a student sees: a chapter opened in JupyterLab (with jupyterlab-myst) and run top to bottom.

JupyterLab is started on a free local port over a temporary copy of one chapter (JupyterLab may autosave,
and the book's notebooks are stored without outputs). Headless chromium opens it, runs all cells, and the
test checks the rendered notebook: plotly figures drawn, math typeset, exercise and proposition boxes
rendered, numbers in the prose evaluated, and no raw MyST (``{glue:``, ``{eval}``, fenced directives) on
screen. Two screenshots (the top of the notebook, its first figure) are saved to
``_build/jupyterlab_<chapter>_{top,figure}.png``.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "02_lookup_posterior.ipynb"
TOKEN = "memprior-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    exe = shutil.which("jupyter-lab", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("jupyterlab is not installed: `pip install -r requirements.txt` installs it")
    work = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "book" / CHAPTER, work / CHAPTER)
    # Settings for this server only: every cell rendered (no windowing), no autosave, no news.
    settings = work / "settings" / "@jupyterlab"
    for plugin, value in (("notebook-extension/tracker", {"windowingMode": "none"}),
                          ("docmanager-extension/plugin", {"autosave": False}),
                          ("apputils-extension/notification", {"fetchNews": "false"})):
        f = settings / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    port = _free_port()
    env = dict(os.environ, MEMPRIOR_QUIET="0", JUPYTER_CONFIG_DIR=str(work / ".jupyter"),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(
        [exe, "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={work}", "--expose-app-in-browser", "--allow-root",
         f"--LabApp.user_settings_dir={work / 'settings'}", f"--LabApp.workspaces_dir={work / 'workspaces'}",
         "--LabApp.news_url=", "--ServerApp.open_browser=False"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(120):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start:\n" + (work / "lab.log").read_text()[-3000:])
        yield f"http://127.0.0.1:{port}", work
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _driver():
    from test_book import _chromium_driver

    return _chromium_driver(allow_local=True)


def test_chapter_in_jupyterlab_renders_figures_math_and_exercises(lab):
    url, work = lab
    nb = nbformat.read(ROOT / "book" / CHAPTER, as_version=4)
    n_figures = sum(1 for c in nb.cells if c.cell_type == "code" and c.metadata.get("mystnb", {}).get("figure"))
    n_exercises = sum(c.source.count("{exercise}") for c in nb.cells if c.cell_type == "markdown")
    d = _driver()
    try:
        d.set_window_size(1400, 1800)
        d.get(f"{url}/lab/tree/{CHAPTER}?token={TOKEN}&reset")
        for _ in range(120):
            if d.execute_script("return !!(window.jupyterapp && document.querySelector('.jp-Notebook') && "
                                "window.jupyterapp.shell.currentWidget && "
                                "window.jupyterapp.shell.currentWidget.sessionContext && "
                                "window.jupyterapp.shell.currentWidget.sessionContext.session && "
                                "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel)"):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the notebook did not open with a kernel in JupyterLab")
        time.sleep(2)
        d.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        # Wait until every code cell has an execution count (no "[*]" or "[ ]" prompt) and the kernel is idle.
        t0 = time.time()
        while time.time() - t0 < 240:
            done = d.execute_script(
                "const w = window.jupyterapp.shell.currentWidget;"
                "const k = w.sessionContext.session.kernel;"
                "const cells = w.content.widgets.filter(c => c.model.type === 'code');"
                "return k.status === 'idle' && cells.every(c => c.model.executionCount !== null);")
            if done:
                break
            time.sleep(1)
        else:
            pytest.fail("running all cells in JupyterLab did not finish in 240 s")
        time.sleep(4)  # let plotly and MathJax finish drawing
        errors = d.execute_script("return document.querySelectorAll('.jp-OutputArea-output[data-mime-type="
                                  "\"application/vnd.jupyter.stderr\"] .ansi-red-fg, .jp-RenderedText"
                                  "[data-mime-type=\"application/vnd.jupyter.error\"]').length")
        assert errors == 0, "a cell raised an error in JupyterLab"
        n_plots = d.execute_script("return document.querySelectorAll('.jp-Notebook .js-plotly-plot').length")
        assert n_plots >= n_figures, f"{n_plots} plotly figures drawn, {n_figures} expected"
        n_math = d.execute_script("return document.querySelectorAll('.jp-Notebook mjx-container, .jp-Notebook .katex').length")
        assert n_math >= 10, f"only {n_math} formulas typeset"
        text = d.execute_script("return document.querySelector('.jp-Notebook').innerText")
        boxes = text.count("Exercise ")
        assert boxes >= n_exercises, f"{boxes} exercise boxes rendered, {n_exercises} expected"
        assert "Proposition" in text and "Proof" in text
        for raw in ("{glue:", "{eval}", "```{", "{prf:", "{numref}", "{doc}", "{cite}"):
            assert raw not in text, f"raw MyST {raw!r} is on screen"
        out = ROOT / "_build"
        out.mkdir(parents=True, exist_ok=True)
        for name, selector in (("top", ".jp-Notebook .jp-Cell"), ("figure", ".jp-Notebook .js-plotly-plot")):
            d.execute_script(f"document.querySelector('{selector}').scrollIntoView({{block: 'start'}})")
            time.sleep(1)
            d.save_screenshot(str(out / f"jupyterlab_{Path(CHAPTER).stem}_{name}.png"))
    finally:
        d.quit()
