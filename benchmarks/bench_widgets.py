"""Live-app callback latency, one case per chapter: p95 of the controls -> figure update path.

Each case builds the chapter's live app with ``live=False`` (the same callback on a plain figure, so no
browser round trip is timed) and moves its controls through a fixed, seeded list of settings
(``memprior.widgets.callback_latencies``). Budgets: p95 <= 150 ms on the stylized chapters, <= 1 s on the
wave chapters (6 and 7).

Run from the repository root, on an otherwise idle machine::

    python benchmarks/bench_widgets.py              # every chapter
    python benchmarks/bench_widgets.py 2 6          # chapters 2 and 6

It prints a markdown table to paste into ``benchmarks/RESULTS.md`` and exits 1 if a p95 is over budget.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

from memprior.widgets import callback_latencies

WAVE_BUDGET_MS, STYLIZED_BUDGET_MS = 1000.0, 150.0
CASES = {}


def case(number: int, name: str, budget_ms: float = STYLIZED_BUDGET_MS):
    def register(fn):
        CASES[number] = (name, budget_ms, fn)
        return fn
    return register


@case(1, "01_ml_memorizes")
def ch1():
    from memprior.experiments import memorize
    from memprior.widgets import memorize as apps

    rng = np.random.default_rng(0)
    res, ns = memorize.bandwidth_study(), [5, 10, 20, 50, 100, 200, 400]
    app = apps.bandwidth_app(res.pool, res.x_test[:500], ns=ns, n=20, sigma=0.3, live=False)
    settings = [dict(N=int(rng.choice(ns)), sigma=float(10 ** rng.uniform(-3, 0.69))) for _ in range(40)]
    return app, settings, 1


@case(2, "02_lookup_posterior")
def ch2():
    from memprior import posterior
    from memprior.widgets import memorize as apps

    rng = np.random.default_rng(0)
    x_train = torch.tensor([[-1.5], [-0.4], [0.4], [1.2], [2.5]], dtype=torch.float64)
    app = apps.lookup_app(posterior.cubic_forward, x_train, np.linspace(-3.5, 3.5, 301), y=1.0, gamma=0.3,
                          live=False)
    settings = [dict(y=float(rng.uniform(-5, 7)), gamma=float(10 ** rng.uniform(-3, 1.3))) for _ in range(40)]
    return app, settings, 1


@case(3, "03_stylized_problem")
def ch3():
    from memprior.widgets.stylized import benchmark_settings, stylized_app

    return stylized_app(live=False), benchmark_settings(40), 1


@case(4, "04_diffusion_memorizes")
def ch4():
    from memprior.widgets.diffusion import noising_app

    app = noising_app(np.array([-1.5, -0.4, 0.4, 1.2, 2.5]), live=False)
    settings = [dict(t=int(t), schedule=s) for t in range(0, 200, 10) for s in ("linear (paper)", "cosine")]
    return app, settings, 1


@case(5, "05_dps")
def ch5():
    from memprior.diffusion import Schedule
    from memprior.posterior import stylized_1d
    from memprior.widgets.guidance import benchmark_settings, step_size_app

    app = step_size_app(stylized_1d(), Schedule.linear(200, 1e-4, 0.02), live=False)
    return app, benchmark_settings(), 1


@case(6, "06_wave_solver", WAVE_BUDGET_MS)
def ch6():
    from memprior import velocity
    from memprior.wave import Helmholtz2D
    from memprior.widgets.wave import wavefield_app

    n, dx = 64, 2 / 64
    solver = Helmholtz2D(n, n, dx, npml=10, cache_size=4)
    gen = torch.Generator().manual_seed(0)
    families = {
        "Gaussian lens": 1.0 / velocity.gaussian_lens(n, n, dx).numpy() ** 2,
        "layered": 1 / velocity.layered(n, n, dx, [1.6, 2.1, 2.6], [0.6, 1.3]).numpy() ** 2,
        "faulted": 1 / velocity.faulted(n, n, dx).numpy() ** 2,
        "random field": 1 / velocity.rescale(velocity.grf(1, n, n, generator=gen))[0].numpy() ** 2,
    }
    settings = [dict(freq=f, source_x=sx, model=m) for f, sx, m in
                [(2.0, 0.3, "layered"), (5.5, 1.6, "faulted"), (5.5, 1.0, "random field"),
                 (3.5, 0.6, "Gaussian lens"), (4.5, 1.2, "layered"), (5.0, 0.1, "faulted")]]
    return wavefield_app(solver, families, freqs=(1.0, 5.5, 0.5), live=False), settings, 2


@case(7, "07_fwi_dps", WAVE_BUDGET_MS)
def ch7():
    from memprior.experiments import fwi as experiments
    from memprior.widgets import fwi as apps

    exp = experiments.FWIExperiment(show_progress=False)
    pre = experiments.app_runs(exp)  # the chapter's precomputed runs; then one run made on demand
    app = apps.fwi_app(apps.AppState(exp, exp.truth("lens"), runs=pre), sizes=exp.cfg.sizes, live=False)
    settings = [dict(N=n, noise=noise, step_size=step) for (n, noise, step) in pre] + \
        [dict(N=200, noise=0.1, step_size=0.05)]
    return app, settings, 1


@case(8, "08_practice")
def ch8():
    from memprior.experiments import practice
    from memprior.widgets import practice as apps

    bed = practice.toy_problem()
    priors = practice.train_priors(bed)
    det = practice.detect(bed, priors)
    mit = practice.mitigations(bed, priors, det, best_step=practice.loss_gap(bed, priors).best)
    sweep = practice.datum_sweep(bed, det, mit)
    app = apps.datum_app(sweep.priors(), bed.a, bed.gamma, bed.reference_sampler, short_names=sweep.short,
                         live=False)
    return app, apps.benchmark_settings(), 1


def measure(numbers=None) -> list[dict]:
    """Time each case; returns rows with the chapter, p50, p95, budget and the number of moves."""
    torch.set_num_threads(1)
    rows = []
    for number in sorted(numbers or CASES):
        if number not in CASES:
            raise SystemExit(f"chapter {number}: no widget case (known: {sorted(CASES)})")
        name, budget, build = CASES[number]
        app, settings, repeat = build()
        lat = np.asarray(callback_latencies(app, settings, repeat=repeat))
        rows.append(dict(chapter=name, p50=float(np.median(lat)), p95=float(np.percentile(lat, 95)),
                         budget=budget, moves=len(lat)))
    return rows


def main(argv=None) -> int:
    os.environ.setdefault("MEMPRIOR_QUIET", "1")  # no progress bars in the table
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapters", nargs="*", type=int, help="chapter numbers (default: all)")
    args = ap.parse_args(argv)
    rows = measure(args.chapters)
    print("| chapter | moves | p50 ms | p95 ms | budget ms | p95 / budget |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['chapter']} | {r['moves']} | {r['p50']:.1f} | {r['p95']:.1f} | {r['budget']:.0f} | "
              f"{r['p95'] / r['budget']:.2f} |")
    return 1 if any(r["p95"] > r["budget"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
