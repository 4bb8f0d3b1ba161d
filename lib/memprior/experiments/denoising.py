"""Chapter 4: diffusion models memorize.

The closed-form (memorizing) denoiser of :mod:`memprior.diffusion`, what sampling with it does, and small
trained networks against it, scored with the nearest-neighbour metrics of :mod:`memprior.metrics` next to
their null. Data are in normalized units (the training sets are standard Gaussian draws, or scaled ones);
time is the integer step ``t = 0, ..., T-1`` of a variance-preserving schedule, ``T - 1`` the noisiest.
Unless a ``schedule`` is passed, everything uses the paper's: 200 steps, ``beta`` linear from ``1e-4`` to
``0.02`` (:func:`paper_schedule`).

* :func:`optimality_check`: the closed-form Jacobian against autograd, and the loss of tempered variants
  of the closed form against the optimum on the same Monte Carlo draws.
* :func:`landing_2d`: DDIM with the closed form in the plane lands on the training points.
* :func:`frequency_test`: how often each training point is returned, and a chi-square test of uniformity,
  for each initialization of the sampler.
* :func:`commitment_sweep`: the step at which a sampler path commits to one training point, against the
  dimension and the size of the training set.
* :func:`mlp_gap`: a small trained network against the closed form, step by step.
* :func:`memorization_sweep`: fraction of the trained networks' samples flagged as memorized, against the
  training length and the training-set size, with the null of fresh draws.
* :func:`null_vs_dimension`: the null of both memorization rules against the dimension (isotropic Gaussians).
* :func:`null_kl`: the same null for the paper's random-field prior in d = 100 KL coefficients, raw and
  z-scored, against Gaussians of the same dimension.

Random results take ``seed`` (sampler and Monte Carlo draws) and, where a training set is drawn, ``data_seed``;
the defaults are the chapter's. The trained networks are cached on disk by
:func:`memprior.diffusion.train_denoiser`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from ._common import generator, schedule_or_paper
from .. import metrics
from ..diffusion import MemorizedDenoiser, Schedule, commitment_step, ddim_sample, denoising_loss, train_denoiser
from ..fwi import random_field_models, zscore
from ..velocity import KLBasis
from .._checks import check_int, check_positive, check_seed

__all__ = ["paper_schedule", "Optimality", "optimality_check", "Landing", "landing_2d", "Frequencies",
           "frequency_test", "Commitment", "commitment_sweep", "MLPGap", "mlp_gap", "MemorizationSweep",
           "memorization_sweep", "NullVsDimension", "null_vs_dimension", "NullKL", "null_kl"]

#: The trained networks' settings (the chapter's): width, residual layers, minibatch, learning rate.
MLP_SETTINGS = dict(batch_size=64, hidden=64, depth=3, lr=3e-3)
#: The two memorization rules: the paper's r < 0.7 and d1/d2 < 1/3.
RULES = ("r < 0.7 (paper)", "d₁/d₂ < 1/3")
THRESHOLDS = (metrics.PAPER_THRESHOLD, metrics.D1D2_THRESHOLD)


def paper_schedule() -> Schedule:
    """The paper's schedule: ``T = 200`` steps, ``beta`` linear from ``1e-4`` to ``0.02``."""
    return Schedule.linear()


# ----------------------------------------------------------------------------------------- helpers
def _readonly(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False


def _ints(name: str, values, *, low: int, high: int | None = None, increasing: bool = True) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name}: expected a sequence of integers, got {type(values).__name__}")
    out = tuple(check_int(name, v, low=low, high=high) for v in values)
    if len(out) == 0:
        raise ValueError(f"{name}: need at least one value")
    if increasing and any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"{name}: values must be strictly increasing, got {list(out)}")
    return out


def _gaussian(n: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(n, d, generator=generator(seed), dtype=torch.float64)


# ------------------------------------------------------------------------------------- optimality
class _Tempered:
    """The closed form with the temperature of its softmax weights changed by a factor ``tau``."""

    def __init__(self, den: MemorizedDenoiser, tau: float):
        self.den, self.tau, self.dim, self.dtype = den, tau, den.dim, torch.float64

    def denoise(self, x, t):
        return torch.softmax(self.tau * self.den.logits(x, t), 1) @ self.den.x_train

    def eps(self, x, t):
        raise NotImplementedError("only the x0-loss of the tempered denoiser is used")


@dataclass(frozen=True)
class Optimality:
    """Numerical checks of the closed-form denoiser and its Jacobian (:func:`optimality_check`).

    Attributes
    ----------
    jac_err : float
        Largest absolute difference between :meth:`~memprior.diffusion.MemorizedDenoiser.jacobian` and autograd, over the
        test points and steps (dimensionless).
    taus : ndarray [K]
        Temperature factors of the perturbed denoisers.
    z_min : ndarray [K]
        Smallest per-step z-score of the loss increase (perturbed minus optimal, per-draw paired, over
        ``n_mc`` draws) over the ``T`` steps: negative values would mean a perturbation lowers the loss.
    z_all : ndarray [K]
        z-score of the loss increase averaged over the steps.
    n_mc : int
        Monte Carlo draws per step.
    """

    jac_err: float
    taus: np.ndarray
    z_min: np.ndarray
    z_all: np.ndarray
    n_mc: int


def optimality_check(*, n_train: int = 8, dim: int = 3, n_points: int = 4, steps=(10, 90, 199),
                     taus=(0.8, 1.25), n_mc: int = 6000, schedule=None, data_seed: int = 1,
                     seed: int = 2) -> Optimality:
    """Check the propositions on the closed-form denoiser numerically.

    The Jacobian of the closed form (the weighted covariance) is compared with autograd at ``n_points``
    test points ``0.6 * N(0, I)`` and the given ``steps``; then the denoising loss of the closed form with
    its softmax temperature multiplied by each ``tau`` is compared with the optimum, on identical Monte
    Carlo draws at every step.

    Parameters
    ----------
    n_train, dim : int
        Training set: ``n_train >= 2`` standard Gaussian points in ``R^dim``, drawn with ``data_seed``.
    n_points : int
        Test points of the Jacobian check (drawn with ``seed``).
    steps : sequence of int
        Steps of the Jacobian check, in ``[0, T-1]``.
    taus : sequence of float
        Temperature factors, > 0 (1 is the optimum itself).
    n_mc : int
        Monte Carlo draws of the loss per step (drawn with ``seed + 1``), >= 2.
    schedule : Schedule, optional
    data_seed, seed : int

    Returns
    -------
    Optimality
    """
    data_seed = check_seed(data_seed, "data_seed")
    seed = check_seed(seed, "seed")
    sch = schedule_or_paper(schedule)
    n_train = check_int("n_train", n_train, low=2)
    dim = check_int("dim", dim, low=1)
    n_points = check_int("n_points", n_points, low=1)
    steps = _ints("steps", steps, low=0, high=sch.n_steps - 1, increasing=False)
    if isinstance(taus, (str, bytes)) or not hasattr(taus, "__iter__") or len(taus) == 0:
        raise TypeError(f"taus: expected a non-empty sequence of positive numbers, got {taus!r}")
    taus = tuple(check_positive("taus", v) for v in taus)
    n_mc = check_int("n_mc", n_mc, low=2)
    x = _gaussian(n_train, dim, check_seed(data_seed, "data_seed"))
    den = MemorizedDenoiser(x, sch)
    xt = _gaussian(n_points, dim, check_seed(seed, "seed"), 0.6)
    jac_err = 0.0
    for t in steps:
        J = den.jacobian(xt, t)
        for b in range(n_points):
            ref = torch.autograd.functional.jacobian(lambda z: den.denoise(z[None], t)[0], xt[b])
            jac_err = max(jac_err, float((J[b] - ref).abs().max()))
    e_opt = denoising_loss(den, x, sch, n=n_mc, generator=generator(seed + 1), reduction="none")  # [T, n]
    z_min, z_all = [], []
    for tau in taus:
        diff = denoising_loss(_Tempered(den, tau), x, sch, n=n_mc, generator=generator(seed + 1),
                              reduction="none") - e_opt
        z_min.append(float((diff.mean(1) / (diff.std(1) / math.sqrt(n_mc) + 1e-300)).min()))
        z_all.append(float(diff.mean() / (diff.mean(0).std() / math.sqrt(n_mc))))
    out = Optimality(jac_err=jac_err, taus=np.array(taus), z_min=np.array(z_min), z_all=np.array(z_all), n_mc=n_mc)
    _readonly(out.taus, out.z_min, out.z_all)
    return out


# ---------------------------------------------------------------------------------------- landing
@dataclass(frozen=True)
class Landing:
    """DDIM samples of the closed-form denoiser in the plane (:func:`landing_2d`).

    Attributes
    ----------
    x_train : ndarray [N, 2]
        Training points (normalized units).
    samples : ndarray [B, 2]
        DDIM samples.
    paths : ndarray [T + 1, P, 2]
        Iterates of the first ``P`` samples at each step, noisiest first, then the sample itself.
    max_d1 : float
        Largest distance from a sample to its nearest training point.
    min_separation : float
        Smallest distance between two training points.
    """

    x_train: np.ndarray
    samples: np.ndarray
    paths: np.ndarray
    max_d1: float
    min_separation: float


def landing_2d(*, n_train: int = 12, scale: float = 1.5, n_samples: int = 400, n_paths: int = 25,
               schedule=None, seed: int = 5) -> Landing:
    """Sample the closed-form denoiser of a 2-D training set with DDIM.

    Parameters
    ----------
    n_train : int
        Training points, ``scale * N(0, I_2)`` drawn with ``seed`` (>= 2).
    scale : float
        Standard deviation of the training points (normalized units, > 0).
    n_samples : int
        DDIM samples (drawn with ``seed``), >= 1.
    n_paths : int
        Paths kept for the figure, in ``[1, n_samples]``.
    schedule : Schedule, optional
    seed : int

    Returns
    -------
    Landing
    """
    seed = check_seed(seed, "seed")
    sch = schedule_or_paper(schedule)
    n_train = check_int("n_train", n_train, low=2)
    scale = check_positive("scale", scale)
    n_samples = check_int("n_samples", n_samples, low=1)
    n_paths = check_int("n_paths", n_paths, low=1, high=n_samples)
    x = _gaussian(n_train, 2, check_seed(seed, "seed"), scale)
    den = MemorizedDenoiser(x, sch)
    s, traj = ddim_sample(den, sch, n_samples, generator=generator(seed), return_trajectory=True)
    d1 = metrics.nearest(s, x).distance
    sep = float((torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist") + 1e9 * torch.eye(n_train)).min())
    paths = torch.cat([traj["x"][:, :n_paths], s[None, :n_paths]]).numpy()
    out = Landing(x_train=x.numpy(), samples=s.numpy(), paths=paths, max_d1=float(d1.max()), min_separation=sep)
    _readonly(out.x_train, out.samples, out.paths)
    return out


# ------------------------------------------------------------------------------------ frequencies
@dataclass(frozen=True)
class Frequencies:
    """How often DDIM with the closed form returns each training point (:func:`frequency_test`).

    Attributes
    ----------
    x_train : ndarray [N, d]
        Training points.
    inits : tuple of str
        The sampler initializations, ``"marginal"`` and/or ``"standard"``.
    counts : ndarray [len(inits), N], int
        Number of samples whose nearest training point is ``n``.
    p_values : ndarray [len(inits)]
        Chi-square test of uniform counts.
    max_d1 : float
        Largest distance from any sample to its nearest training point.
    n_samples : int
        Samples per initialization.
    """

    x_train: np.ndarray
    inits: tuple
    counts: np.ndarray
    p_values: np.ndarray
    max_d1: float
    n_samples: int

    def p_value(self, init: str) -> float:
        """The chi-square p-value of ``init``."""
        return float(self.p_values[self.inits.index(init)])


def frequency_test(*, n_train: int = 10, dim: int = 32, n_samples: int = 2000, inits=("marginal", "standard"),
                   schedule=None, data_seed: int = 6, seed: int = 7) -> Frequencies:
    """Count how often each training point is returned, and test the counts for uniformity.

    Parameters
    ----------
    n_train, dim : int
        Training set: ``n_train >= 2`` standard Gaussian points in ``R^dim``, drawn with ``data_seed``.
    n_samples : int
        DDIM samples per initialization (each drawn with ``seed``), >= 1.
    inits : sequence of {"marginal", "standard"}
        Starting laws of the sampler (see :func:`memprior.diffusion.ddim_sample`).
    schedule : Schedule, optional
    data_seed, seed : int

    Returns
    -------
    Frequencies
    """
    data_seed = check_seed(data_seed, "data_seed")
    seed = check_seed(seed, "seed")
    sch = schedule_or_paper(schedule)
    n_train = check_int("n_train", n_train, low=2)
    dim = check_int("dim", dim, low=1)
    n_samples = check_int("n_samples", n_samples, low=1)
    if isinstance(inits, str) or len(inits) == 0 or any(i not in ("marginal", "standard") for i in inits):
        raise ValueError(f"inits: expected a non-empty sequence of 'marginal' and 'standard', got {inits!r}")
    x = _gaussian(n_train, dim, check_seed(data_seed, "data_seed"))
    seed = check_seed(seed, "seed")
    den = MemorizedDenoiser(x, sch)
    counts, pvals, max_d1 = [], [], 0.0
    for init in inits:
        s = ddim_sample(den, sch, n_samples, generator=generator(seed), init=init)
        d1, idx = metrics.nearest(s, x)
        max_d1 = max(max_d1, float(d1.max()))
        c = torch.bincount(idx, minlength=n_train).numpy()
        counts.append(c)
        pvals.append(float(stats.chisquare(c).pvalue))
    out = Frequencies(x_train=x.numpy(), inits=tuple(inits), counts=np.stack(counts), p_values=np.array(pvals),
                      max_d1=max_d1, n_samples=n_samples)
    _readonly(out.x_train, out.counts, out.p_values)
    return out


# ------------------------------------------------------------------------------------- commitment
@dataclass(frozen=True)
class Commitment:
    """Commitment steps of closed-form DDIM paths (:func:`commitment_sweep`).

    Attributes
    ----------
    dims, ns : ndarray [D], [M], int
        Dimensions and training-set sizes.
    median, lo, hi : ndarray [M, D]
        Median, 10 % and 90 % quantiles of the commitment step ``t*`` over the paths (step index;
        ``T-1``: committed from the start).
    n_steps : int
        ``T``.
    n_paths : int
        Paths per setting.
    """

    dims: np.ndarray
    ns: np.ndarray
    median: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n_steps: int
    n_paths: int

    def median_at(self, n: int, d: int) -> float:
        """Median commitment step for ``N = n`` training points in dimension ``d``."""
        return float(self.median[list(self.ns).index(n), list(self.dims).index(d)])


def commitment_sweep(*, dims=(2, 8, 32, 128), ns=(10, 100, 1000), n_paths: int = 64, threshold: float = 0.9,
                     schedule=None, data_seed: int = 0, seed: int = 8) -> Commitment:
    """Commitment step of DDIM paths of the closed-form denoiser, against ``d`` and ``N``.

    A path commits at step ``t*`` when, from ``t*`` on, the weight of the training point it lands on stays
    above ``threshold`` (:func:`memprior.diffusion.commitment_step`).

    Parameters
    ----------
    dims, ns : sequence of int
        Dimensions (>= 1) and training-set sizes (>= 2), increasing. The training set of ``(N, d)`` is
        ``N`` standard Gaussian points drawn with seed ``data_seed + 10 N + d``.
    n_paths : int
        DDIM paths per setting (drawn with ``seed``), >= 1.
    threshold : float in (0, 1]
    schedule : Schedule, optional
    data_seed, seed : int

    Returns
    -------
    Commitment
    """
    data_seed = check_seed(data_seed, "data_seed")
    seed = check_seed(seed, "seed")
    sch = schedule_or_paper(schedule)
    dims = _ints("dims", dims, low=1)
    ns = _ints("ns", ns, low=2)
    n_paths = check_int("n_paths", n_paths, low=1)
    threshold = check_positive("threshold", threshold, upper=1.0)
    data_seed, seed = check_seed(data_seed, "data_seed"), check_seed(seed, "seed")
    med = np.zeros((len(ns), len(dims)))
    lo, hi = np.zeros_like(med), np.zeros_like(med)
    for i, n in enumerate(ns):
        for j, d in enumerate(dims):
            den = MemorizedDenoiser(_gaussian(n, d, data_seed + 10 * n + d), sch)
            _, tr = ddim_sample(den, sch, n_paths, generator=generator(seed), return_trajectory=True)
            c = commitment_step(den, tr, threshold=threshold).double()
            med[i, j], lo[i, j], hi[i, j] = (float(c.quantile(q)) for q in (0.5, 0.1, 0.9))
    out = Commitment(dims=np.array(dims), ns=np.array(ns), median=med, lo=lo, hi=hi, n_steps=sch.n_steps,
                     n_paths=n_paths)
    _readonly(out.dims, out.ns, out.median, out.lo, out.hi)
    return out


# ------------------------------------------------------------------------------- trained networks
def _train_set(n: int, dim: int, data_seed: int) -> torch.Tensor:
    return _gaussian(n, dim, data_seed + n)


def _train(x: torch.Tensor, sch: Schedule, n: int, snapshots: tuple, seed: int):
    return train_denoiser(x, sch, steps=snapshots[-1], seed=seed + n, snapshot_steps=snapshots, **MLP_SETTINGS)


@dataclass(frozen=True)
class MLPGap:
    """A trained MLP against the closed-form denoiser on the same training set (:func:`mlp_gap`).

    Attributes
    ----------
    x_train : ndarray [N, d]
        Training points.
    ts : ndarray [S], int
        Steps at which the losses are estimated.
    eps_mem, eps_mlp : ndarray [S]
        Noise-prediction error ``E||eps_hat - eps||^2`` of the closed form and of the network.
    x0_mem, x0_mlp : ndarray [S]
        Denoising error ``E||x0_hat - x0||^2`` (normalized units squared).
    excess : ndarray [S]
        ``x0_mlp - x0_mem``, the network's excess denoising error over the optimum.
    excess_mid : float
        Median excess over the intermediate steps ``20 < t < 150``.
    excess_end : float
        Excess at the noisiest step ``t_end = ts[-1]``.
    t_end : int
    inv_snr_end : float
        ``1 / SNR`` at ``t_end``: the factor that turns a noise error into a denoising error.
    loss_history : ndarray [L]
        The network's mean training loss per logging window.
    samples : ndarray [B, d]
        DDIM samples of the network.
    median_d1 : float
        Median distance from a sample to its nearest training point.
    """

    x_train: np.ndarray
    ts: np.ndarray
    eps_mem: np.ndarray
    eps_mlp: np.ndarray
    x0_mem: np.ndarray
    x0_mlp: np.ndarray
    excess: np.ndarray
    excess_mid: float
    excess_end: float
    t_end: int
    inv_snr_end: float
    loss_history: np.ndarray
    samples: np.ndarray
    median_d1: float


def mlp_gap(*, n_train: int = 5, dim: int = 2, snapshots=(300, 1000, 3000), t_stride: int = 4, n_mc: int = 4000,
            n_samples: int = 600, schedule=None, data_seed: int = 100, seed: int = 0, mc_seed: int = 11,
            sample_seed: int = 12) -> MLPGap:
    """Train a small MLP denoiser and compare it with the closed form, step by step.

    The network (three residual layers of width 64, minibatches of 64, Adam with learning rate 3e-3,
    EMA of the weights) is trained for ``snapshots[-1]`` steps with seed ``seed + n_train`` on
    ``n_train`` standard Gaussian points drawn with seed ``data_seed + n_train``; the weights are cached.

    Parameters
    ----------
    n_train, dim : int
        Training-set size (>= 2) and dimension (>= 1).
    snapshots : sequence of int
        Training lengths kept as snapshots (increasing; the last is the training length). They are part
        of the cache key: the same values as :func:`memorization_sweep` reuse its networks.
    t_stride : int
        The losses are estimated at ``t = 0, t_stride, 2 t_stride, ...`` (>= 1).
    n_mc : int
        Monte Carlo draws per step, the same for both denoisers (drawn with ``mc_seed``).
    n_samples : int
        DDIM samples of the network (drawn with ``sample_seed``).
    schedule : Schedule, optional
    data_seed, seed, mc_seed, sample_seed : int

    Returns
    -------
    MLPGap
    """
    data_seed = check_seed(data_seed, "data_seed")
    seed = check_seed(seed, "seed")
    mc_seed = check_seed(mc_seed, "mc_seed")
    sample_seed = check_seed(sample_seed, "sample_seed")
    sch = schedule_or_paper(schedule)
    n_train = check_int("n_train", n_train, low=2)
    dim = check_int("dim", dim, low=1)
    snapshots = _ints("snapshots", snapshots, low=1)
    t_stride = check_int("t_stride", t_stride, low=1, high=sch.n_steps - 1)
    n_mc = check_int("n_mc", n_mc, low=1)
    n_samples = check_int("n_samples", n_samples, low=1)
    data_seed, seed = check_seed(data_seed, "data_seed"), check_seed(seed, "seed")
    mc_seed, sample_seed = check_seed(mc_seed, "mc_seed"), check_seed(sample_seed, "sample_seed")
    x = _train_set(n_train, dim, data_seed)
    net = _train(x, sch, n_train, snapshots, seed)
    mem = MemorizedDenoiser(x, sch)
    ts = np.arange(0, sch.n_steps, t_stride)
    loss = {(name, tgt): denoising_loss(den, x, sch, t=ts, n=n_mc, generator=generator(mc_seed), target=tgt).numpy()
            for name, den in (("mem", mem), ("mlp", net)) for tgt in ("x0", "eps")}
    excess = loss["mlp", "x0"] - loss["mem", "x0"]
    mid = (ts > 20) & (ts < 150)
    t_end = int(ts[-1])
    samples = ddim_sample(net, sch, n_samples, generator=generator(sample_seed)).double()
    d1 = metrics.nearest(samples, x).distance
    out = MLPGap(x_train=x.numpy(), ts=ts, eps_mem=loss["mem", "eps"], eps_mlp=loss["mlp", "eps"],
                 x0_mem=loss["mem", "x0"], x0_mlp=loss["mlp", "x0"], excess=excess,
                 excess_mid=float(np.median(excess[mid])) if mid.any() else float("nan"),
                 excess_end=float(excess[-1]), t_end=t_end, inv_snr_end=float(1 / sch.snr()[t_end]),
                 loss_history=np.array(net.history["loss"]), samples=samples.numpy(), median_d1=float(d1.median()))
    _readonly(out.x_train, out.ts, out.eps_mem, out.eps_mlp, out.x0_mem, out.x0_mlp, out.excess, out.loss_history,
              out.samples)
    return out


@dataclass(frozen=True)
class MemorizationSweep:
    """Memorization of trained MLPs against training length and set size (:func:`memorization_sweep`).

    Attributes
    ----------
    ns : ndarray [M], int
        Training-set sizes.
    snapshots : ndarray [S], int
        Training lengths (optimizer steps).
    rules : tuple of str
        The two rules, ``r < 0.7`` (the paper's) and ``d1/d2 < 1/3``.
    frac, se : ndarray [2, M, S]
        Fraction of the samples flagged by each rule, and its binomial standard error.
    null : ndarray [2, M]
        Fraction of the fresh draws flagged by each rule.
    median_d1 : ndarray [M, S]
        Median distance from a sample to its nearest training point (normalized units).
    null_median_d1 : ndarray [M]
        The same for the fresh draws.
    loss_start, loss_end : ndarray [M]
        Mean of the first and of the last five logged training losses of each network.
    n_samples, n_fresh : int
        Samples per network, fresh draws per training set.
    """

    ns: np.ndarray
    snapshots: np.ndarray
    rules: tuple
    frac: np.ndarray
    se: np.ndarray
    null: np.ndarray
    median_d1: np.ndarray
    null_median_d1: np.ndarray
    loss_start: np.ndarray
    loss_end: np.ndarray
    n_samples: int
    n_fresh: int

    def flagged(self, n: int, steps: int | None = None, rule: int = 1) -> float:
        """Fraction flagged by rule ``rule`` (0: ``r < 0.7``, 1: ``d1/d2 < 1/3``) for ``N = n`` after
        ``steps`` training steps (default: the longest)."""
        j = -1 if steps is None else list(self.snapshots).index(steps)
        return float(self.frac[rule, list(self.ns).index(n), j])

    def null_flagged(self, n: int, rule: int = 1) -> float:
        """Fraction of the fresh draws flagged by rule ``rule`` against the training set of size ``n``."""
        return float(self.null[rule, list(self.ns).index(n)])


def memorization_sweep(*, ns=(5, 20, 80), dim: int = 2, snapshots=(300, 1000, 3000), n_samples: int = 600,
                       n_fresh: int = 1000, schedule=None, data_seed: int = 100, seed: int = 0,
                       fresh_seed: int = 13, sample_seed: int = 14) -> MemorizationSweep:
    """Score the samples of trained MLPs with both memorization rules, next to their null.

    One network per ``N`` in ``ns``, trained as in :func:`mlp_gap` (cached), with snapshots after each
    length in ``snapshots``; each snapshot draws ``n_samples`` DDIM samples (with ``sample_seed``). The null
    is ``n_fresh`` fresh standard Gaussian draws (with ``fresh_seed``) scored against the same training set.

    Parameters
    ----------
    ns : sequence of int
        Training-set sizes, increasing, >= 2.
    dim : int
    snapshots : sequence of int
        Training lengths, increasing.
    n_samples, n_fresh : int
    schedule : Schedule, optional
    data_seed, seed, fresh_seed, sample_seed : int

    Returns
    -------
    MemorizationSweep
    """
    data_seed = check_seed(data_seed, "data_seed")
    seed = check_seed(seed, "seed")
    fresh_seed = check_seed(fresh_seed, "fresh_seed")
    sample_seed = check_seed(sample_seed, "sample_seed")
    sch = schedule_or_paper(schedule)
    ns = _ints("ns", ns, low=2)
    dim = check_int("dim", dim, low=1)
    snapshots = _ints("snapshots", snapshots, low=1)
    n_samples = check_int("n_samples", n_samples, low=1)
    n_fresh = check_int("n_fresh", n_fresh, low=1)
    data_seed, seed = check_seed(data_seed, "data_seed"), check_seed(seed, "seed")
    fresh_seed, sample_seed = check_seed(fresh_seed, "fresh_seed"), check_seed(sample_seed, "sample_seed")
    fresh = _gaussian(n_fresh, dim, fresh_seed)
    frac = np.zeros((2, len(ns), len(snapshots)))
    se, med = np.zeros_like(frac), np.zeros((len(ns), len(snapshots)))
    null, null_d1 = np.zeros((2, len(ns))), np.zeros(len(ns))
    loss_start, loss_end = np.zeros(len(ns)), np.zeros(len(ns))
    for i, n in enumerate(ns):
        x = _train_set(n, dim, data_seed)
        net = _train(x, sch, n, snapshots, seed)
        loss_start[i], loss_end[i] = np.mean(net.history["loss"][:5]), np.mean(net.history["loss"][-5:])
        null[0, i] = metrics.memorized_fraction(metrics.null_baseline(fresh, x), THRESHOLDS[0])[0]
        null[1, i] = metrics.memorized_fraction(metrics.null_baseline(fresh, x, metric="d1_d2"), THRESHOLDS[1])[0]
        null_d1[i] = float(metrics.nearest(fresh, x).distance.median())
        for j, st in enumerate(snapshots):
            y = ddim_sample(net.snapshots[st], sch, n_samples, generator=generator(sample_seed)).double()
            frac[0, i, j], se[0, i, j] = metrics.memorized_fraction(metrics.nn_ratio(y, x), THRESHOLDS[0])
            frac[1, i, j], se[1, i, j] = metrics.memorized_fraction(metrics.d1_d2(y, x), THRESHOLDS[1])
            med[i, j] = float(metrics.nearest(y, x).distance.median())
    out = MemorizationSweep(ns=np.array(ns), snapshots=np.array(snapshots), rules=RULES, frac=frac, se=se, null=null,
                            median_d1=med, null_median_d1=null_d1, loss_start=loss_start, loss_end=loss_end,
                            n_samples=n_samples, n_fresh=n_fresh)
    _readonly(out.ns, out.snapshots, out.frac, out.se, out.null, out.median_d1, out.null_median_d1,
              out.loss_start, out.loss_end)
    return out


# ----------------------------------------------------------------------------------- null vs. dim
@dataclass(frozen=True)
class NullVsDimension:
    """The null of both memorization rules against the dimension (:func:`null_vs_dimension`).

    Attributes
    ----------
    dims, ns : ndarray [D], [M], int
        Dimensions and training-set sizes.
    frac_r, frac_q : ndarray [M, D]
        Fraction of the fresh draws flagged by ``r < 0.7`` and by ``d1/d2 < 1/3``.
    n_fresh : int
        Fresh draws per setting.
    """

    dims: np.ndarray
    ns: np.ndarray
    frac_r: np.ndarray
    frac_q: np.ndarray
    n_fresh: int

    def at(self, n: int, d: int) -> tuple[float, float]:
        """``(frac_r, frac_q)`` for ``N = n`` in dimension ``d``."""
        i, j = list(self.ns).index(n), list(self.dims).index(d)
        return float(self.frac_r[i, j]), float(self.frac_q[i, j])


def null_vs_dimension(*, dims=(1, 2, 4, 8, 16, 32, 64, 100), ns=(50, 1000), n_fresh: int = 1000,
                      seed: int = 0) -> NullVsDimension:
    """Fraction of fresh standard Gaussian draws flagged by each rule, against the dimension.

    For each ``(N, d)`` one generator, seeded ``seed + 1000 N + d``, draws the ``N`` training points and
    then the ``n_fresh`` fresh points, all standard Gaussian in ``R^d``.

    Parameters
    ----------
    dims : sequence of int
        Dimensions, increasing, >= 1.
    ns : sequence of int
        Training-set sizes, increasing, >= 2.
    n_fresh : int
    seed : int

    Returns
    -------
    NullVsDimension
    """
    seed = check_seed(seed, "seed")
    dims = _ints("dims", dims, low=1)
    ns = _ints("ns", ns, low=2)
    n_fresh = check_int("n_fresh", n_fresh, low=1)
    seed = check_seed(seed, "seed")
    fr, fq = np.zeros((len(ns), len(dims))), np.zeros((len(ns), len(dims)))
    for i, n in enumerate(ns):
        for j, d in enumerate(dims):
            fr[i, j], fq[i, j] = _flagged(*_isotropic_draws(n, d, n_fresh, seed))
    out = NullVsDimension(dims=np.array(dims), ns=np.array(ns), frac_r=fr, frac_q=fq, n_fresh=n_fresh)
    _readonly(out.dims, out.ns, out.frac_r, out.frac_q)
    return out


def _isotropic_draws(n: int, d: int, n_fresh: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fresh [n_fresh, d], train [n, d])`` standard Gaussian draws of one generator seeded ``seed + 1000 n + d``
    (training points first)."""
    g = generator(seed + 1000 * n + d)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return torch.randn(n_fresh, d, generator=g, dtype=torch.float64), x


def _flagged(fresh: torch.Tensor, train: torch.Tensor) -> tuple[float, float]:
    """Fractions of ``fresh`` flagged by ``r < 0.7`` and by ``d1/d2 < 1/3`` against ``train``."""
    return (metrics.memorized_fraction(metrics.null_baseline(fresh, train), THRESHOLDS[0])[0],
            metrics.memorized_fraction(metrics.null_baseline(fresh, train, metric="d1_d2"), THRESHOLDS[1])[0])


# ------------------------------------------------------------------------------- null in KL space
@dataclass(frozen=True)
class NullKL:
    """The null of both memorization rules for the paper's random-field prior in KL coefficients (:func:`null_kl`).

    Attributes
    ----------
    spaces : tuple of str
        The rows: ``"raw"``, fresh random-field models against training models in raw KL coefficients (where
        the paper measures distances); ``"z-scored"``, the same after z-scoring every coefficient with the
        training set's mean and standard deviation; ``"gaussian"``, Gaussian coefficients with the raw
        coefficients' mean and covariance (their correlations without the rest of their shape);
        ``"diagonal"``, independent Gaussian coefficients with the raw coefficients' variances (their spread
        without their correlations); ``"isotropic"``, standard Gaussian points (the draws of
        :func:`null_vs_dimension` in the same dimension).
    ns : ndarray [M], int
        Training-set sizes; the sets are nested (the first N models of one pool, as in chapter 7).
    d : int
        Number of KL coefficients.
    frac_r, frac_q : ndarray [5, M]
        Fraction of the fresh draws flagged by ``r < 0.7`` and by ``d1/d2 < 1/3``.
    effective_dim : ndarray [5]
        Participation ratio ``(sum l)^2 / sum l^2`` of the eigenvalues ``l`` of each row's covariance (estimated
        from the largest training set; ``d`` for ``"isotropic"``): the number of directions the cloud really
        spreads in.
    std_range : tuple of float
        Smallest and largest standard deviation of a raw coefficient over the largest training set.
    n_fresh, grid : int
        Fresh draws per setting; grid points per side of the random fields.
    """

    spaces: tuple
    ns: np.ndarray
    d: int
    frac_r: np.ndarray
    frac_q: np.ndarray
    effective_dim: np.ndarray
    std_range: tuple
    n_fresh: int
    grid: int

    def at(self, space: str, n: int) -> tuple[float, float]:
        """``(frac_r, frac_q)`` in row ``space`` for ``N = n``."""
        if space not in self.spaces:
            raise ValueError(f"space: must be one of {list(self.spaces)}, got {space!r}")
        if n not in self.ns:
            raise ValueError(f"n: must be one of the training-set sizes {self.ns.tolist()}, got {n!r}")
        i, j = self.spaces.index(space), list(self.ns).index(n)
        return float(self.frac_r[i, j]), float(self.frac_q[i, j])


def _participation(cov: torch.Tensor) -> float:
    ev = torch.linalg.eigvalsh(cov).clamp(min=0)
    return float(ev.sum() ** 2 / (ev ** 2).sum())


def null_kl(*, ns=(50, 200, 1000), n_fresh: int = 1000, grid: int = 32, K: int = 10, seed: int = 0,
            fresh_seed: int = 10_000) -> NullKL:
    """Fraction of fresh draws flagged by each rule, for the paper's prior in ``d = K^2`` KL coefficients.

    The training sets are the first ``N`` of ``max(ns)`` random-field models
    (:func:`memprior.fwi.random_field_models`, seed ``seed``) on a ``grid x grid`` grid with the paper's
    basis; the fresh draws are ``n_fresh`` further models (seed ``fresh_seed``). The defaults are chapter 7's
    (32^2 grid, K = 10, pool seed 0, fresh seed 10000). The mean, covariance and variances of the Gaussian
    rows are those of the largest training set; for each ``N`` the ``"gaussian"`` and ``"diagonal"`` rows draw
    from generators seeded ``seed + 1000 N + d + 2`` and ``+ 1``; the ``"isotropic"`` row is
    :func:`null_vs_dimension`'s.

    Parameters
    ----------
    ns : sequence of int
        Training-set sizes, increasing, >= 3 (z-scoring needs a spread).
    n_fresh : int
        >= 1.
    grid : int
        Grid points per side, >= K + 1.
    K : int
        Modes per direction, >= 1 (``d = K^2``).
    seed, fresh_seed : int
        Seeds of the training pool and of the fresh models; they must differ.

    Returns
    -------
    NullKL
    """
    seed = check_seed(seed, "seed")
    fresh_seed = check_seed(fresh_seed, "fresh_seed")
    ns = _ints("ns", ns, low=3)
    n_fresh = check_int("n_fresh", n_fresh, low=1)
    K = check_int("K", K, low=1)
    grid = check_int("grid", grid, low=K + 1)
    seed, fresh_seed = check_seed(seed, "seed"), check_seed(fresh_seed, "fresh_seed")
    if seed == fresh_seed:
        raise ValueError(f"fresh_seed: must differ from the training pool's seed {seed}")
    basis = KLBasis(grid, grid, K=K)
    d = basis.d
    pool = random_field_models(basis, ns[-1], seed)[0]
    fresh = random_field_models(basis, n_fresh, fresh_seed)[0]
    cov, sd = torch.cov(pool.T), pool.std(0)
    chol = torch.linalg.cholesky(cov)

    def gaussian(n, shift, factor):  # [n_fresh, d] fresh and [n, d] training draws of pool.mean + factor @ eps
        g = generator(seed + 1000 * n + d + shift)
        x = torch.randn(n, d, generator=g, dtype=torch.float64) @ factor.T
        return pool.mean(0) + torch.randn(n_fresh, d, generator=g, dtype=torch.float64) @ factor.T, pool.mean(0) + x

    spaces = ("raw", "z-scored", "gaussian", "diagonal", "isotropic")
    fr, fq = np.zeros((len(spaces), len(ns))), np.zeros((len(spaces), len(ns)))
    for j, n in enumerate(ns):
        z = pool[:n]
        u, mu, s = zscore(z)
        rows = ((fresh, z), ((fresh - mu) / s, u), gaussian(n, 2, chol), gaussian(n, 1, torch.diag(sd)),
                _isotropic_draws(n, d, n_fresh, seed))
        for i, (f, x) in enumerate(rows):
            fr[i, j], fq[i, j] = _flagged(f, x)
    eff = np.array([_participation(cov), _participation(torch.corrcoef(pool.T)), _participation(cov),
                    _participation(torch.diag(sd ** 2)), float(d)])
    out = NullKL(spaces=spaces, ns=np.array(ns), d=d, frac_r=fr, frac_q=fq, effective_dim=eff,
                 std_range=(float(sd.min()), float(sd.max())), n_fresh=n_fresh, grid=grid)
    _readonly(out.ns, out.frac_r, out.frac_q, out.effective_dim)
    return out
