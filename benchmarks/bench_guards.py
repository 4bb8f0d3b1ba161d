"""Cost of the input validation and the runtime guards (issue 13), as a ratio against a baseline library.

The samplers now probe the forward map once, check the denoiser's output and the guided iterate at every
level, and training checks its loss at every step.  This script times the same calls with the current
library and with a baseline copy of it (for example the commit before the guards), alternating the two in
fresh processes, and prints the ratio current / baseline of the best of several repeats.

Run from the repository root, with a baseline exported from git:

    rm -rf /tmp/memprior_base && mkdir -p /tmp/memprior_base
    git archive 84c4039 lib/memprior | tar -x -C /tmp/memprior_base
    MEMPRIOR_QUIET=1 python benchmarks/bench_guards.py /tmp/memprior_base/lib

Results are recorded in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROUNDS = 3      # alternating baseline / current processes
REPEATS = 5     # calls per process; the best is kept

_CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
from memprior import diffusion as D, guidance as G, posterior as P
prob = P.stylized_2d()
x = prob.x_train.to(torch.float64)
S = D.Schedule.linear()
den = D.MemorizedDenoiser(x, S)
def best(f):
    out = []
    for r in range(%(repeats)d):
        t0 = time.perf_counter(); f(r); out.append(time.perf_counter() - t0)
    return min(out)
g = lambda r: torch.Generator().manual_seed(r)
res = {
    "DDIM, 256 samples": best(lambda r: D.ddim_sample(den, S, 256, g(r))),
    "DPS (Chung et al.), 256 samples": best(lambda r: G.dps_sample(den, S, prob.forward, prob.y, prob.gamma, 256,
                                                                   1.0, g(r), show_progress=False)),
    "paper variant, 256 samples": best(lambda r: G.dps_normalized_sample(den, S, prob.forward, prob.y, 256, 0.05,
                                                                         g(r), show_progress=False)),
    "SMC, K = 16, 32 samples": best(lambda r: G.smc_sample(x, prob.forward, prob.y, prob.gamma, S, 32, 16, g(r),
                                                           show_progress=False)),
    "train_denoiser, 300 steps": best(lambda r: D.train_denoiser(x, S, steps=300, hidden=64, depth=2, seed=r,
                                                                 cache=False, show_progress=False)),
}
print(json.dumps(res))
"""


def _run(lib: str | None) -> dict:
    env = dict(os.environ, MEMPRIOR_QUIET="1")
    if lib:
        env["PYTHONPATH"] = lib
    code = _CHILD % {"repeats": REPEATS}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not (Path(argv[0]) / "memprior" / "__init__.py").is_file():
        print("usage: python benchmarks/bench_guards.py BASELINE_LIB_DIR (a folder holding memprior/)",
              file=sys.stderr)
        return 2
    base_lib = str(Path(argv[0]).resolve())
    base, cur = {}, {}
    t0 = time.perf_counter()
    for _ in range(ROUNDS):
        for store, lib in ((base, base_lib), (cur, None)):
            for k, v in _run(lib).items():
                store[k] = min(store.get(k, float("inf")), v)
    print(f"best of {ROUNDS} x {REPEATS} calls, 1 thread, baseline {base_lib} "
          f"({time.perf_counter() - t0:.0f} s in all)\n")
    print("| call | baseline (s) | current (s) | current / baseline |")
    print("|---|---:|---:|---:|")
    for k in base:
        print(f"| {k} | {base[k]:.3f} | {cur[k]:.3f} | {cur[k] / base[k]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
