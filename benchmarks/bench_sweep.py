"""Time ``python -m memprior.sweep --preset smoke`` on 0 and on 2 workers, start-up included, and check
that both give identical numbers.

Each run is a fresh ``python -m memprior.sweep`` process writing a fresh output directory, so the
times include the interpreter, the imports, building the experiment, and (with workers) starting the
Dask LocalCluster and its worker processes.  Run from the repository root:

    python benchmarks/bench_sweep.py [--preset smoke] [--repeat 1]

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

HERE = Path(__file__).resolve().parent


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
    args = ap.parse_args()
    load = os.getloadavg()
    lines = [f"# `python -m memprior.sweep --preset {args.preset}`: 0 against 2 workers\n",
             "Command (from the repository root):\n", f"```bash\npython benchmarks/bench_sweep.py --preset {args.preset}"
             f"{' --repeat ' + str(args.repeat) if args.repeat != 1 else ''}\n```\n",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; load "
             f"average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.  Each run is a fresh process "
             "(imports, the experiment, the cluster's start-up included); runs alternate 0, 2, 0, 2, ...\n",
             "| workers | wall (s), each run | cluster start-up (s) | tasks | CPU seconds in the tasks (sum) | solver | "
             "peak RSS of the command's largest process (MiB) |",
             "|---|---|---|---|---|---|---|"]
    walls, peaks = {0: [], 2: []}, {0: [], 2: []}
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for w in (0, 2):
                wall, out, peak = run(args.preset, w, Path(tmp) / f"w{w}-r{r}")
                walls[w].append(wall)
                peaks[w].append(peak)
                res.setdefault(w, out)
                if res[w]["results"] != out["results"]:
                    raise SystemExit("the numbers differ between repeats")
                print(f"workers={w}: {wall:.1f} s", flush=True)
        same = res[0]["results"] == res[2]["results"]
        for w in (0, 2):
            t = res[w]["timing"]
            lines.append(f"| {w} | {', '.join(f'{v:.1f}' for v in walls[w])} | {t['cluster_start_seconds']:.1f} | "
                         f"{t['total']} | {t['task_cpu_seconds']:.1f} | {res[w]['solver_backend']} | {max(peaks[w]):.0f} |")
    best0, best2 = min(walls[0]), min(walls[2])
    lines.append(f"\nSpeed-up on 2 workers (best run each, start-up included): **{best0 / best2:.2f}×** (load average "
                 f"at the end {os.getloadavg()[0]:.1f}: on a busy machine the workers share the cores with other "
                 "processes, and the CPU seconds show whether the work per task changed).  "
                 f"Numbers identical on 0 and 2 workers: **{'yes' if same else 'NO'}**.\n")
    text = "\n".join(lines) + "\n"
    (HERE / "_out").mkdir(exist_ok=True)
    (HERE / "_out" / "sweep.md").write_text(text)
    print(text)
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
