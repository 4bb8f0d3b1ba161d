"""Time ``python -m memprior.sweep --preset smoke`` on 0 and on 2 workers, start-up included, and check
that both give identical numbers.

Each run is a fresh ``python -m memprior.sweep`` process writing a fresh output directory, so the
times include the interpreter, the imports, building the experiment, and (with workers) starting the
Dask LocalCluster and its worker processes.  Run from the repository root:

    python benchmarks/bench_sweep.py [--preset smoke] [--repeat 1] [--workers 0,2]

``--workers 0,1,2`` adds a one-worker LocalCluster, for the scaling from 1 to 2 workers.

It prints a table for benchmarks/RESULTS.md (also written to benchmarks/_out/sweep.md) and exits
non-zero when the numbers differ between the two runs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import write_report  # benchmarks/_report.py (the script's folder is on sys.path)


def run(preset: str, workers: int, out: Path) -> tuple[float, dict, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "memprior.sweep", "--preset", preset, "--out", str(out), "--workers",
           str(workers), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd] if Path("/usr/bin/time").exists() else cmd,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    peak_mib = float("nan")
    tail = proc.stderr.strip().splitlines()
    if tail and tail[-1].strip().isdigit():  # /usr/bin/time -f %M: the largest peak RSS among the processes, KiB
        peak_mib = int(tail[-1]) / 1024
    return wall, json.loads((out / "results.json").read_text()), peak_mib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="smoke")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", default="0,2", help="comma-separated worker counts; 0 (serial) and 2 are required")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    if 0 not in counts or 2 not in counts or any(w < 0 for w in counts):
        raise SystemExit(f"--workers: a comma-separated list with 0 and 2 (and other counts >= 0), got {args.workers!r}")
    load = os.getloadavg()
    lines = [f"# `python -m memprior.sweep --preset {args.preset}`: workers {args.workers}\n",
             "Command (from the repository root):\n", f"```bash\npython benchmarks/bench_sweep.py --preset {args.preset}"
             f"{' --repeat ' + str(args.repeat) if args.repeat != 1 else ''}"
             f"{' --workers ' + args.workers if args.workers != '0,2' else ''}\n```\n",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; load "
             f"average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.  Each run is a fresh process "
             f"(imports, the experiment, the cluster's start-up included); runs alternate {', '.join(map(str, counts))}, "
             "...\n",
             "| workers | wall (s), each run | cluster start-up (s) | tasks | CPU seconds in the tasks (sum) | solver | "
             "peak RSS of the command's largest process (MiB) |",
             "|---|---|---|---|---|---|---|"]
    walls, peaks = {w: [] for w in counts}, {w: [] for w in counts}
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for w in counts:
                wall, out, peak = run(args.preset, w, Path(tmp) / f"w{w}-r{r}")
                walls[w].append(wall)
                peaks[w].append(peak)
                res.setdefault(w, out)
                if res[w]["results"] != out["results"]:
                    raise SystemExit("the numbers differ between repeats")
                print(f"workers={w}: {wall:.1f} s", flush=True)
        same = all(res[0]["results"] == res[w]["results"] for w in counts)
        for w in counts:
            t = res[w]["timing"]
            lines.append(f"| {w} | {', '.join(f'{v:.1f}' for v in walls[w])} | {t['cluster_start_seconds']:.1f} | "
                         f"{t['total']} | {t['task_cpu_seconds']:.1f} | {res[w]['solver_backend']} | {max(peaks[w]):.0f} |")
    best0, best2 = min(walls[0]), min(walls[2])
    if 1 in counts:
        lines.append(f"\nFrom 1 to 2 workers (best runs): {min(walls[1]) / best2:.2f}×.")
    lines.append(f"\nSpeed-up on 2 workers (best run each, start-up included): **{best0 / best2:.2f}×** (load average "
                 f"at the end {os.getloadavg()[0]:.1f}: on a busy machine the workers share the cores with other "
                 "processes, and the CPU seconds show whether the work per task changed).  "
                 f"Numbers identical on {', '.join(map(str, counts))} workers: **{'yes' if same else 'NO'}**.\n")
    text = "\n".join(lines) + "\n"
    write_report("sweep.md", text)
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
