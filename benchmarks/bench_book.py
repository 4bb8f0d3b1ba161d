"""Whole-book benchmark: fresh build time, each chapter's wall time and peak RSS, page weights.

Run from the repository root, on an otherwise idle machine:

    python benchmarks/bench_book.py            # fresh build (removes _build first), then each notebook alone
    python benchmarks/bench_book.py --no-build # reuse _build/ (skips the build timing)

It prints markdown to paste into benchmarks/RESULTS.md:

1. the fresh ``jupyter-book build -W -n --keep-going .`` wall time (every notebook executed), against the
   8-minute budget;
2. each notebook run alone in a fresh kernel (``memprior.budgets``): wall time and peak RSS against
   90 s / 1.5 GB, and each built page's weight against 6 MB;
The widget callback latencies are measured by ``benchmarks/bench_widgets.py``.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from memprior import budgets  # noqa: E402

BUILD_BUDGET_S = 8 * 60


def fresh_build() -> float:
    shutil.rmtree(ROOT / "_build", ignore_errors=True)
    exe = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or "jupyter-book"
    t0 = time.perf_counter()
    proc = subprocess.run([exe, "build", "-W", "-n", "--keep-going", str(ROOT)], cwd=ROOT,
                          capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        raise SystemExit("book build failed")
    return dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-build", action="store_true", help="reuse _build instead of timing a fresh build")
    args = ap.parse_args(argv)

    lines = []
    if not args.no_build:
        dt = fresh_build()
        lines += ["### Fresh book build", "",
                  f"`jupyter-book build -W -n --keep-going .` from an empty `_build`: **{dt:.0f} s** "
                  f"(budget {BUILD_BUDGET_S} s, ratio {dt / BUILD_BUDGET_S:.2f}).", ""]
    runs = [budgets.run_notebook(p) for p in sorted((ROOT / "book").glob("*.ipynb"))]
    html = ROOT / "_build" / "html"
    pages = [budgets.page_weight(p, html) for p in budgets.find_pages(html)] if html.is_dir() else []
    lines += ["### Chapters, each alone in a fresh kernel", "", budgets.markdown_table(runs, pages), ""]
    print("\n".join(lines))
    failed = [r.notebook for r in runs if not r.ok]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
