"""Chapter 2: the lookup posterior, its limits in the noise level and in the bandwidth.

Everything is computed on the paper's one-dimensional problem (:func:`memprior.posterior.stylized_1d`):
``F(x) = x + 0.3 x^3``, the five stored models ``{-1.5, -0.4, 0.4, 1.2, 2.5}`` and ``gamma = 0.3``. All
quantities are dimensionless. Nothing here draws random numbers: every result is a deterministic function
of its parameters.

* :func:`bumped_forward`: a second forward map that agrees with ``F`` at the stored models only.
* :func:`two_forward_maps`: the lookup weights and the Gaussian-mixture posteriors of both maps.
* :func:`noise_sweep`: the effective number of components ``exp(H)`` of the lookup weights against gamma.
* :func:`bandwidth_limit`: the exact mixture-posterior weights converging to the lookup weights as
  ``sigma -> 0``, and the fitted rate.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
import torch

from .. import posterior
from .._checks import as_data, as_tensor, as_train, check_int, check_positive

__all__ = ["bumped_forward", "TwoForwardMaps", "two_forward_maps", "NoiseSweep", "noise_sweep",
           "BandwidthLimit", "bandwidth_limit"]

Forward = Callable[[torch.Tensor], torch.Tensor]


class _ReadOnlyArrays:
    """Mixin for the frozen result dataclasses: their numpy arrays are made read-only too."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value.flags.writeable = False


def _stored_models(x_train) -> torch.Tensor:
    """The 1-D training set as a float64 ``[N, 1]`` tensor (default: the paper's five models)."""
    if x_train is None:
        return posterior.stylized_1d().x_train
    x = as_train(x_train).to(torch.float64)
    if x.shape[1] != 1:
        raise ValueError(f"x_train: expected shape [N, 1] (a 1-D model), got {list(x.shape)}")
    return x


def _datum(y) -> torch.Tensor:
    t = as_data(y, torch.float64)
    if t.shape[0] != 1:
        raise ValueError(f"y: expected a single datum (a number or shape [1]), got shape {list(t.shape)}")
    return t


def _check_interval(lo: float, hi: float, x: torch.Tensor) -> tuple[float, float]:
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v):
            raise TypeError(f"{name}: expected a finite real number, got {v!r}")
    lo, hi = float(lo), float(hi)
    if not lo < hi:
        raise ValueError(f"lo, hi: need lo < hi, got [{lo}, {hi}]")
    if float(x.min()) < lo or float(x.max()) > hi:
        raise ValueError(f"lo, hi: the grid [{lo}, {hi}] must cover the stored models "
                         f"[{float(x.min())}, {float(x.max())}]")
    return lo, hi


# ----------------------------------------------------------------------------- two maps, one lookup
def bumped_forward(x_train=None, amplitude: float = 0.5) -> Forward:
    """``F_2(x) = F(x) + a exp(-x^2/2) prod_n (x - x_n)``: equal to ``F`` at the stored models only.

    Parameters
    ----------
    x_train : array-like [N, 1], optional
        Stored models (default: the paper's five).
    amplitude : float
        ``a`` > 0, the size of the bump (dimensionless).

    Returns
    -------
    callable
        ``[B, 1] -> [B, 1]``, built from :func:`memprior.posterior.cubic_forward`.
    """
    amplitude = check_positive("amplitude", amplitude)
    nodes = _stored_models(x_train)[:, 0]

    def forward2(x: torch.Tensor) -> torch.Tensor:
        bump = torch.prod(x - nodes[None, :], dim=1, keepdim=True)
        return posterior.cubic_forward(x) + amplitude * torch.exp(-0.5 * x ** 2) * bump

    return forward2


@dataclass(frozen=True)
class TwoForwardMaps(_ReadOnlyArrays):
    """Two forward maps that agree on the stored models: their lookup and mixture posteriors.

    Attributes
    ----------
    x : ndarray [G]
        Quadrature grid (model units).
    F1, F2 : ndarray [G]
        ``F`` and ``F_2`` on the grid (data units).
    x_train, F_train : ndarray [N]
        Stored models and ``F(x_n)`` (= ``F_2(x_n)``).
    post1, post2 : ndarray [G]
        Exact posterior densities under the Gaussian-mixture prior of width ``sigma`` (per unit x).
    w1, w2 : ndarray [N]
        Lookup weights of the two maps.
    tv : float
        Total-variation distance between ``post1`` and ``post2``, in [0, 1].
    f2_dev : float
        ``max_x |F_2(x) - F(x)|`` over the grid.
    train_dev : float
        ``max_n |F_2(x_n) - F(x_n)|`` (zero up to rounding).
    y, gamma, sigma, amplitude : float
        The datum, noise level, prior bandwidth and bump amplitude used.
    """

    x: np.ndarray
    F1: np.ndarray
    F2: np.ndarray
    x_train: np.ndarray
    F_train: np.ndarray
    post1: np.ndarray
    post2: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    tv: float
    f2_dev: float
    train_dev: float
    y: float
    gamma: float
    sigma: float
    amplitude: float


def two_forward_maps(*, y: float = 1.0, gamma: float = 0.3, sigma: float = 0.3, amplitude: float = 0.5,
                     n_grid: int = 2001, lo: float = -3.5, hi: float = 3.5, x_train=None) -> TwoForwardMaps:
    """Compare ``F`` with :func:`bumped_forward` under the lookup prior and under ``p_sigma``.

    The lookup weights come from :func:`memprior.posterior.lookup_weights`, the mixture posteriors from
    :func:`memprior.posterior.grid_posterior` (quadrature) and their distance from
    :func:`memprior.posterior.total_variation`.

    Parameters
    ----------
    y : float
        The datum.
    gamma : float
        Noise standard deviation, > 0.
    sigma : float
        Bandwidth of the Gaussian-mixture prior, > 0.
    amplitude : float
        Bump amplitude of ``F_2``, > 0.
    n_grid : int
        Grid nodes on ``[lo, hi]``, >= 3.
    lo, hi : float
        Grid interval; must cover the stored models.
    x_train : array-like [N, 1], optional
        Stored models (default: the paper's five).

    Returns
    -------
    TwoForwardMaps
    """
    gamma = check_positive("gamma", gamma, square=True)
    sigma = check_positive("sigma", sigma, square=True)
    n_grid = check_int("n_grid", n_grid, low=3)
    x = _stored_models(x_train)
    lo, hi = _check_interval(lo, hi, x)
    yt = _datum(y)
    F, F2 = posterior.cubic_forward, bumped_forward(x, amplitude)
    grid = torch.linspace(lo, hi, n_grid, dtype=torch.float64)
    gx = grid[:, None]
    w1, w2 = posterior.lookup_weights(F, x, yt, gamma), posterior.lookup_weights(F2, x, yt, gamma)
    post1 = posterior.grid_posterior(F, x, yt, sigma, gamma, grid)
    post2 = posterior.grid_posterior(F2, x, yt, sigma, gamma, grid)
    F1g, F2g = F(gx)[:, 0], F2(gx)[:, 0]
    return TwoForwardMaps(
        x=grid.numpy(), F1=F1g.numpy(), F2=F2g.numpy(), x_train=x[:, 0].numpy().copy(), F_train=F(x)[:, 0].numpy(),
        post1=post1.numpy(), post2=post2.numpy(), w1=w1.numpy(), w2=w2.numpy(),
        tv=float(posterior.total_variation(post1, post2, grid)), f2_dev=float((F2g - F1g).abs().max()),
        train_dev=float((F2(x) - F(x)).abs().max()), y=float(yt[0]), gamma=gamma, sigma=sigma,
        amplitude=float(amplitude))


# ----------------------------------------------------------------------------- the noise level
@dataclass(frozen=True)
class NoiseSweep(_ReadOnlyArrays):
    """Lookup weights and their effective number of components over the noise level.

    Attributes
    ----------
    gammas : ndarray [S]
        Noise levels, increasing (data units).
    data : ndarray [K]
        The data values ``y``.
    weights : ndarray [K, S, N]
        Lookup weights for every datum and noise level.
    exp_h : ndarray [K, S]
        ``exp(H)`` of the weights (:func:`memprior.posterior.effective_components`), in [1, N].
    x_train : ndarray [N]
        Stored models.
    n : int
        Number of stored models N.
    """

    gammas: np.ndarray
    data: np.ndarray
    weights: np.ndarray
    exp_h: np.ndarray
    x_train: np.ndarray
    n: int


def noise_sweep(*, data=(0.0, 1.0, 3.0), gamma_min: float = 1e-3, gamma_max: float = 1e3, n_gammas: int = 121,
                x_train=None) -> NoiseSweep:
    """``exp(H)`` of the lookup weights on a log-spaced grid of noise levels, for several data values.

    Parameters
    ----------
    data : sequence of float [K]
        Data values ``y`` (finite, at least one).
    gamma_min, gamma_max : float
        Range of the noise level, ``0 < gamma_min < gamma_max``.
    n_gammas : int
        Number of noise levels, >= 2, spaced by ``numpy.geomspace``.
    x_train : array-like [N, 1], optional
        Stored models (default: the paper's five).

    Returns
    -------
    NoiseSweep
    """
    gamma_min = check_positive("gamma_min", gamma_min, square=True)
    gamma_max = check_positive("gamma_max", gamma_max, square=True)
    if not gamma_min < gamma_max:
        raise ValueError(f"gamma_min, gamma_max: need 0 < gamma_min < gamma_max, got {gamma_min}, {gamma_max}")
    n_gammas = check_int("n_gammas", n_gammas, low=2)
    ys = as_tensor("data", data, dtype=torch.float64).reshape(-1)
    if ys.numel() == 0:
        raise ValueError("data: need at least one data value")
    x = _stored_models(x_train)
    gammas = np.geomspace(gamma_min, gamma_max, n_gammas)
    W = torch.stack([torch.stack([posterior.lookup_weights(posterior.cubic_forward, x, v.reshape(1), float(g))
                                  for g in gammas]) for v in ys])
    exp_h = np.array([[posterior.effective_components(w) for w in Wk] for Wk in W])
    return NoiseSweep(gammas=gammas, data=ys.numpy(), weights=W.numpy(), exp_h=exp_h,
                      x_train=x[:, 0].numpy().copy(), n=int(x.shape[0]))


# ----------------------------------------------------------------------------- the bandwidth
@dataclass(frozen=True)
class BandwidthLimit(_ReadOnlyArrays):
    """Exact component weights of the Gaussian-mixture posterior as the bandwidth shrinks.

    Attributes
    ----------
    sigmas : ndarray [S]
        Bandwidths, decreasing (model units).
    weights : ndarray [S, N]
        Exact component weights ``w_n(sigma)`` by quadrature
        (:func:`memprior.posterior.component_weights`).
    lookup : ndarray [N]
        Lookup weights, the ``sigma = 0`` limit.
    err : ndarray [S]
        ``sum_n |w_n(sigma) - w_n|``, the l1 distance to the lookup weights.
    rate : float
        Slope of ``log err`` against ``log sigma``, fitted over the ``n_fit`` smallest bandwidths.
    x_train : ndarray [N]
        Stored models.
    spacing : float
        Grid spacing of the quadrature (model units).
    y, gamma : float
        The datum and the noise level.
    """

    sigmas: np.ndarray
    weights: np.ndarray
    lookup: np.ndarray
    err: np.ndarray
    rate: float
    x_train: np.ndarray
    spacing: float
    y: float
    gamma: float


def bandwidth_limit(*, y: float = 1.0, gamma: float = 0.3, sigma_max: float = 0.3, sigma_min: float = 1e-3,
                    n_sigmas: int = 11, n_grid: int = 28001, lo: float = -3.5, hi: float = 3.5, n_fit: int = 4,
                    x_train=None) -> BandwidthLimit:
    """Component weights ``w_n(sigma)`` on ``geomspace(sigma_max, sigma_min, n_sigmas)`` and their distance
    to the lookup weights.

    Parameters
    ----------
    y : float
        The datum.
    gamma : float
        Noise standard deviation, > 0.
    sigma_max, sigma_min : float
        Largest and smallest bandwidth, ``0 < sigma_min < sigma_max``.
    n_sigmas : int
        Number of bandwidths, >= 2.
    n_grid : int
        Quadrature nodes on ``[lo, hi]``; the spacing ``(hi - lo) / (n_grid - 1)`` must be below
        ``sigma_min`` so that the narrowest component is resolved.
    lo, hi : float
        Quadrature interval; must cover the stored models.
    n_fit : int
        Number of smallest bandwidths used to fit the rate, in [2, n_sigmas].
    x_train : array-like [N, 1], optional
        Stored models (default: the paper's five).

    Returns
    -------
    BandwidthLimit
    """
    gamma = check_positive("gamma", gamma, square=True)
    sigma_max = check_positive("sigma_max", sigma_max, square=True)
    sigma_min = check_positive("sigma_min", sigma_min, square=True)
    if not sigma_min < sigma_max:
        raise ValueError(f"sigma_min, sigma_max: need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    n_sigmas = check_int("n_sigmas", n_sigmas, low=2)
    n_fit = check_int("n_fit", n_fit, low=2, high=n_sigmas)
    n_grid = check_int("n_grid", n_grid, low=3)
    x = _stored_models(x_train)
    lo, hi = _check_interval(lo, hi, x)
    spacing = (hi - lo) / (n_grid - 1)
    if not spacing < sigma_min:
        raise ValueError(f"n_grid: the grid spacing (hi - lo) / (n_grid - 1) = {spacing:.3g} must be below "
                         f"sigma_min = {sigma_min:.3g}; need n_grid > {1 + (hi - lo) / sigma_min:.0f}")
    yt = _datum(y)
    F = posterior.cubic_forward
    sigmas = np.geomspace(sigma_max, sigma_min, n_sigmas)
    fine = torch.linspace(lo, hi, n_grid, dtype=torch.float64)
    lookup = posterior.lookup_weights(F, x, yt, gamma).numpy()
    W = np.stack([posterior.component_weights(F, x, yt, float(s), gamma, fine).numpy() for s in sigmas])
    err = np.abs(W - lookup[None, :]).sum(axis=1)
    rate = float(np.polyfit(np.log(sigmas[-n_fit:]), np.log(err[-n_fit:]), 1)[0])
    return BandwidthLimit(sigmas=sigmas, weights=W, lookup=lookup, err=err, rate=rate,
                          x_train=x[:, 0].numpy().copy(), spacing=spacing, y=float(yt[0]), gamma=gamma)
