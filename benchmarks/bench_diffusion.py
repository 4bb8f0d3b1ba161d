"""Speed of memprior.diffusion: MLP training at 1 vs 2 threads, and sampler throughput.

Run from the repository root:

    MEMPRIOR_QUIET=1 /tmp/venv/bin/python benchmarks/bench_diffusion.py

Prints two markdown tables for ``benchmarks/RESULTS.md``:

1. ``train_denoiser`` optimizer steps per second for small MLPs (the chapter-4 sizes and a
   larger one), with ``threads=1`` and ``threads=2``; the ratio is steps/s at 1 thread over
   steps/s at 2 threads, both timed in this run (> 1: one thread is faster).
2. Samples per second of the samplers on the paper's 200-step schedule, each against the
   closed-form DDIM baseline of the same (N, d) timed in this run.

Each entry is the median of ``--repeat`` timings.  No caching (``cache=False``).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from memprior import diffusion as dif


def _median_time(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench_training(steps: int, repeat: int) -> list[dict]:
    sch = dif.Schedule.linear()
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rows = []
    for hidden, batch in ((64, 64), (128, 128)):
        res = {}
        for th in (1, 2):
            def run():
                dif.train_denoiser(x, sch, steps=steps, batch_size=batch, hidden=hidden, depth=3, threads=th,
                                   cache=False, show_progress=False)
            run()  # warm-up
            res[th] = steps / _median_time(run, repeat)
        rows.append(dict(net=f"MLP width {hidden}, depth 3, batch {batch}, d = 2", s1=res[1], s2=res[2],
                         ratio=res[1] / res[2]))
    return rows


def bench_samplers(n: int, repeat: int) -> list[dict]:
    torch.set_num_threads(1)
    sch = dif.Schedule.linear()
    rows = []
    for N, d in ((100, 2), (1000, 100)):
        x = torch.randn(N, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        mem = dif.MemorizedDenoiser(x, sch)
        net = dif.MLPDenoiser(d, sch, hidden=64, depth=3, x_train=x).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        cases = [
            ("DDIM, closed form, 200 steps (baseline)", lambda: dif.ddim_sample(mem, sch, n)),
            ("DDPM, closed form, 200 steps", lambda: dif.ddpm_sample(mem, sch, n)),
            ("DDIM, closed form, 50 steps", lambda: dif.ddim_sample(mem, sch, n, steps=50)),
            ("DDIM, MLP width 64, 200 steps", lambda: dif.ddim_sample(net, sch, n)),
        ]
        base = None
        for name, fn in cases:
            fn()  # warm-up
            rate = n / _median_time(fn, repeat)
            base = base or rate
            rows.append(dict(setting=f"N = {N}, d = {d}", sampler=name, rate=rate, ratio=rate / base))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=150, help="training steps per timing")
    p.add_argument("--samples", type=int, default=256, help="samples per sampler call")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    old = torch.get_num_threads()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} at start")
    print()
    print(f"### Training: `train_denoiser`, {a.steps} steps, median of {a.repeat}")
    print()
    print("| network | steps/s, 1 thread | steps/s, 2 threads | ratio 1 / 2 threads |")
    print("|---|---:|---:|---:|")
    for r in bench_training(a.steps, a.repeat):
        print(f"| {r['net']} | {r['s1']:.0f} | {r['s2']:.0f} | {r['ratio']:.2f} |")
    print()
    print(f"### Samplers: {a.samples} samples per call, paper's schedule, 1 thread, median of {a.repeat}")
    print()
    print("| training set | sampler | samples/s | ratio to baseline |")
    print("|---|---|---:|---:|")
    for r in bench_samplers(a.samples, a.repeat):
        print(f"| {r['setting']} | {r['sampler']} | {r['rate']:.0f} | {r['ratio']:.2f} |")
    print()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    torch.set_num_threads(old)


if __name__ == "__main__":
    main()
