"""Throughput of the posterior samplers in memprior.guidance on the stylized problems.

Run from the repository root:

    MEMPRIOR_QUIET=1 /tmp/venv/bin/python benchmarks/bench_guidance.py

Prints a markdown table: wall time per call (median of repeats), samples per second and
sample-levels per second (samples x diffusion levels, or particles x levels for SMC), for
torch with 1 and with 2 threads.  Results are recorded in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import os
import platform
import statistics
import time

import torch

os.environ.setdefault("MEMPRIOR_QUIET", "1")

from memprior import guidance as G  # noqa: E402
from memprior.diffusion import MemorizedDenoiser, Schedule  # noqa: E402
from memprior.posterior import stylized_1d, stylized_2d  # noqa: E402

REPEATS = 3


def timed(fn):
    times = []
    for r in range(REPEATS):
        t0 = time.perf_counter()
        fn(r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    sched = Schedule.linear(200)
    T = sched.n_steps
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {torch.__version__}; load average {os.getloadavg()[0]:.1f}")
    print()
    print("| problem | sampler | threads | n | wall (s) | samples/s | sample-levels/s |")
    print("|---|---|---|---|---|---|---|")
    for name, p in (("cubic 1-D", stylized_1d()), ("pentagon 2-D", stylized_2d())):
        den = MemorizedDenoiser(p.x_train, sched)
        cases = [
            ("exact (ancestral)", 1000, 1,
             lambda r: G.exact_posterior_sample(p.x_train, p.forward, p.y, p.gamma, sched, 1000,
                                                torch.Generator().manual_seed(r))),
            ("DPS (Chung et al.)", 1000, 1,
             lambda r: G.dps_sample(den, sched, p.forward, p.y, p.gamma, 1000, zeta=0.1,
                                    generator=torch.Generator().manual_seed(r))),
            ("paper variant", 1000, 1,
             lambda r: G.dps_normalized_sample(den, sched, p.forward, p.y, 1000, step_size=0.05,
                                               generator=torch.Generator().manual_seed(r))),
            ("SMC, K = 16", 100, 16,
             lambda r: G.smc_sample(p.x_train, p.forward, p.y, p.gamma, sched, 100, n_particles=16,
                                    generator=torch.Generator().manual_seed(r))),
        ]
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for label, n, k, fn in cases:
                wall = timed(fn)
                print(f"| {name} | {label} | {threads} | {n} | {wall:.3f} | {n / wall:,.0f} | "
                      f"{n * k * T / wall:,.0f} |")


if __name__ == "__main__":
    main()
