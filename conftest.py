"""Shared pytest configuration.

- Progress bars stay quiet in notebooks executed by the tests (``MEMPRIOR_QUIET``).
- While ``tests/test_chapters.py`` runs a chapter, the kernel's peak RSS and the chapter's wall time are
  recorded and printed as a budget table at the end of the session.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("MEMPRIOR_QUIET", "1")

# Property-based tests (tests/test_properties.py): derandomized, so every run tries the same examples and a
# failure reproduces exactly; no example database is written; no per-example deadline (CI machines vary).
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("memprior", derandomize=True, database=None, deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("memprior")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

ROOT = Path(__file__).resolve().parent
from memprior.budgets import RSS_BUDGET_BYTES, RUNAWAY_FACTOR, WALL_BUDGET_S  # noqa: E402

BUDGET_S, BUDGET_MB = WALL_BUDGET_S, RSS_BUDGET_BYTES / 2**20
_RUNAWAY = RUNAWAY_FACTOR
_nb_stats: dict[str, dict] = {}


class _RssWatcher(threading.Thread):
    """Poll the summed RSS of the children this process starts while a chapter runs (its kernel).

    Only children that did not exist when the chapter's test started are counted: the background book
    build and its kernels, a JupyterLab server or a browser left by an earlier test, and kernels of
    earlier chapters still shutting down are all left out (counting them made chapter 4 read 3.8 GB in
    the suite against 0.9 GB alone).
    """

    def __init__(self):
        import psutil

        super().__init__(daemon=True)
        self.peak = 0
        self._halt = threading.Event()
        self._before = {c.pid for c in psutil.Process().children(recursive=False)}

    def _kernel_rss(self) -> int:
        import psutil
        from memprior.budgets import tree_rss

        build = _build_proc.get("proc")
        total = 0
        for child in psutil.Process().children(recursive=False):
            if child.pid in self._before or (build is not None and child.pid == build.pid):
                continue
            try:
                total += child.memory_info().rss + tree_rss(child)
            except psutil.Error:
                pass
        return total

    def run(self):
        while not self._halt.is_set():
            self.peak = max(self.peak, self._kernel_rss())
            self._halt.wait(0.05)

    def stop(self):
        self._halt.set()
        self.join()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    # Each chapter is executed by tests/test_chapters.py, in a fresh kernel (a child of this process).
    chapter = getattr(getattr(item, "callspec", None), "params", {}).get("chapter")
    if not (item.nodeid.startswith("tests/test_chapters.py") and chapter):
        yield
        return
    key = f"book/{chapter}"
    watcher = _RssWatcher()
    watcher.start()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        watcher.stop()
        s = _nb_stats.setdefault(key, {"wall_s": 0.0, "peak_rss_mb": 0.0})
        s["wall_s"] += dt
        s["peak_rss_mb"] = max(s["peak_rss_mb"], watcher.peak / 2**20)


# --- the book build runs in the background while the other tests run ------------------------------

_build_proc: dict = {}


def start_book_build():
    """Start ``jupyter-book build -W -n --keep-going .`` once; return the Popen and its log path."""
    import shutil
    import subprocess
    import sys

    if "proc" in _build_proc:
        return _build_proc["proc"], _build_proc["log"]
    exe = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    log = ROOT / "_build" / "book_build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # One thread per kernel: the build shares the 2 cores with the tests running beside it.
    env = dict(os.environ, MEMPRIOR_QUIET="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    fh = open(log, "w")
    proc = subprocess.Popen([exe, "build", "-W", "-n", "--keep-going", str(ROOT)], cwd=ROOT, env=env,
                            stdout=fh, stderr=subprocess.STDOUT, text=True)
    _build_proc.update(proc=proc, log=log, fh=fh, t0=time.perf_counter())
    return proc, log


def pytest_collection_modifyitems(session, config, items):
    # The built-book tests go last, and the build starts now, in the background.
    book = [it for it in items if it.nodeid.startswith("tests/test_book.py")]
    if not book:
        return
    rest = [it for it in items if not it.nodeid.startswith("tests/test_book.py")]
    items[:] = rest + book
    if not config.option.collectonly:
        start_book_build()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _nb_stats and "t0" not in _build_proc:
        return
    tr = terminalreporter
    tr.section("budgets")
    if _nb_stats:
        tr.write_line("Chapters run as notebooks: wall time and kernel peak RSS (shares 2 cores with the book build)")
        tr.write_line(f"| notebook | wall s (budget {BUDGET_S:.0f}) | peak RSS MB (budget {BUDGET_MB:.0f}) |")
        tr.write_line("|---|---:|---:|")
        for k in sorted(_nb_stats):
            s = _nb_stats[k]
            tr.write_line(f"| {k} | {s['wall_s']:.1f} | {s['peak_rss_mb']:.0f} |")
    if "t0" in _build_proc:
        tr.write_line("")
        tr.write_line(f"book build (background): {_build_proc.get('wall_s', float('nan')):.0f} s wall")
    out = ROOT / "_build" / "budgets_chapters.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_nb_stats, indent=2))


def pytest_sessionfinish(session, exitstatus):
    # Fail only on a runaway (more than 3x the budget), as the budgets in CONTRIBUTING.md ask.
    runaway = [k for k, s in _nb_stats.items()
               if s["wall_s"] > _RUNAWAY * BUDGET_S or s["peak_rss_mb"] > _RUNAWAY * BUDGET_MB]
    if runaway and session.exitstatus == 0:
        session.exitstatus = 1
        print(f"\nRUNAWAY notebooks (> {_RUNAWAY}x budget): {runaway}")
