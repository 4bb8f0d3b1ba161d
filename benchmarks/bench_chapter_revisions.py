"""Wall time and peak memory of chapters at two git revisions, run alternately in fresh kernels.

The ratio new / old, measured in the same session, is what this reports: it is robust to the load of a shared
machine, the absolute seconds are not.

    python benchmarks/bench_chapter_revisions.py --old REV --chapters 05 06 --repeat 2

Each chapter file of revision REV is written next to the current one (in a temporary folder inside book/, so that
relative paths and references resolve the same way), and both are executed with
:func:`memprior.budgets.run_notebook`, alternating old and new.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from memprior.budgets import run_notebook

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="git revision of the baseline chapters")
    parser.add_argument("--chapters", nargs="+", required=True, help="chapter numbers, e.g. 05 06")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each version (alternating), >= 1")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat: must be >= 1")
    book = ROOT / "book"
    print("| chapter | old s (median) | new s (median) | new / old | old MB | new MB |")
    print("|---|---|---|---|---|---|")
    for ch in args.chapters:
        matches = sorted(book.glob(f"{int(ch):02d}_*.ipynb"))
        if len(matches) != 1:
            parser.error(f"--chapters: no single chapter numbered {ch}")
        new = matches[0]
        rel = new.relative_to(ROOT).as_posix()
        text = subprocess.run(["git", "show", f"{args.old}:{rel}"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
        with tempfile.TemporaryDirectory(dir=book) as tmp:
            old = Path(tmp) / new.name
            old.write_text(text)
            runs = {"old": [], "new": []}
            for _ in range(args.repeat):
                for name, path in (("old", old), ("new", new)):
                    r = run_notebook(path)
                    if not r.ok:
                        print(f"{name} {new.name} failed: {r.error}", file=sys.stderr)
                        return 1
                    runs[name].append(r)
        t = {k: statistics.median(r.wall_s for r in v) for k, v in runs.items()}
        m = {k: max(r.peak_rss_bytes for r in v) / 2**20 for k, v in runs.items()}
        print(f"| {new.stem} | {t['old']:.1f} | {t['new']:.1f} | {t['new'] / t['old']:.2f} | {m['old']:.0f} | "
              f"{m['new']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
