"""Maximum likelihood memorizes: the numerics of chapter 1.

A density fitted by maximum likelihood to ``N`` examples, with enough freedom,
collapses onto the examples.  This module measures that collapse:

* :func:`log_likelihood` and :func:`bandwidth_curve`: the mean training,
  held-out and leave-one-out log-likelihood of the Gaussian-mixture (kernel
  density) prior :class:`memprior.mixture.GaussianMixturePrior` as a function
  of its bandwidth ``sigma``;
* :func:`self_term_bound` and :func:`width_upper_bound`: the two closed-form
  bounds that squeeze the training log-likelihood to ``+inf`` as ``sigma -> 0``;
* :func:`heldout_optimum` and :func:`loo_optimum`: the interior optimum of the
  held-out (or leave-one-out) likelihood;
* :func:`fit_flexible_mixture`: a flexible model (a Gaussian mixture with
  learnable means, weights and one shared learnable width) trained by gradient
  ascent on the training log-likelihood.  Its means move onto the training
  points, its width shrinks, and its weights approach ``1/N``: it converges
  towards the empirical measure.

All log-likelihoods are *per example* (averaged over the evaluation points),
in nats, computed in log-space with ``torch.logsumexp``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ._checks import (SQUARE_MAX, SQUARE_MIN, as_tensor, check_diverged, check_int, check_log_weights, check_positive,
                      check_seed)

__all__ = [
    "REFERENCE_CENTERS",
    "REFERENCE_SIGMA",
    "reference_density",
    "log_likelihood",
    "loo_log_likelihood",
    "self_term_bound",
    "width_upper_bound",
    "BandwidthCurve",
    "bandwidth_curve",
    "heldout_optimum",
    "loo_optimum",
    "FlexibleFit",
    "fit_flexible_mixture",
    "mixture_log_prob",
]

#: Centres of the 1-D "true" density used in chapter 1 (an equal-weight pair of Gaussians).
REFERENCE_CENTERS = (-1.0, 1.5)
#: Common width of the two Gaussians of the reference density.
REFERENCE_SIGMA = 0.5


def reference_density(dtype: torch.dtype = torch.float64):
    """The data-generating density of chapter 1.

    An equal-weight mixture of two 1-D Gaussians centred at
    :data:`REFERENCE_CENTERS` with standard deviation :data:`REFERENCE_SIGMA`,
    returned as a :class:`memprior.mixture.GaussianMixturePrior` (so it has
    ``log_prob`` and ``sample``).

    Parameters
    ----------
    dtype : torch.dtype
        Floating dtype of the centres.

    Returns
    -------
    memprior.mixture.GaussianMixturePrior
        With ``x_train`` of shape ``[2, 1]`` and ``sigma = 0.5``.
    """
    from .mixture import GaussianMixturePrior

    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating torch.dtype, got {dtype!r}")
    centers = torch.tensor(REFERENCE_CENTERS, dtype=dtype).reshape(-1, 1)
    return GaussianMixturePrior(centers, REFERENCE_SIGMA)


# ----------------------------------------------------------------------------- validation

def _points(name: str, x, dim: int | None = None, min_n: int = 1) -> torch.Tensor:
    t = as_tensor(name, x)
    if t.dim() == 1:
        raise ValueError(f"{name}: expected shape [n, d] (use x[:, None] for 1-D data), got {list(t.shape)}")
    if t.dim() != 2:
        raise ValueError(f"{name}: expected shape [n, d], got {list(t.shape)}")
    if t.shape[1] < 1:
        raise ValueError(f"{name}: need at least one dimension (d >= 1), got shape {list(t.shape)}")
    if t.shape[0] < min_n:
        raise ValueError(f"{name}: need at least {min_n} point(s) (n >= {min_n}), got {t.shape[0]}")
    if dim is not None and t.shape[1] != dim:
        raise ValueError(f"{name}: expected dimension d = {dim} to match x_train, got shape {list(t.shape)}")
    return t


def _sigmas(sigmas) -> np.ndarray:
    s = np.asarray(sigmas.detach().cpu().numpy() if isinstance(sigmas, torch.Tensor) else sigmas)
    if s.dtype.kind not in "fiu" or s.dtype.kind == "b":
        raise TypeError(f"sigmas: expected real numbers, got dtype {s.dtype}")
    s = s.astype(float).reshape(-1)
    if s.size == 0:
        raise ValueError("sigmas: need at least one bandwidth (got an empty array)")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("sigmas: every bandwidth must be a finite number in (0, inf)")
    if np.any(s < SQUARE_MIN) or np.any(s > SQUARE_MAX):
        raise ValueError(f"sigmas: every bandwidth must be in [{SQUARE_MIN:.3g}, {SQUARE_MAX:.3g}]; outside, its square "
                         f"underflows or overflows in float64 (got min {float(s.min())!r}, max {float(s.max())!r})")
    return s


def _bounds(bounds) -> tuple[float, float]:
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"bounds: expected a pair (low, high), got {bounds!r}")
    lo = check_positive("bounds[0]", bounds[0], square=True)
    hi = check_positive("bounds[1]", bounds[1], square=True)
    if not lo < hi:
        raise ValueError(f"bounds: need 0 < low < high, got ({lo}, {hi})")
    return lo, hi


# ----------------------------------------------------------------------------- likelihoods

def log_likelihood(x_train, x_eval, sigma) -> float:
    """Mean log-likelihood of ``x_eval`` under the kernel density of ``x_train``.

    .. math:: \\ell(\\sigma) = \\frac{1}{M}\\sum_{j=1}^M \\log p_\\sigma(x_j),\\qquad
              p_\\sigma(x) = \\frac1N \\sum_{n=1}^N \\mathcal N(x; x_n, \\sigma^2 I).

    Parameters
    ----------
    x_train : array or Tensor, shape ``[N, d]``
        Centres of the mixture (the training examples).
    x_eval : array or Tensor, shape ``[M, d]``
        Points at which the log-density is averaged (the training set itself
        gives the training log-likelihood, a fresh sample the held-out one).
    sigma : float
        Bandwidth, > 0, in the units of ``x``.

    Returns
    -------
    float
        Mean log-density in nats per example (finite for every finite input).
    """
    from .mixture import GaussianMixturePrior

    xt = _points("x_train", x_train)
    xe = _points("x_eval", x_eval, dim=xt.shape[1]).to(xt.dtype)
    s = check_positive("sigma", sigma, square=True)
    return float(GaussianMixturePrior(xt, s).log_prob(xe).mean())


def loo_log_likelihood(x_train, sigma) -> float:
    """Leave-one-out mean log-likelihood of the kernel density.

    Each example is scored by the mixture of the *other* ``N - 1`` kernels:
    :math:`\\frac1N\\sum_n \\log \\frac{1}{N-1}\\sum_{m\\ne n}\\mathcal N(x_n; x_m, \\sigma^2 I)`.
    This is the likelihood cross-validation criterion for the bandwidth
    (Silverman, 1986); unlike the training likelihood it does not reward
    ``sigma -> 0``.

    Parameters
    ----------
    x_train : array or Tensor, shape ``[N, d]`` with ``N >= 2``
    sigma : float
        Bandwidth, > 0.

    Returns
    -------
    float
        Mean leave-one-out log-density in nats per example.  If every example
        has an exact duplicate it grows without bound as ``sigma -> 0``.
    """
    xt = _points("x_train", x_train, min_n=2)
    s = check_positive("sigma", sigma, square=True)
    n, d = xt.shape
    from .mixture import pairwise_sq_dists

    d2 = pairwise_sq_dists(xt, xt)
    logk = -0.5 * d2 / s**2 - 0.5 * d * math.log(2 * math.pi * s**2)
    logk = logk.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    return float((torch.logsumexp(logk, dim=1) - math.log(n - 1)).mean())


def self_term_bound(n: int, d: int, sigma) -> float:
    """Lower bound on the training log-likelihood of the kernel density.

    Every training example sits on its own kernel, so
    :math:`p_\\sigma(x_n) \\ge \\frac1N (2\\pi\\sigma^2)^{-d/2}` and

    .. math:: \\ell_{\\rm train}(\\sigma) \\ge -\\log N - \\tfrac d2 \\log(2\\pi\\sigma^2)
              \\xrightarrow[\\sigma\\to0]{} +\\infty.

    Equality holds in the limit ``sigma -> 0`` when the examples are distinct.

    Parameters
    ----------
    n : int
        Number of training examples, >= 1.
    d : int
        Dimension, >= 1.
    sigma : float
        Bandwidth, > 0.
    """
    n = check_int("n", n, low=1)
    d = check_int("d", d, low=1)
    s = check_positive("sigma", sigma, square=True)
    return -math.log(n) - 0.5 * d * math.log(2 * math.pi * s**2)


def width_upper_bound(d: int, sigma) -> float:
    """Upper bound on the log-likelihood of *any* Gaussian mixture of width ``sigma``.

    Each component's density is at most :math:`(2\\pi\\sigma^2)^{-d/2}`, so every
    mixture of isotropic Gaussians with common width ``sigma`` (any number of
    components, any means, any weights) has mean log-likelihood at most
    :math:`-\\tfrac d2\\log(2\\pi\\sigma^2)` on any data set.

    Parameters
    ----------
    d : int
        Dimension, >= 1.
    sigma : float
        Width, > 0.
    """
    d = check_int("d", d, low=1)
    s = check_positive("sigma", sigma, square=True)
    return -0.5 * d * math.log(2 * math.pi * s**2)


@dataclass
class BandwidthCurve:
    """Training, held-out and leave-one-out log-likelihood against bandwidth.

    Attributes
    ----------
    sigmas : numpy.ndarray ``[S]``
        Bandwidths, in the units of ``x``.
    train : numpy.ndarray ``[S]``
        Mean training log-likelihood (nats per example).
    heldout : numpy.ndarray ``[S]`` or None
        Mean log-likelihood of the held-out points (if given).
    loo : numpy.ndarray ``[S]`` or None
        Mean leave-one-out log-likelihood (if ``N >= 2``).
    """

    sigmas: np.ndarray
    train: np.ndarray
    heldout: np.ndarray | None = None
    loo: np.ndarray | None = None

    def best(self, which: str = "heldout") -> float:
        """Bandwidth on the grid that maximizes ``which`` (``"train"``, ``"heldout"`` or ``"loo"``)."""
        if which not in ("train", "heldout", "loo"):
            raise ValueError(f"which: must be one of 'train', 'heldout', 'loo', got {which!r}")
        vals = getattr(self, which)
        if vals is None:
            raise ValueError(f"which: the curve has no {which!r} values")
        return float(self.sigmas[int(np.argmax(vals))])


def bandwidth_curve(x_train, sigmas, x_test=None, *, loo: bool = True) -> BandwidthCurve:
    """Evaluate the kernel density's log-likelihoods over a grid of bandwidths.

    Parameters
    ----------
    x_train : array or Tensor ``[N, d]``
        Training examples (the mixture centres).
    sigmas : array-like ``[S]``
        Bandwidths, each finite and > 0.
    x_test : array or Tensor ``[M, d]``, optional
        Held-out examples from the same distribution.
    loo : bool
        Also compute the leave-one-out curve (needs ``N >= 2``; skipped otherwise).

    Returns
    -------
    BandwidthCurve
    """
    from .mixture import GaussianMixturePrior, pairwise_sq_dists

    xt = _points("x_train", x_train)
    s = _sigmas(sigmas)
    xe = None if x_test is None else _points("x_test", x_test, dim=xt.shape[1]).to(xt.dtype)
    if not isinstance(loo, bool):
        raise TypeError(f"loo: expected True or False, got {type(loo).__name__}")
    n, d = xt.shape
    train = np.empty(s.size)
    held = np.empty(s.size) if xe is not None else None
    do_loo = loo and n >= 2
    loo_v = np.empty(s.size) if do_loo else None
    d2 = pairwise_sq_dists(xt, xt) if do_loo else None
    eye = torch.eye(n, dtype=torch.bool) if do_loo else None
    for i, si in enumerate(s):
        prior = GaussianMixturePrior(xt, float(si))
        train[i] = float(prior.log_prob(xt).mean())
        if xe is not None:
            held[i] = float(prior.log_prob(xe).mean())
        if do_loo:
            logk = (-0.5 * d2 / si**2).masked_fill(eye, float("-inf"))
            loo_v[i] = float((torch.logsumexp(logk, dim=1)).mean()) - math.log(n - 1) \
                - 0.5 * d * math.log(2 * math.pi * si**2)
    return BandwidthCurve(sigmas=s, train=train, heldout=held, loo=loo_v)


def _maximize_log_sigma(fun, lo: float, hi: float, n_grid: int) -> float:
    from scipy.optimize import minimize_scalar

    grid = np.geomspace(lo, hi, n_grid)
    vals = np.array([fun(g) for g in grid])
    k = int(np.argmax(vals))
    if k == 0 or k == n_grid - 1:  # optimum on the boundary of the search interval
        return float(grid[k])
    a, b = math.log(grid[k - 1]), math.log(grid[k + 1])
    res = minimize_scalar(lambda t: -fun(math.exp(t)), bounds=(a, b), method="bounded",
                          options=dict(xatol=1e-6))
    best = float(math.exp(res.x))
    return best if fun(best) >= vals[k] else float(grid[k])


def heldout_optimum(x_train, x_test, bounds=(1e-3, 10.0), n_grid: int = 60) -> float:
    """Bandwidth that maximizes the held-out log-likelihood.

    A coarse search over ``n_grid`` log-spaced bandwidths in ``bounds`` followed
    by a bounded scalar refinement in ``log sigma``.  If the best grid value lies
    on an end of ``bounds`` that end is returned (widen ``bounds``).

    Parameters
    ----------
    x_train : ``[N, d]``
    x_test : ``[M, d]``
    bounds : (float, float)
        Search interval ``0 < low < high``.
    n_grid : int
        Number of coarse grid points, >= 3.

    Returns
    -------
    float
        The maximizing bandwidth.
    """
    from .mixture import GaussianMixturePrior

    xt = _points("x_train", x_train)
    xe = _points("x_test", x_test, dim=xt.shape[1]).to(xt.dtype)
    lo, hi = _bounds(bounds)
    n_grid = check_int("n_grid", n_grid, low=3)
    return _maximize_log_sigma(lambda s: float(GaussianMixturePrior(xt, s).log_prob(xe).mean()), lo, hi, n_grid)


def loo_optimum(x_train, bounds=(1e-3, 10.0), n_grid: int = 60) -> float:
    """Bandwidth that maximizes the leave-one-out log-likelihood (``N >= 2``).

    Same search as :func:`heldout_optimum`; needs no held-out data.
    """
    xt = _points("x_train", x_train, min_n=2)
    lo, hi = _bounds(bounds)
    n_grid = check_int("n_grid", n_grid, low=3)
    return _maximize_log_sigma(lambda s: loo_log_likelihood(xt, s), lo, hi, n_grid)


# ----------------------------------------------------------------------------- flexible model

def mixture_log_prob(x, means, log_weights, sigma) -> torch.Tensor:
    """Log-density of a weighted isotropic Gaussian mixture with a shared width.

    Parameters
    ----------
    x : Tensor ``[B, d]``
    means : Tensor ``[K, d]``
    log_weights : Tensor ``[K]``
        Log mixture weights (normalized: ``logsumexp == 0``).
    sigma : float or 0-d Tensor
        Shared standard deviation, > 0.

    Returns
    -------
    Tensor ``[B]``
        Differentiable in ``means``, ``log_weights`` and ``sigma`` (when they are tensors).
    """
    mu = _points("means", means)
    xe = _points("x", x, dim=mu.shape[1]).to(mu.dtype)
    lw = as_tensor("log_weights", log_weights, finite=False)
    if lw.shape != (mu.shape[0],):
        raise ValueError(f"log_weights: expected shape [{mu.shape[0]}] (one per mean), got {list(lw.shape)}")
    lw = check_log_weights("log_weights", lw, normalized=True).to(mu.dtype)
    if isinstance(sigma, torch.Tensor):
        if sigma.numel() != 1:
            raise ValueError(f"sigma: expected a single number, got shape {list(sigma.shape)}")
        check_positive("sigma", float(sigma.detach()), square=True)
        sig = sigma.reshape(()).to(mu.dtype)
    else:
        sig = torch.as_tensor(check_positive("sigma", sigma, square=True), dtype=mu.dtype)
    return _mixture_log_prob(xe, mu, lw, sig)


def _mixture_log_prob(x: torch.Tensor, means: torch.Tensor, log_weights: torch.Tensor,
                      sigma: torch.Tensor) -> torch.Tensor:
    from .mixture import pairwise_sq_dists

    d = means.shape[-1]
    d2 = pairwise_sq_dists(x, means)
    logk = -0.5 * d2 / sigma**2 - d * torch.log(sigma) - 0.5 * d * math.log(2 * math.pi)
    return torch.logsumexp(logk + log_weights[None, :], dim=1)


@dataclass
class FlexibleFit:
    """Result of :func:`fit_flexible_mixture`.

    Attributes
    ----------
    means : Tensor ``[K, d]``
        Learned component means.
    weights : Tensor ``[K]``
        Learned mixture weights (sum to 1).
    sigma : float
        Learned shared width.
    x_train : Tensor ``[N, d]``
        The training examples.
    history : dict of numpy arrays
        Recorded every ``record_every`` steps (and at the last step):
        ``"step" [R]``, ``"sigma" [R]``, ``"train_ll" [R]``, ``"test_ll" [R]``
        (NaN-free; absent without ``x_test``), ``"max_gap" [R]`` (largest distance
        from a training example to its nearest mean), ``"mass_error" [R]``
        (:meth:`mass_per_example` minus ``1/N``, largest absolute value),
        ``"means" [R, K, d]`` and ``"weights" [R, K]``.
    """

    means: torch.Tensor
    weights: torch.Tensor
    sigma: float
    x_train: torch.Tensor
    history: dict = field(default_factory=dict)

    def log_prob(self, x) -> torch.Tensor:
        """Log-density of the learned mixture at ``x [B, d]``; returns ``[B]``."""
        return mixture_log_prob(x, self.means, torch.log(self.weights), self.sigma)

    def mass_per_example(self) -> torch.Tensor:
        """Total weight of the components whose nearest training example is ``x_n``; ``[N]``.

        For the empirical measure of distinct examples this is ``1/N`` each.
        """
        return _mass_per_example(self.means, self.weights, self.x_train)


def _mass_per_example(means, weights, x_train) -> torch.Tensor:
    from .mixture import pairwise_sq_dists

    owner = pairwise_sq_dists(means, x_train).argmin(dim=1)
    mass = torch.zeros(x_train.shape[0], dtype=weights.dtype)
    return mass.index_add_(0, owner, weights)


def fit_flexible_mixture(x_train, n_components: int | None = None, *, steps: int = 2000, lr: float = 0.02,
                         lr_final: float | None = None, sigma_init: float | None = None,
                         learn_weights: bool = True, x_test=None,
                         record_every: int = 50, seed: int = 0) -> FlexibleFit:
    """Train a flexible Gaussian mixture by maximum likelihood (gradient ascent).

    The model is :math:`q(x) = \\sum_k \\pi_k\\,\\mathcal N(x; \\mu_k, s^2 I)` with
    ``K`` learnable means, learnable weights (softmax of logits) and one learnable
    shared width ``s`` (parametrized by ``log s``).  Adam maximizes the mean
    training log-likelihood.  The means start from a Gaussian fitted to the data
    (not at the data), the width at the data's root-mean-square spread.

    With ``K >= N`` nothing stops the likelihood from growing: the means move
    onto the examples, ``s`` shrinks roughly geometrically and the weights tend
    to ``1/N`` per example; the fit approaches the empirical measure.

    Parameters
    ----------
    x_train : ``[N, d]``
        Training examples.
    n_components : int, optional
        Number of components ``K >= 1``; default ``4 N``.  Over-parametrizing
        (``K > N``) helps gradient ascent escape the local maxima in which two
        means share one example and another example is left uncovered.
    steps : int
        Adam steps, >= 1.
    lr : float
        Initial Adam learning rate, in (0, 1].
    lr_final : float, optional
        Learning rate at the last step, in (0, lr]; the rate decays geometrically
        from ``lr`` to ``lr_final``.  Default ``lr / 100``.  Adam moves each
        parameter by about the learning rate per step, so a constant rate keeps
        the means jittering on the scale of ``lr`` and stalls the width there.
    sigma_init : float, optional
        Initial width, > 0; default the root-mean-square distance of the data to
        their mean (1.0 for a single example).
    learn_weights : bool
        Learn the mixture weights (otherwise they stay uniform ``1/K``).
    x_test : ``[M, d]``, optional
        Held-out examples; their log-likelihood is recorded along the way.
    record_every : int
        Record the history every this many steps, >= 1.
    seed : int
        Seed of the initialization (a private ``torch.Generator``), >= 0.

    Returns
    -------
    FlexibleFit
    """
    seed = check_seed(seed, "seed")
    from .mixture import pairwise_sq_dists

    xt = _points("x_train", x_train)
    xt = xt.to(torch.float64)
    n, d = xt.shape
    k = 4 * n if n_components is None else check_int("n_components", n_components, low=1)
    steps = check_int("steps", steps, low=1)
    lr = check_positive("lr", lr, upper=1.0)
    lr_final = lr / 100.0 if lr_final is None else check_positive("lr_final", lr_final, upper=lr)
    if not isinstance(learn_weights, bool):
        raise TypeError(f"learn_weights: expected True or False, got {type(learn_weights).__name__}")
    xe = None if x_test is None else _points("x_test", x_test, dim=d).to(torch.float64)
    record_every = check_int("record_every", record_every, low=1)
    seed = check_seed(seed, "seed")

    centre = xt.mean(0)
    spread = float((xt - centre).pow(2).sum(1).mean().sqrt()) if n > 1 else 0.0
    if spread <= 0.0:
        spread = 1.0
    s0 = spread if sigma_init is None else check_positive("sigma_init", sigma_init, square=True)
    scale = xt.std(0, unbiased=False) if n > 1 else torch.ones(d, dtype=torch.float64)
    scale = torch.where(scale > 0, scale, torch.full_like(scale, spread / math.sqrt(d)))

    gen = torch.Generator().manual_seed(seed)
    means = (centre + scale * torch.randn(k, d, generator=gen, dtype=torch.float64)).requires_grad_(True)
    log_s = torch.tensor(math.log(s0), dtype=torch.float64, requires_grad=True)
    logits = torch.zeros(k, dtype=torch.float64, requires_grad=learn_weights)
    params = [means, log_s] + ([logits] if learn_weights else [])
    opt = torch.optim.Adam(params, lr=lr)
    decay = (lr_final / lr) ** (1.0 / steps)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=decay)

    hist = {key: [] for key in ("step", "sigma", "train_ll", "test_ll", "max_gap", "mass_error", "means",
                                "weights")}

    def record(step, train_ll):
        with torch.no_grad():
            logw = torch.log_softmax(logits, 0)
            w = logw.exp()
            s = log_s.exp()
            hist["step"].append(step)
            hist["sigma"].append(float(s))
            hist["train_ll"].append(train_ll)
            if xe is not None:
                hist["test_ll"].append(float(_mixture_log_prob(xe, means, logw, s).mean()))
            hist["max_gap"].append(float(pairwise_sq_dists(xt, means).min(dim=1).values.max().sqrt()))
            mass = _mass_per_example(means, w, xt)
            hist["mass_error"].append(float((mass - 1.0 / n).abs().max()))
            hist["means"].append(means.detach().clone().numpy())
            hist["weights"].append(w.detach().clone().numpy())

    for step in range(steps + 1):
        logw = torch.log_softmax(logits, 0)
        ll = _mixture_log_prob(xt, means, logw, log_s.exp()).mean()
        check_diverged(float(ll.detach()), step)
        if step % record_every == 0 or step == steps:
            record(step, float(ll.detach()))
        if step == steps:
            break
        opt.zero_grad()
        (-ll).backward()
        opt.step()
        sched.step()

    history = {key: np.asarray(v) for key, v in hist.items() if not (key == "test_ll" and xe is None)}
    with torch.no_grad():
        w = torch.softmax(logits, 0).detach().clone()
    return FlexibleFit(means=means.detach().clone(), weights=w, sigma=float(log_s.detach().exp()), x_train=xt,
                       history=history)
