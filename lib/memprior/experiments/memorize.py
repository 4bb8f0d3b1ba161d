"""Chapter 1, "Maximum likelihood memorizes": what the chapter computes.

Three experiments on the 1-D two-bump density of :func:`memprior.mle.reference_density`, all drawn
from one pool of training examples (nested training sets ``pool[:N]``) and one held-out sample:

* :func:`bandwidth_study`: the training, held-out and leave-one-out log-likelihood of the kernel
  density of ``N`` examples against its bandwidth, the two closed-form bounds that squeeze the
  training curve, and the held-out and leave-one-out optima;
* :func:`sample_size_sweep`: the same curves and the held-out optimum for a sequence of
  training-set sizes ``N``, with the excess held-out loss at the optimum;
* :func:`flexible_study`: a flexible Gaussian mixture (learnable means, weights and one shared
  width) trained by gradient ascent on the training log-likelihood, with the quantities that show
  its collapse onto the empirical measure.

All log-likelihoods are means per example, in nats; bandwidths and widths are in the units of
``x`` (dimensionless).  Every result is a frozen dataclass of numpy arrays and numbers, reproducible
from its seeds.  The numerics live in :mod:`memprior.mle` and :mod:`memprior.mixture`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .. import mle
from .._checks import check_int, check_positive, check_seed

__all__ = [
    "Data",
    "sample_data",
    "BandwidthStudy",
    "bandwidth_study",
    "SampleSizeSweep",
    "sample_size_sweep",
    "FlexibleStudy",
    "flexible_study",
]


# ----------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Data:
    """Training pool and held-out draws from the reference density.

    Attributes
    ----------
    pool : numpy.ndarray ``[P, 1]``
        Training examples; the training set of size ``N`` is ``pool[:N]`` (nested sets).
    x_test : numpy.ndarray ``[M, 1]``
        Held-out draws, independent of the pool.
    ref_score : float
        Mean log-density of ``x_test`` under the true density (nats per example), a Monte Carlo
        estimate of ``-H(p)``: the held-out score no model beats on average.
    pool_seed, test_seed : int
        Seeds of the two ``torch.Generator`` draws.
    """

    pool: np.ndarray
    x_test: np.ndarray
    ref_score: float
    pool_seed: int
    test_seed: int


def sample_data(*, n_pool: int = 400, n_test: int = 2000, pool_seed: int = 0, test_seed: int = 1) -> Data:
    """Draw the chapter's training pool and held-out sample from the reference density.

    Parameters
    ----------
    n_pool : int
        Size of the training pool, >= 1.
    n_test : int
        Number of held-out draws, >= 1.
    pool_seed, test_seed : int
        Seeds (>= 0) of the ``torch.Generator`` used for each draw.

    Returns
    -------
    Data
    """
    pool_seed = check_seed(pool_seed, "pool_seed")
    test_seed = check_seed(test_seed, "test_seed")
    n_pool = check_int("n_pool", n_pool, low=1)
    n_test = check_int("n_test", n_test, low=1)
    pool_seed = check_seed(pool_seed, "pool_seed")
    test_seed = check_seed(test_seed, "test_seed")
    ref = mle.reference_density()
    pool = ref.sample(n_pool, generator=torch.Generator().manual_seed(pool_seed))
    x_test = ref.sample(n_test, generator=torch.Generator().manual_seed(test_seed))
    return Data(pool=pool.numpy(), x_test=x_test.numpy(), ref_score=float(ref.log_prob(x_test).mean()),
                pool_seed=pool_seed, test_seed=test_seed)


def _sigma_grid(sigma_min, sigma_max, n_sigmas) -> np.ndarray:
    lo = check_positive("sigma_min", sigma_min, square=True)
    hi = check_positive("sigma_max", sigma_max, square=True)
    if not lo < hi:
        raise ValueError(f"sigma_min, sigma_max: need 0 < sigma_min < sigma_max, got ({lo}, {hi})")
    n_sigmas = check_int("n_sigmas", n_sigmas, low=3)
    return np.geomspace(lo, hi, n_sigmas)


def _check_n(name: str, n, n_pool, low: int) -> int:
    """A training-set size in ``[low, n_pool]`` (the training set is ``pool[:n]``)."""
    n_pool = check_int("n_pool", n_pool, low=low)
    return check_int(name, n, low=low, high=n_pool)


# ----------------------------------------------------------------------------- bandwidth

@dataclass(frozen=True)
class BandwidthStudy:
    """Log-likelihood of the kernel density of ``N`` examples against its bandwidth.

    Attributes
    ----------
    n : int
        Training-set size ``N``.
    x_train : numpy.ndarray ``[N, 1]``
        The training examples, ``pool[:N]``.
    pool : numpy.ndarray ``[P, 1]``
        The training pool.
    x_test : numpy.ndarray ``[M, 1]``
        The held-out draws.
    sigmas : numpy.ndarray ``[S]``
        Bandwidths (units of x), increasing, log-spaced.
    train, heldout, loo : numpy.ndarray ``[S]``
        Mean training, held-out and leave-one-out log-likelihood (nats per example).
    lower, upper : numpy.ndarray ``[S]``
        The bounds :math:`-\\log N - \\tfrac12\\log(2\\pi\\sigma^2)` and :math:`-\\tfrac12\\log(2\\pi\\sigma^2)`
        on the training curve (nats per example).
    sigma_star : float
        Held-out optimum of the bandwidth (grid search refined in ``log sigma``).
    sigma_loo : float
        Leave-one-out optimum of the bandwidth.
    test_at_star : float
        Held-out log-likelihood at ``sigma_star`` (nats per example).
    ref_score : float
        Held-out log-likelihood of the true density (nats per example).
    min_gap : float
        Smallest distance between two training examples (units of x).
    """

    n: int
    x_train: np.ndarray
    pool: np.ndarray
    x_test: np.ndarray
    sigmas: np.ndarray
    train: np.ndarray
    heldout: np.ndarray
    loo: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    sigma_star: float
    sigma_loo: float
    test_at_star: float
    ref_score: float
    min_gap: float

    @property
    def curve(self) -> mle.BandwidthCurve:
        """The curves as a :class:`memprior.mle.BandwidthCurve` (what the figure builders take)."""
        return mle.BandwidthCurve(sigmas=self.sigmas, train=self.train, heldout=self.heldout, loo=self.loo)


def bandwidth_study(*, n: int = 20, n_pool: int = 400, n_test: int = 2000, pool_seed: int = 0,
                    test_seed: int = 1, sigma_min: float = 1e-3, sigma_max: float = 5.0,
                    n_sigmas: int = 80) -> BandwidthStudy:
    """Training, held-out and leave-one-out curves of the kernel density of ``pool[:n]``.

    Parameters
    ----------
    n : int
        Training-set size, in ``[2, n_pool]`` (leave-one-out needs two examples).
    n_pool, n_test, pool_seed, test_seed : int
        The data, as in :func:`sample_data`.
    sigma_min, sigma_max : float
        Ends of the bandwidth grid, ``0 < sigma_min < sigma_max`` (units of x).
    n_sigmas : int
        Number of log-spaced bandwidths, >= 3.

    Returns
    -------
    BandwidthStudy
    """
    pool_seed = check_seed(pool_seed, "pool_seed")
    test_seed = check_seed(test_seed, "test_seed")
    n = _check_n("n", n, n_pool, low=2)
    data = sample_data(n_pool=n_pool, n_test=n_test, pool_seed=pool_seed, test_seed=test_seed)
    sigmas = _sigma_grid(sigma_min, sigma_max, n_sigmas)
    x_train = torch.as_tensor(data.pool[:n])
    x_test = torch.as_tensor(data.x_test)
    curve = mle.bandwidth_curve(x_train, sigmas, x_test)
    sigma_star = mle.heldout_optimum(x_train, x_test)
    return BandwidthStudy(
        n=n, x_train=data.pool[:n].copy(), pool=data.pool, x_test=data.x_test, sigmas=curve.sigmas,
        train=curve.train, heldout=curve.heldout, loo=curve.loo,
        lower=np.array([mle.self_term_bound(n, 1, s) for s in sigmas]),
        upper=np.array([mle.width_upper_bound(1, s) for s in sigmas]),
        sigma_star=float(sigma_star), sigma_loo=float(mle.loo_optimum(x_train)),
        test_at_star=float(mle.log_likelihood(x_train, x_test, sigma_star)), ref_score=data.ref_score,
        min_gap=float(torch.pdist(x_train).min()),
    )


# ----------------------------------------------------------------------------- sample size

@dataclass(frozen=True)
class SampleSizeSweep:
    """Training and held-out curves and the held-out optimum for several training-set sizes.

    Attributes
    ----------
    ns : numpy.ndarray ``[K]`` of int
        Training-set sizes (increasing); the training set of size ``N`` is ``pool[:N]``.
    sigmas : numpy.ndarray ``[S]``
        Bandwidths of the curves (units of x).
    train, heldout : numpy.ndarray ``[K, S]``
        Mean training and held-out log-likelihood (nats per example), one row per ``N``.
    sigma_star : numpy.ndarray ``[K]``
        Held-out optimum of the bandwidth for each ``N`` (units of x).
    excess : numpy.ndarray ``[K]``
        ``ref_score`` minus the held-out log-likelihood at ``sigma_star`` (nats per example), a
        Monte Carlo estimate of :math:`\\mathrm{KL}(p\\,\\|\\,p_{\\sigma^*})`.
    ref_score : float
        Held-out log-likelihood of the true density (nats per example).
    """

    ns: np.ndarray
    sigmas: np.ndarray
    train: np.ndarray
    heldout: np.ndarray
    sigma_star: np.ndarray
    excess: np.ndarray
    ref_score: float

    @property
    def curves(self) -> dict:
        """``{N: memprior.mle.BandwidthCurve}`` (what the figure builders take)."""
        return {int(k): mle.BandwidthCurve(sigmas=self.sigmas, train=self.train[i], heldout=self.heldout[i])
                for i, k in enumerate(self.ns)}

    @property
    def optima(self) -> dict:
        """``{N: held-out optimum}``."""
        return {int(k): float(s) for k, s in zip(self.ns, self.sigma_star)}


def sample_size_sweep(*, ns: Sequence[int] = (5, 10, 20, 50, 100, 200, 400), n_pool: int = 400,
                      n_test: int = 2000, pool_seed: int = 0, test_seed: int = 1, sigma_min: float = 1e-3,
                      sigma_max: float = 5.0, n_sigmas: int = 50, n_grid: int = 25) -> SampleSizeSweep:
    """How the curves and the held-out optimum move with the training-set size ``N``.

    Parameters
    ----------
    ns : sequence of int
        Strictly increasing training-set sizes, each in ``[1, n_pool]``.
    n_pool, n_test, pool_seed, test_seed : int
        The data, as in :func:`sample_data`.
    sigma_min, sigma_max : float
        Ends of the bandwidth grid of the curves, ``0 < sigma_min < sigma_max``.
    n_sigmas : int
        Number of log-spaced bandwidths of the curves, >= 3.
    n_grid : int
        Coarse grid of the held-out optimum search (:func:`memprior.mle.heldout_optimum`), >= 3.

    Returns
    -------
    SampleSizeSweep
    """
    pool_seed = check_seed(pool_seed, "pool_seed")
    test_seed = check_seed(test_seed, "test_seed")
    if isinstance(ns, (str, bytes)) or not hasattr(ns, "__len__") or len(ns) == 0:
        raise TypeError(f"ns: expected a non-empty sequence of integers, got {ns!r}")
    ns = [_check_n("ns[]", k, n_pool, low=1) for k in ns]
    if any(b <= a for a, b in zip(ns, ns[1:])):
        raise ValueError(f"ns: sizes must be strictly increasing, got {ns}")
    n_grid = check_int("n_grid", n_grid, low=3)
    data = sample_data(n_pool=n_pool, n_test=n_test, pool_seed=pool_seed, test_seed=test_seed)
    sigmas = _sigma_grid(sigma_min, sigma_max, n_sigmas)
    pool, x_test = torch.as_tensor(data.pool), torch.as_tensor(data.x_test)
    curves = [mle.bandwidth_curve(pool[:k], sigmas, x_test, loo=False) for k in ns]
    star = np.array([mle.heldout_optimum(pool[:k], x_test, n_grid=n_grid) for k in ns])
    excess = np.array([data.ref_score - mle.log_likelihood(pool[:k], x_test, s) for k, s in zip(ns, star)])
    return SampleSizeSweep(ns=np.array(ns, dtype=int), sigmas=sigmas, train=np.stack([c.train for c in curves]),
                           heldout=np.stack([c.heldout for c in curves]), sigma_star=star, excess=excess,
                           ref_score=data.ref_score)


# ----------------------------------------------------------------------------- flexible model

@dataclass(frozen=True)
class FlexibleStudy:
    """A flexible Gaussian mixture trained by maximum likelihood, and what its collapse looks like.

    The model is :math:`q(x)=\\sum_k\\pi_k\\mathcal N(x;\\mu_k,s^2)`, trained with Adam by
    :func:`memprior.mle.fit_flexible_mixture`.  The history is recorded every ``record_every`` steps
    (``R`` records, the last at the final step).

    Attributes
    ----------
    n, n_components : int
        Training-set size ``N`` and number of components ``K``.
    x_train : numpy.ndarray ``[N, 1]``
        The training examples, ``pool[:N]``.
    means : numpy.ndarray ``[K, 1]``; weights : numpy.ndarray ``[K]``; sigma : float
        The learned means, weights (sum to 1) and shared width ``s`` (units of x).
    step : numpy.ndarray ``[R]`` of int
        Adam steps of the records.
    sigma_history : numpy.ndarray ``[R]``
        Width ``s`` (units of x).
    train_ll, test_ll : numpy.ndarray ``[R]``
        Mean training and held-out log-likelihood (nats per example).
    max_gap : numpy.ndarray ``[R]``
        Largest distance from a training example to its nearest mean (units of x).
    mass_error : numpy.ndarray ``[R]``
        Largest deviation from ``1/N`` of the weight gathered on one example.
    means_history : numpy.ndarray ``[R, K, 1]``; weights_history : numpy.ndarray ``[R, K]``
        The means and weights at each record.
    k_peak : int
        Index of the record with the best held-out log-likelihood.
    kde_star : float
        Held-out optimum of the bandwidth of the kernel density of the same examples (units of x).
    slope_end : float
        Derivative of the final model's training log-likelihood with respect to ``log s`` at the
        learned width (nats per example; central difference with step ``1e-4``).
    bound_end : float
        The lower bound :math:`-\\log N-\\tfrac12\\log(2\\pi s^2)` at the learned width.
    """

    n: int
    n_components: int
    x_train: np.ndarray
    means: np.ndarray
    weights: np.ndarray
    sigma: float
    step: np.ndarray
    sigma_history: np.ndarray
    train_ll: np.ndarray
    test_ll: np.ndarray
    max_gap: np.ndarray
    mass_error: np.ndarray
    means_history: np.ndarray
    weights_history: np.ndarray
    k_peak: int
    kde_star: float
    slope_end: float
    bound_end: float

    @property
    def peak_step(self) -> int:
        """Adam step with the best held-out log-likelihood."""
        return int(self.step[self.k_peak])

    @property
    def fit(self) -> mle.FlexibleFit:
        """The fit as a :class:`memprior.mle.FlexibleFit` (what the figure builders take)."""
        history = {"step": self.step, "sigma": self.sigma_history, "train_ll": self.train_ll,
                   "test_ll": self.test_ll, "max_gap": self.max_gap, "mass_error": self.mass_error,
                   "means": self.means_history, "weights": self.weights_history}
        return mle.FlexibleFit(means=torch.as_tensor(self.means), weights=torch.as_tensor(self.weights),
                               sigma=self.sigma, x_train=torch.as_tensor(self.x_train), history=history)


def flexible_study(*, n: int = 8, n_components: int | None = None, sigma_init: float = 2.0, steps: int = 2000,
                   record_every: int = 20, seed: int = 0, n_pool: int = 400, n_test: int = 2000,
                   pool_seed: int = 0, test_seed: int = 1) -> FlexibleStudy:
    """Train a flexible Gaussian mixture on ``pool[:n]`` by gradient ascent on its log-likelihood.

    Parameters
    ----------
    n : int
        Training-set size, in ``[2, n_pool]``.
    n_components : int, optional
        Number of components ``K >= 1``; default ``4 n``.
    sigma_init : float
        Initial shared width, > 0 (units of x).
    steps : int
        Adam steps, >= 1 (learning rate decaying from 0.02 to 0.0002).
    record_every : int
        Record the history every this many steps, >= 1.
    seed : int
        Seed of the initialization of the means, >= 0.
    n_pool, n_test, pool_seed, test_seed : int
        The data, as in :func:`sample_data`.

    Returns
    -------
    FlexibleStudy
    """
    seed = check_seed(seed, "seed")
    pool_seed = check_seed(pool_seed, "pool_seed")
    test_seed = check_seed(test_seed, "test_seed")
    n = _check_n("n", n, n_pool, low=2)
    data = sample_data(n_pool=n_pool, n_test=n_test, pool_seed=pool_seed, test_seed=test_seed)
    x_train, x_test = torch.as_tensor(data.pool[:n]), torch.as_tensor(data.x_test)
    fit = mle.fit_flexible_mixture(x_train, n_components=n_components, x_test=x_test, sigma_init=sigma_init,
                                   steps=steps, record_every=record_every, seed=seed)
    h = fit.history

    def train_score(log_s: float) -> float:  # training log-likelihood of the learned mixture at width exp(log_s)
        return float(mle.mixture_log_prob(fit.x_train, fit.means, fit.weights.log(), math.exp(log_s)).mean())

    log_s, eps = math.log(fit.sigma), 1e-4
    slope = (train_score(log_s + eps) - train_score(log_s - eps)) / (2 * eps)
    return FlexibleStudy(
        n=n, n_components=int(fit.means.shape[0]), x_train=data.pool[:n].copy(), means=fit.means.numpy(),
        weights=fit.weights.numpy(), sigma=float(fit.sigma), step=h["step"].astype(int),
        sigma_history=h["sigma"], train_ll=h["train_ll"], test_ll=h["test_ll"], max_gap=h["max_gap"],
        mass_error=h["mass_error"], means_history=h["means"], weights_history=h["weights"],
        k_peak=int(np.argmax(h["test_ll"])), kde_star=float(mle.heldout_optimum(x_train, x_test)),
        slope_end=float(slope), bound_end=float(mle.self_term_bound(n, 1, fit.sigma)),
    )
