"""Chapter 5: DPS, the paper's variant, exact reweighting and SMC on three toy problems.

The prior is the paper's diffusion model in its memorized limit (the closed-form denoiser of the training
set, :class:`memprior.diffusion.MemorizedDenoiser`, with the linear schedule of 200 steps, beta from 1e-4 to
0.02). Its exact posterior is the lookup posterior, weights ``w_n = softmax_n(-||y - F(x_n)||^2 / 2 gamma^2)``
(:func:`memprior.posterior.lookup_weights`). Every sampler of :mod:`memprior.guidance` is run on three
problems and its samples are assigned to their nearest training points; the frequencies are compared with
the lookup weights by their total-variation (TV) distance, with a bootstrap standard error, the noise floor
of an exact sampler with as many samples (:func:`memprior.guidance.tv_to_weights`) and a chi-square p-value
(:func:`memprior.guidance.chi2_test`). All quantities are dimensionless.

* :func:`toy_problems`: the cubic 1-D and pentagon 2-D problems of chapter 3 and the square 1-D problem
  (:func:`square_1d`), built to make the Jensen gap large.
* :func:`exact_runs`: the exact sampler (reweighted logits) on each problem.
* :func:`jensen_gap`: the exact ``log p(y | x_t)`` against DPS's surrogate on the square problem.
* :func:`dps_sweep`, :func:`plugin_runs`: DPS over its step size ``zeta'``, and with the plug-in step.
* :func:`paper_sweep`: the paper's normalized variant over its step length ``step_size`` (the paper's eta).
* :func:`smc_sweep`: the twisted SMC sampler over the number of particles per system.
* :func:`summary`: the table of all samplers side by side.

Seeds: the run of problem ``i`` (its position in :data:`PROBLEMS`) at step ``j`` of a sweep uses
``torch.Generator().manual_seed(seed + 10 i + j)`` (``seed + i`` for single runs), and its bootstrap uses
``10_000 +`` that seed, so a run on a subset of the problems reproduces the full run's numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np
import torch

from ._common import generator, schedule_or_paper
from .. import guidance, metrics, posterior
from .._checks import as_train, check_int, check_positive, check_seed
from ..diffusion import MemorizedDenoiser, Schedule

__all__ = ["PROBLEMS", "ZETAS", "STEP_SIZES", "PARTICLES", "SMC_SAMPLES", "LEVELS", "square_forward", "square_1d",
           "toy_problems", "Runs", "Sweep", "exact_runs", "plugin_runs", "dps_sweep", "paper_sweep",
           "smc_sweep", "JensenGap", "jensen_gap", "Summary", "summary"]

#: The three problems, in the order that fixes their seeds.
PROBLEMS = ("cubic 1-D", "pentagon 2-D", "square 1-D")
#: DPS step sizes zeta' of the chapter's sweep (two and a half decades).
ZETAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
#: Step lengths ``step_size`` of the paper variant's sweep (the paper's eta; units of x).
STEP_SIZES = (0.01, 0.02, 0.05, 0.1, 0.2)
#: Particles per SMC system.
PARTICLES = (1, 4, 16, 64)
#: Samples (independent particle systems) per SMC run, per problem.
SMC_SAMPLES = MappingProxyType({"cubic 1-D": 300, "pentagon 2-D": 150, "square 1-D": 600})
#: Diffusion levels of the Jensen-gap figure, noisiest first.
LEVELS = (199, 160, 130, 110, 90, 70, 50, 30, 10, 0)

_F64 = torch.float64


def _readonly(a) -> np.ndarray:
    a = np.array(a)
    a.flags.writeable = False
    return a


# ----------------------------------------------------------------------------- problems
def square_forward(x: torch.Tensor) -> torch.Tensor:
    """``F(x) = x^2``: ``[B, 1] -> [B, 1]``. It cannot tell ``x`` from ``-x``."""
    return x ** 2


def square_1d(y: float = 1.0, gamma: float = 0.5, x_train=None) -> posterior.Problem:
    """The square problem: ``F(x) = x^2``, training points ``{-1, 0.1, 1.3}``, ``y = 1``, ``gamma = 0.5``.

    Parameters
    ----------
    y : float
        The datum (finite).
    gamma : float
        Noise standard deviation, > 0.
    x_train : array-like [N, 1], optional
        Replaces the three training points.

    Returns
    -------
    memprior.posterior.Problem
        With ``grid=None`` (nothing here integrates on a grid).
    """
    gamma = check_positive("gamma", gamma, square=True)
    if isinstance(y, bool) or not isinstance(y, (int, float, np.integer, np.floating)) or not math.isfinite(y):
        raise TypeError(f"y: expected a finite real number, got {y!r}")
    if x_train is None:
        x_train = torch.tensor([[-1.0], [0.1], [1.3]], dtype=_F64)
    x = as_train(x_train).to(_F64)
    if x.shape[1] != 1:
        raise ValueError(f"x_train: expected shape [N, 1] (a 1-D problem), got {list(x.shape)}")
    return posterior.Problem(square_forward, x, torch.tensor([float(y)], dtype=_F64), gamma, None,
                             name="square 1-D")


def toy_problems() -> dict[str, posterior.Problem]:
    """The chapter's three problems by name, in the order of :data:`PROBLEMS`.

    ``"cubic 1-D"`` is :func:`memprior.posterior.stylized_1d` (``F(x) = x + 0.3 x^3``, y = 0, gamma = 0.3),
    ``"pentagon 2-D"`` is :func:`memprior.posterior.stylized_2d` (gamma = 0.3) and ``"square 1-D"`` is
    :func:`square_1d`.
    """
    return {"cubic 1-D": posterior.stylized_1d(), "pentagon 2-D": posterior.stylized_2d(),
            "square 1-D": square_1d()}


# ----------------------------------------------------------------------------- validation
def _names(problems) -> list[tuple[int, str]]:
    if isinstance(problems, str) or not isinstance(problems, Sequence):
        raise TypeError(f"problems: expected a sequence of names from {PROBLEMS}, got {problems!r}")
    if len(problems) == 0 or len(set(problems)) != len(problems) or any(p not in PROBLEMS for p in problems):
        raise ValueError(f"problems: need distinct names from {PROBLEMS}, got {tuple(problems)!r}")
    return [(i, k) for i, k in enumerate(PROBLEMS) if k in problems]


def _values(name: str, values, integer: bool = False) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)) or len(values) == 0:
        raise ValueError(f"{name}: need a non-empty sequence of {'integers >= 1' if integer else 'numbers > 0'}")
    if integer:
        return tuple(check_int(name, v, low=1) for v in values)
    return tuple(check_positive(name, v) for v in values)


def _n_samples(n_samples, names) -> dict[str, int]:
    if isinstance(n_samples, Mapping):
        missing = [k for _, k in names if k not in n_samples]
        if missing:
            raise ValueError(f"n_samples: no sample count for {missing}")
        return {k: check_int("n_samples", n_samples[k], low=2) for _, k in names}
    n = check_int("n_samples", n_samples, low=2)
    return {k: n for _, k in names}


def _common(seed, n_boot):
    return check_seed(seed, "seed"), check_int("n_boot", n_boot, low=2)


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class _Scores:
    """The fields shared by :class:`Runs` and :class:`Sweep`."""

    sampler: str
    problems: tuple
    n: dict
    seeds: dict
    weights: dict
    tv: dict
    se: dict
    floor: dict
    chi2_p: dict
    frequencies: dict
    distances: dict


@dataclass(frozen=True)
class Runs(_Scores):
    """One run of a sampler on each problem, compared with the lookup weights.

    Every mapping is keyed by problem name (in the order of :data:`PROBLEMS`).

    Attributes
    ----------
    sampler : str
    problems : tuple of str
    n : dict of int
        Samples per run.
    seeds : dict of int
        Seed of each run (its bootstrap used ``10_000 + seed``).
    weights : dict of ndarray [N]
        Exact lookup weights.
    tv, se, floor : dict of float
        TV distance between frequencies and weights, its bootstrap standard error, and the mean TV an exact
        sampler shows with ``n`` samples (all in [0, 1]).
    chi2_p : dict of float
        Chi-square p-value of the counts against the weights.
    frequencies : dict of ndarray [N]
        Share of the samples whose nearest training point is ``x_n``.
    distances : dict of ndarray [n]
        Distance of each sample to its nearest training point (units of x).
    """


@dataclass(frozen=True)
class Sweep(_Scores):
    """A sampler run on each problem at each value of its step parameter.

    Every mapping is keyed by problem name; the arrays run along ``values`` (``S`` entries).

    Attributes
    ----------
    sampler, problems, n, weights
        As in :class:`Runs`.
    seeds : dict of ndarray [S] (int)
    tv, se, floor, chi2_p : dict of ndarray [S]
        As in :class:`Runs`, one entry per value.
    frequencies : dict of ndarray [S, N]
    distances : dict of ndarray [S, n]
        Units of x.
    parameter : str
        Name of the swept parameter (``"zeta'"``, ``"step_size"`` or ``"K"``).
    values : ndarray [S]
    """

    parameter: str
    values: np.ndarray

    def _problem(self, problem: str) -> str:
        if problem not in self.problems:
            raise ValueError(f"problem: must be one of {self.problems}, got {problem!r}")
        return problem

    def index(self, value) -> int:
        """Position of ``value`` in ``values`` (to a relative 1e-12)."""
        hit = np.flatnonzero(np.isclose(self.values, float(value), rtol=1e-12, atol=0.0))
        if hit.size == 0:
            raise ValueError(f"value: {self.parameter} = {value!r} is not in the sweep {self.values.tolist()}")
        return int(hit[0])

    def best(self, problem: str) -> int:
        """Index of the value with the smallest TV on ``problem`` (the first, on ties)."""
        return int(np.argmin(self.tv[self._problem(problem)]))

    def series(self) -> dict:
        """``{problem: {"x": values, "tv": [S], "se": [S]}}``, the input of ``plots.guidance.fig_tv_sweep``."""
        return {k: dict(x=self.values, tv=self.tv[k], se=self.se[k]) for k in self.problems}

    def share_at(self, problem: str, distance: float | None = None, tol: float = 1e-6) -> np.ndarray:
        """Share of the samples at a given distance from their nearest training point, per value, ``[S]``.

        ``distance=None`` uses each run's own step value (the paper variant's ``step_size``).
        """
        d = self.distances[self._problem(problem)]
        target = self.values[:, None] if distance is None else float(distance)
        return (np.abs(d - target) < check_positive("tol", tol)).mean(1)


def _compare(samples: torch.Tensor, problem, weights: torch.Tensor, seed: int, n_boot: int) -> tuple:
    """(tv, se, floor, chi2_p, frequencies [N], distances [n]) of one run."""
    est = guidance.tv_to_weights(samples, problem.x_train, weights, n_boot=n_boot, generator=generator(10_000 + seed))
    dist = metrics.nearest(samples, problem.x_train).distance
    p = guidance.chi2_test(samples, problem.x_train, weights)[2]
    return est.tv, est.se, est.floor, p, est.frequencies.numpy(), dist.numpy()


_FIELDS = ("tv", "se", "floor", "chi2_p", "frequencies", "distances")


def _runs(sampler, names, ns, problems, weights, draw, seed, n_boot) -> Runs:
    out = {f: {} for f in _FIELDS}
    seeds = {}
    for i, k in names:
        seeds[k] = seed + i
        s = draw(k, problems[k], ns[k], generator(seed + i))
        for f, v in zip(_FIELDS, _compare(s, problems[k], weights[k], seed + i, n_boot)):
            out[f][k] = _readonly(v) if isinstance(v, np.ndarray) else float(v)
    keys = tuple(k for _, k in names)
    return Runs(sampler=sampler, problems=keys, n=dict(ns), seeds=seeds,
                weights={k: _readonly(weights[k].numpy()) for k in keys}, **out)


def _sweep(sampler, parameter, values, names, ns, problems, weights, draw, seed, n_boot) -> Sweep:
    out = {f: {} for f in _FIELDS}
    seeds = {}
    for i, k in names:
        rows = []
        seeds[k] = _readonly([seed + 10 * i + j for j in range(len(values))])
        for j, v in enumerate(values):
            s = draw(k, problems[k], ns[k], v, generator(seed + 10 * i + j))
            rows.append(_compare(s, problems[k], weights[k], seed + 10 * i + j, n_boot))
        for f, col in zip(_FIELDS, zip(*rows)):
            out[f][k] = _readonly(np.stack(col) if isinstance(col[0], np.ndarray) else np.array(col, dtype=float))
    keys = tuple(k for _, k in names)
    return Sweep(sampler=sampler, parameter=parameter, values=_readonly(np.array(values, dtype=float)),
                 problems=keys, n=dict(ns), seeds=seeds,
                 weights={k: _readonly(weights[k].numpy()) for k in keys}, **out)


def _setup(problems, n_samples, seed, n_boot, schedule):
    names = _names(problems)
    ns = _n_samples(n_samples, names)
    seed, n_boot = _common(seed, n_boot)
    sched = schedule_or_paper(schedule)
    probs = toy_problems()
    weights = {k: posterior.lookup_weights(p.forward, p.x_train, p.y, p.gamma) for k, p in probs.items()}
    return names, ns, seed, n_boot, sched, probs, weights


# ----------------------------------------------------------------------------- samplers
def exact_runs(*, n_samples: int = 600, seed: int = 0, problems: Sequence[str] = PROBLEMS, n_boot: int = 200,
               schedule: Schedule | None = None) -> Runs:
    """The exact sampler (:func:`memprior.guidance.exact_posterior_sample`, ancestral) on each problem.

    Parameters
    ----------
    n_samples : int >= 2, or mapping problem -> int
        Samples per problem.
    seed : int >= 0
        Problem ``i`` of :data:`PROBLEMS` uses ``seed + i``.
    problems : sequence of str
        A subset of :data:`PROBLEMS`.
    n_boot : int >= 2
        Bootstrap replicates of the TV's standard error and noise floor.
    schedule : Schedule, optional
        Default: ``Schedule.linear(200, 1e-4, 0.02)``.

    Returns
    -------
    Runs
    """
    seed = check_seed(seed, "seed")
    names, ns, seed, n_boot, sched, probs, weights = _setup(problems, n_samples, seed, n_boot, schedule)

    def draw(k, p, n, g):
        return guidance.exact_posterior_sample(p.x_train, p.forward, p.y, p.gamma, sched, n, g)

    return _runs("exact", names, ns, probs, weights, draw, seed, n_boot)


def plugin_runs(*, zeta: float = 1.0, n_samples: int = 600, seed: int = 200, problems: Sequence[str] = PROBLEMS,
                n_boot: int = 200, schedule: Schedule | None = None) -> Runs:
    """DPS with the plug-in step (``rule="plugin"``): exact guidance for DPS's surrogate likelihood.

    Parameters
    ----------
    zeta : float > 0
        Multiplier of the plug-in step (1: the step that would be exact without the Jensen gap).
    n_samples, seed, problems, n_boot, schedule
        As in :func:`exact_runs` (seed ``seed + i`` for problem ``i``).

    Returns
    -------
    Runs
    """
    seed = check_seed(seed, "seed")
    zeta = check_positive("zeta", zeta)
    names, ns, seed, n_boot, sched, probs, weights = _setup(problems, n_samples, seed, n_boot, schedule)

    def draw(k, p, n, g):
        return guidance.dps_sample(MemorizedDenoiser(p.x_train, sched), sched, p.forward, p.y, p.gamma, n,
                                   zeta=zeta, rule="plugin", generator=g, show_progress=False)

    return _runs("DPS (plug-in)", names, ns, probs, weights, draw, seed, n_boot)


def dps_sweep(*, zetas: Sequence[float] = ZETAS, n_samples: int = 600, seed: int = 100,
              problems: Sequence[str] = PROBLEMS, n_boot: int = 200, schedule: Schedule | None = None) -> Sweep:
    """DPS (:func:`memprior.guidance.dps_sample`, Chung et al.'s step rule) over its step size ``zeta'``.

    Parameters
    ----------
    zetas : sequence of float > 0
        Step sizes ``zeta'`` (dimensionless).
    n_samples, problems, n_boot, schedule
        As in :func:`exact_runs`.
    seed : int >= 0
        Problem ``i``, step ``j`` uses ``seed + 10 i + j``.

    Returns
    -------
    Sweep
        ``parameter="zeta'"``.
    """
    seed = check_seed(seed, "seed")
    zetas = _values("zetas", zetas)
    names, ns, seed, n_boot, sched, probs, weights = _setup(problems, n_samples, seed, n_boot, schedule)
    dens = {k: MemorizedDenoiser(probs[k].x_train, sched) for _, k in names}

    def draw(k, p, n, z, g):
        return guidance.dps_sample(dens[k], sched, p.forward, p.y, p.gamma, n, zeta=z, generator=g,
                                   show_progress=False)

    return _sweep("DPS", "zeta'", zetas, names, ns, probs, weights, draw, seed, n_boot)


def paper_sweep(*, step_sizes: Sequence[float] = STEP_SIZES, n_samples: int = 600, seed: int = 300,
                problems: Sequence[str] = PROBLEMS, n_boot: int = 200, schedule: Schedule | None = None) -> Sweep:
    """The paper's normalized variant (:func:`memprior.guidance.dps_normalized_sample`) over ``step_size``.

    Parameters
    ----------
    step_sizes : sequence of float > 0
        Step lengths (units of x; the paper's eta).
    n_samples, seed, problems, n_boot, schedule
        As in :func:`dps_sweep`.

    Returns
    -------
    Sweep
        ``parameter="step_size"``.
    """
    seed = check_seed(seed, "seed")
    step_sizes = _values("step_sizes", step_sizes)
    names, ns, seed, n_boot, sched, probs, weights = _setup(problems, n_samples, seed, n_boot, schedule)
    dens = {k: MemorizedDenoiser(probs[k].x_train, sched) for _, k in names}

    def draw(k, p, n, step_size, g):
        return guidance.dps_normalized_sample(dens[k], sched, p.forward, p.y, n, step_size=step_size, generator=g,
                                              show_progress=False)

    return _sweep("paper variant", "step_size", step_sizes, names, ns, probs, weights, draw, seed, n_boot)


def smc_sweep(*, particles: Sequence[int] = PARTICLES, n_samples: int | Mapping[str, int] = SMC_SAMPLES,
              seed: int = 400, problems: Sequence[str] = PROBLEMS, n_boot: int = 200,
              schedule: Schedule | None = None) -> Sweep:
    """SMC with twisting (:func:`memprior.guidance.smc_sample`) over the particles per system ``K``.

    Each sample comes from its own particle system, so the samples are independent.

    Parameters
    ----------
    particles : sequence of int >= 1
        Particles per system.
    n_samples : int >= 2 or mapping problem -> int
        Samples (particle systems) per run; default :data:`SMC_SAMPLES`.
    seed, problems, n_boot, schedule
        As in :func:`dps_sweep`.

    Returns
    -------
    Sweep
        ``parameter="K"``.
    """
    seed = check_seed(seed, "seed")
    particles = _values("particles", particles, integer=True)
    names, ns, seed, n_boot, sched, probs, weights = _setup(problems, n_samples, seed, n_boot, schedule)

    def draw(k, p, n, K, g):
        return guidance.smc_sample(p.x_train, p.forward, p.y, p.gamma, sched, n, n_particles=int(K), generator=g,
                                   show_progress=False)

    return _sweep("SMC", "K", particles, names, ns, probs, weights, draw, seed, n_boot)


# ----------------------------------------------------------------------------- the Jensen gap
@dataclass(frozen=True)
class JensenGap:
    """The exact ``log p(y | x_t)`` and DPS's ``log p(y | E[x_0 | x_t])`` of a 1-D problem.

    Attributes
    ----------
    x_grid : ndarray [G]
        Noisy iterates ``x_t`` (units of x).
    levels : ndarray [L] (int)
        Diffusion levels, in the order given (noisiest first by default).
    noise_std : ndarray [L]
        ``sqrt(1 - alpha_bar_t)`` at each level.
    exact, dps : ndarray [L, G]
        The two log-likelihoods (nats) on the grid.
    gap_max : ndarray [L]
        ``max_x |exact - dps|`` over the grid at each level (nats).
    gap_mean : ndarray [L]
        ``|exact - dps|`` averaged over ``n_mc`` iterates drawn from the noised prior at each level (nats).
    """

    x_grid: np.ndarray
    levels: np.ndarray
    noise_std: np.ndarray
    exact: np.ndarray
    dps: np.ndarray
    gap_max: np.ndarray
    gap_mean: np.ndarray


def jensen_gap(*, problem: posterior.Problem | None = None, levels: Sequence[int] = LEVELS, x_max: float = 2.5,
               n_grid: int = 401, n_mc: int = 4000, seed: int = 50, schedule: Schedule | None = None) -> JensenGap:
    """The Jensen gap of DPS (:func:`memprior.guidance.noisy_likelihoods`) on a grid and on average.

    Parameters
    ----------
    problem : memprior.posterior.Problem, optional
        A 1-D problem; default :func:`square_1d`.
    levels : sequence of int
        Levels in ``[0, T-1]``.
    x_max : float > 0
        The grid is ``linspace(-x_max, x_max, n_grid)`` (units of x).
    n_grid : int >= 2
    n_mc : int >= 1
        Iterates per level for ``JensenGap.gap_mean``: ``x_t = sqrt(ab_t) x_k + sqrt(1 - ab_t) eps`` with
        ``k`` uniform over the training points.
    seed : int >= 0
        One generator for all levels: the indices ``k`` first, then the noise of each level in turn.
    schedule : Schedule, optional
        Default: ``Schedule.linear(200, 1e-4, 0.02)``.

    Returns
    -------
    JensenGap
    """
    seed = check_seed(seed, "seed")
    p = square_1d() if problem is None else problem
    if not isinstance(p, posterior.Problem):
        raise TypeError(f"problem: expected a memprior.posterior.Problem or None, got {type(p).__name__}")
    if p.x_train.shape[1] != 1:
        raise ValueError(f"problem: expected a 1-D problem (x_train of shape [N, 1]), got {list(p.x_train.shape)}")
    sched = schedule_or_paper(schedule)
    if isinstance(levels, (str, bytes)) or not isinstance(levels, (Sequence, np.ndarray)) or len(levels) == 0:
        raise ValueError(f"levels: need a non-empty sequence of integers in [0, {sched.n_steps - 1}]")
    lv = tuple(check_int("levels", v, low=0, high=sched.n_steps - 1) for v in levels)
    x_max = check_positive("x_max", x_max)
    n_grid = check_int("n_grid", n_grid, low=2)
    n_mc = check_int("n_mc", n_mc, low=1)
    seed = check_seed(seed, "seed")
    args = (p.x_train, p.forward, p.y, p.gamma, sched)
    x_grid = torch.linspace(-x_max, x_max, n_grid, dtype=_F64)[:, None]
    exact, dps = zip(*(guidance.noisy_likelihoods(*args, x_grid, t) for t in lv))
    exact, dps = torch.stack(exact).numpy(), torch.stack(dps).numpy()
    g = generator(seed)
    k = torch.randint(len(p.x_train), (n_mc,), generator=g)
    gap_mean = []
    for t in lv:
        ab = sched.alpha_bar[t]
        x = ab.sqrt() * p.x_train[k] + (1 - ab).sqrt() * torch.randn(n_mc, 1, generator=g, dtype=_F64)
        e, d = guidance.noisy_likelihoods(*args, x, t)
        gap_mean.append(float((e - d).abs().mean()))
    return JensenGap(x_grid=_readonly(x_grid[:, 0].numpy()), levels=_readonly(np.array(lv, dtype=int)),
                     noise_std=_readonly([sched.std(t) for t in lv]), exact=_readonly(exact), dps=_readonly(dps),
                     gap_max=_readonly(np.abs(exact - dps).max(1)), gap_mean=_readonly(gap_mean))


# ----------------------------------------------------------------------------- all samplers side by side
@dataclass(frozen=True)
class Summary:
    """TV to the lookup weights of every sampler on every problem, the chapter's closing table.

    Attributes
    ----------
    problems : tuple of str
        Columns (``P``).
    samplers : tuple of str
        Rows (``R``).
    tv, se : ndarray [R, P]
    notes : tuple of tuple of str [R][P]
        The step chosen, where a row picks one per problem (else ``""``).
    floor : ndarray [P]
        The exact sampler's noise floor.
    """

    problems: tuple
    samplers: tuple
    tv: np.ndarray
    se: np.ndarray
    notes: tuple
    floor: np.ndarray


def summary(exact: Runs, dps: Sweep, plugin: Runs, paper: Sweep, smc: Sweep, *, zeta: float = 1.0,
            step_size: float = 0.05, particles: Sequence[int] = (1, 64)) -> Summary:
    """Tabulate the runs: exact, DPS at its best ``zeta'`` (chosen with hindsight) and at ``zeta``, the plug-in
    step, the paper variant at ``step_size`` (the paper's eta, shown as η), and SMC at each of ``particles``.

    Parameters
    ----------
    exact, plugin : Runs
        From :func:`exact_runs` and :func:`plugin_runs`.
    dps, paper, smc : Sweep
        From :func:`dps_sweep`, :func:`paper_sweep` and :func:`smc_sweep`; ``zeta``, ``step_size`` and every entry of
        ``particles`` must be among their values.

    Returns
    -------
    Summary
    """
    for name, r, kind in (("exact", exact, Runs), ("dps", dps, Sweep), ("plugin", plugin, Runs),
                          ("paper", paper, Sweep), ("smc", smc, Sweep)):
        if type(r) is not kind:
            raise TypeError(f"{name}: expected a {kind.__name__}, got {type(r).__name__}")
    keys = exact.problems
    for name, r in (("dps", dps), ("plugin", plugin), ("paper", paper), ("smc", smc)):
        if r.problems != keys:
            raise ValueError(f"{name}: must cover the same problems as exact {keys}, got {r.problems}")
    jz, je = dps.index(zeta), paper.index(step_size)
    jk = [smc.index(K) for K in _values("particles", particles, integer=True)]
    best = [dps.best(k) for k in keys]
    rows = [("exact (reweighted logits)", [(exact.tv[k], exact.se[k]) for k in keys], [""] * len(keys)),
            ("DPS, best ζ′ of the sweep", [(dps.tv[k][b], dps.se[k][b]) for k, b in zip(keys, best)],
             [f"ζ′ = {dps.values[b]:g}" for b in best]),
            (f"DPS, ζ′ = {zeta:g}", [(dps.tv[k][jz], dps.se[k][jz]) for k in keys], [""] * len(keys)),
            ("DPS, plug-in step", [(plugin.tv[k], plugin.se[k]) for k in keys], [""] * len(keys)),
            (f"paper variant, η = {step_size:g}", [(paper.tv[k][je], paper.se[k][je]) for k in keys], [""] * len(keys))]
    rows += [(f"SMC, K = {int(smc.values[j])}", [(smc.tv[k][j], smc.se[k][j]) for k in keys], [""] * len(keys))
             for j in jk]
    return Summary(problems=keys, samplers=tuple(r[0] for r in rows),
                   tv=_readonly([[c[0] for c in r[1]] for r in rows]),
                   se=_readonly([[c[1] for c in r[1]] for r in rows]),
                   notes=tuple(tuple(r[2]) for r in rows), floor=_readonly([exact.floor[k] for k in keys]))
