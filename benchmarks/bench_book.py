"""Whole-book benchmark: fresh build time, each chapter's wall time and peak RSS, widget latencies.

Run from the repository root, on an otherwise idle machine:

    python benchmarks/bench_book.py            # fresh build (removes _build first), then each notebook alone
    python benchmarks/bench_book.py --no-build # reuse _build/ (skips the build timing)

It prints markdown to paste into benchmarks/RESULTS.md:

1. the fresh ``jupyter-book build -W -n --keep-going .`` wall time (every notebook executed), against the
   8-minute budget;
2. each notebook run alone in a fresh kernel (``memprior.budgets``): wall time and peak RSS against
   90 s / 1.5 GB, and each built page's weight against 6 MB;
3. the widget callback latencies (p95, ms) that each chapter measures with
   ``memprior.widgets.callback_latencies`` and glues (keys ending in ``p95``), read from the executed
   notebooks that the build leaves in ``_build/jupyter_execute``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from memprior import budgets  # noqa: E402

BUILD_BUDGET_S = 8 * 60
LATENCY_BUDGET_MS = {"06_wave_solver": 1000.0, "07_fwi_dps": 1000.0}  # wave chapters; others 150 ms


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


def glued_latencies() -> dict[str, dict[str, float]]:
    """Glued values whose key ends in 'p95' (ms), per chapter, from the build's execution cache."""
    out: dict[str, dict[str, float]] = {}
    chapters = {p.stem.split("_")[0].lstrip("0"): p.stem for p in (ROOT / "book").glob("0*.ipynb")}
    for nb_path in sorted((ROOT / "_build" / ".jupyter_cache" / "executed").glob("*/base.ipynb")):
        nb = json.loads(nb_path.read_text())
        for cell in nb["cells"]:
            for o in cell.get("outputs", []):
                meta = o.get("metadata", {}).get("scrapbook", {})
                name = meta.get("name", "")
                if name.endswith("p95"):
                    data = o.get("data", {})
                    text = next((v for k, v in data.items() if k.endswith("text/plain")), None)
                    if text is not None:
                        val = "".join(text) if isinstance(text, list) else text
                        chapter = chapters.get(name.split("-")[0].removeprefix("ch"), name)
                        out.setdefault(chapter, {})[name] = float(val.replace("np.float64(", "").rstrip(")"))
    return out


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
    lat = glued_latencies()
    if lat:
        lines += ["### Widget callback latency (p95, measured in the chapter during the build)", "",
                  "| chapter | glued key | p95 ms | budget ms | ratio |", "|---|---|---:|---:|---:|"]
        for ch, vals in sorted(lat.items()):
            budget = LATENCY_BUDGET_MS.get(ch, 150.0)
            for k, v in sorted(vals.items()):
                lines.append(f"| {ch} | {k} | {v:.0f} | {budget:.0f} | {v / budget:.2f} |")
    print("\n".join(lines))
    failed = [r.notebook for r in runs if not r.ok]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
