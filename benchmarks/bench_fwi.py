"""Paper-scale run of the chapter-7 FWI experiment, timed stage by stage.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MEMPRIOR_QUIET=1 \
        python benchmarks/bench_fwi.py --grid 64 --samples 16

runs :func:`memprior.experiments.fwi.run_pipeline` with :meth:`memprior.fwi.FWIConfig.paper`: the pool of
forward data (one LU per model), then for every N the exact lookup, the three samplers
(DPS, the normalized variant, the exact sampler; closed-form memorized denoiser), the
linearized mixture at the best ``--top`` components and the memorization metrics with their
null baseline.  It prints a markdown table of wall times and the key numbers, for
``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from memprior.experiments import fwi  # the experiment; FWIConfig is memprior.fwi's, re-exported


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", type=int, default=64, choices=(64, 200), help="paper setting (64 or 200)")
    p.add_argument("--samples", type=int, default=16, help="posterior samples per sampler and N")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="training-set sizes (default 50 200 1000)")
    p.add_argument("--top", type=int, default=8, help="components of the linearized mixture")
    p.add_argument("--truth", default="lens", choices=("lens", "ood"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    kw = dict(n_samples=a.samples)
    if a.sizes:
        kw["sizes"] = tuple(a.sizes)
    cfg = fwi.FWIConfig.paper(a.grid, **kw)
    t0 = time.perf_counter()
    c0 = time.process_time()
    exp = fwi.FWIExperiment(cfg, show_progress=False)
    out = fwi.run_pipeline(exp, truth=a.truth, top=a.top)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    print(f"# FWI pipeline, paper setting {a.grid}^2: {exp!r}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
          f"load average {os.getloadavg()[0]:.1f} at the end; torch threads 1")
    print(f"total wall {wall:.1f} s, process CPU {cpu:.1f} s, LU factorizations {exp.solver.n_factorizations}")
    print()
    print("| stage | wall s |")
    print("|---|---:|")
    for k, v in out["seconds"].items():
        print(f"| {k} | {v:.1f} |")
    print()
    print("| N | exp(H) | best misfit/datum | sampler | distinct models | on lookup best | median commit step "
          "| LU | s |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    T = exp.schedule.n_steps
    for N, r in out["results"].items():
        lk = r["lookup"]
        for name, s in r["samples"].items():
            print(f"| {N} | {lk.exp_H:.3f} | {lk.misfit_per_datum:.1f} | {name} | {len(set(s.nearest.tolist()))} | "
                  f"{float((s.nearest == lk.best).double().mean()):.2f} | "
                  f"{float((T - 1 - s.commit).double().median()):.0f} | {s.n_factorizations} | {s.seconds:.1f} |")
    print()
    print("| N | sampler | r<0.7 | null r<0.7 | d1/d2<1/3 | null d1/d2<1/3 |")
    print("|---:|---|---:|---:|---:|---:|")
    for N, r in out["results"].items():
        for name, m in r["memorization"].items():
            print(f"| {N} | {name} | {m['frac_r']:.2f} | {m['null_frac_r']:.2f} | {m['frac_q']:.2f} | "
                  f"{m['null_frac_q']:.2f} |")
    return dict(wall=wall, cpu=cpu, out=out)


if __name__ == "__main__":
    main()
