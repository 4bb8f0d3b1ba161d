"""Cost of one DPS sample-step for FWI against grid size, with the n^{3/2} reference of the factorization.

A sample-step is what DPS does per sample and level: the closed-form memorized denoiser, the KL map to
a velocity model, one forward + adjoint-state gradient (one factorization, 2 x 15 solves), the update.
The geometry is fixed across grids (2 km square, 15 sources on top, 196 receivers at the bottom,
a PML of 15 % of the side; 5 Hz); the normalized DPS variant runs ``--samples`` samples over ``--steps`` levels
with N = 50 training models, once per backend, in this process (one thread).  Run from the repository
root:

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_dps_throughput.py

It prints a table for benchmarks/RESULTS.md (also benchmarks/_out/throughput.md) and writes the log-log
plot benchmarks/dps_throughput.svg (drawn here, no plotting dependency).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import torch

from _report import write_report  # benchmarks/_report.py (the script's folder is on sys.path)

from memprior import fwi
from memprior.experiments.fwi import FWIExperiment
from memprior.wave import Helmholtz2D, solver_backends

HERE = Path(__file__).resolve().parent
GRIDS = (64, 128, 200)


def config(n: int) -> fwi.FWIConfig:
    return fwi.FWIConfig(grid=n, extent=2.0, npml=max(5, round(0.15 * n)), freq=5.0, n_src=15, n_rec=196, K=10,
                         sizes=(50,), n_samples=2, n_steps=200)


def per_step(n: int, backend: str, samples: int, steps: int) -> tuple[float, int]:
    exp = FWIExperiment(config(n), show_progress=False)
    c = exp.cfg
    exp.solver = Helmholtz2D(n, n, c.dx, npml=c.npml, order=c.order, cache_size=exp.solver.cache_size,
                             backend=backend)
    o = exp.observation("lens")
    exp.sample("dps_normalized", 50, o, n=1, steps=2, seed=99, cached=False)  # warm-up: ordering, analysis
    t0 = time.perf_counter()
    exp.sample("dps_normalized", 50, o, n=samples, steps=steps, seed=0, cached=False)
    return (time.perf_counter() - t0) / (samples * steps), exp.solver.N


def svg(rows: dict, path: Path):
    """A log-log plot of seconds per sample-step against unknowns N, with c·N^{3/2} through the first point."""
    W, H, L, R, T, B = 560, 380, 70, 150, 20, 55
    pts = [(N, t) for series in rows.values() for N, t in series]
    xs = [math.log10(N) for N, _ in pts]
    ys = [math.log10(t) for _, t in pts]
    x0, x1 = min(xs) - 0.05, max(xs) + 0.05
    first = next(iter(rows.values()))
    ref = [(N, first[0][1] * (N / first[0][0]) ** 1.5) for N, _ in first]
    ys += [math.log10(t) for _, t in ref]
    y0, y1 = math.floor(min(ys) * 2) / 2, math.ceil(max(ys) * 2) / 2

    def X(v):
        return L + (math.log10(v) - x0) / (x1 - x0) * (W - L - R)

    def Y(v):
        return T + (y1 - math.log10(v)) / (y1 - y0) * (H - T - B)

    colours = {"pardiso": "#0072B2", "superlu": "#D55E00"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
    e = y0
    while e <= y1 + 1e-9:
        y = Y(10 ** e)
        out.append(f'<line x1="{L - 4}" y1="{y:.1f}" x2="{W - R}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 8}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:.3g}</text>')
        e += 0.5
    for N, _ in first:
        x = X(N)
        out.append(f'<line x1="{x:.1f}" y1="{H - B}" x2="{x:.1f}" y2="{H - B + 4}" stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{H - B + 18}" text-anchor="middle">{N:,}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">unknowns N (grid with PML)</text>')
    out.append(f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 {(T + H - B) / 2})">'
               'seconds per sample-step</text>')
    path_d = " ".join(f"{'M' if i == 0 else 'L'}{X(N):.1f},{Y(t):.1f}" for i, (N, t) in enumerate(ref))
    out.append(f'<path d="{path_d}" fill="none" stroke="#777" stroke-dasharray="6,4"/>')
    ly = T + 10
    for name, series in rows.items():
        col = colours.get(name, "black")
        d = " ".join(f"{'M' if i == 0 else 'L'}{X(N):.1f},{Y(t):.1f}" for i, (N, t) in enumerate(series))
        out.append(f'<path d="{d}" fill="none" stroke="{col}" stroke-width="2"/>')
        out += [f'<circle cx="{X(N):.1f}" cy="{Y(t):.1f}" r="4" fill="{col}"/>' for N, t in series]
        out.append(f'<line x1="{W - R + 12}" y1="{ly}" x2="{W - R + 36}" y2="{ly}" stroke="{col}" stroke-width="2"/>')
        out.append(f'<text x="{W - R + 42}" y="{ly + 4}">{name}</text>')
        ly += 20
    out.append(f'<line x1="{W - R + 12}" y1="{ly}" x2="{W - R + 36}" y2="{ly}" stroke="#777" stroke-dasharray="6,4"/>')
    out.append(f'<text x="{W - R + 42}" y="{ly + 4}">∝ N^1.5</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    backends = [b for b in ("pardiso", "superlu") if solver_backends()[b]]
    load = os.getloadavg()
    lines = ["# Cost of a DPS sample-step for FWI against grid size\n", "Command (from the repository root):\n",
             "```bash\nOPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_dps_throughput.py\n```\n",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
             f"at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.  {args.samples} samples x {args.steps} levels of "
             "the normalized DPS per grid and backend; 15 sources / 196 receivers, 5 Hz, 2 km square.\n",
             "| grid | unknowns N | " + " | ".join(f"{b} (s per sample-step)" for b in backends) + " |",
             "|---|---|" + "---|" * len(backends)]
    rows = {b: [] for b in backends}
    for n in GRIDS:
        vals = []
        for b in backends:
            t, N = per_step(n, b, args.samples, args.steps)
            rows[b].append((N, t))
            vals.append(t)
        lines.append(f"| {n}² | {N:,} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
        print(lines[-1], flush=True)
    for b, series in rows.items():
        (Na, ta), (Nb, tb) = series[0], series[-1]
        lines.append(f"\n{b}: slope of log(time) against log(N) between {GRIDS[0]}² and {GRIDS[-1]}²: "
                     f"**{math.log(tb / ta) / math.log(Nb / Na):.2f}** (the factorization's n^{{3/2}} is 1.5; the "
                     "solves' N log N is about 1.1).")
    svg(rows, HERE / "dps_throughput.svg")
    lines.append("\n![seconds per sample-step against unknowns, log-log](dps_throughput.svg)\n")
    text = "\n".join(lines) + "\n"
    write_report("throughput.md", text)


if __name__ == "__main__":
    main()
