"""Gaussian-mixture priors centred on training examples (a memorized prior).

A diffusion model that has memorized its training set ``{x_n}`` behaves, at noise
level ``sigma``, like the mixture

.. math::

    p_\\sigma(x) = \\frac{1}{N} \\sum_{n=1}^{N} \\mathcal N(x;\\, x_n,\\, \\sigma^2 I_d).

This module gives its log-density, responsibilities, score, Tweedie denoiser and
sampler.  Everything is batched, computed in log-space (``torch.logsumexp``) and
works in float32 or float64 (the dtype of ``x_train``).
"""
from __future__ import annotations

import math

import torch

from ._checks import as_points, as_train, check_generator, check_int, check_positive

__all__ = ["GaussianMixturePrior", "pairwise_sq_dists", "gaussian_logits", "relative_logits"]

def pairwise_sq_dists(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``||x_b - c_n||^2`` computed from differences.

    Differences (not the expansion ``|x|^2 + |c|^2 - 2 x.c``) keep full relative
    accuracy when points nearly coincide, which matters at small bandwidth.  The distances come from
    ``torch.cdist`` in its difference mode, which never builds the ``[B, N, d]`` tensor of differences
    (broadcasting it, even in chunks, left a chapter's kernel holding about 1 GB of freed chunks at
    N = 5000); differentiable in both arguments.

    Parameters
    ----------
    x : Tensor [B, d]
    c : Tensor [N, d]

    Returns
    -------
    Tensor [B, N], in the promoted dtype of ``x`` and ``c``.
    """
    dtype = torch.promote_types(x.dtype, c.dtype)
    return torch.cdist(x.to(dtype), c.to(dtype), compute_mode="donot_use_mm_for_euclid_dist") ** 2


def gaussian_logits(x: torch.Tensor, centres: torch.Tensor, var, *, normalized: bool = False,
                    name: str = "var") -> torch.Tensor:
    """Gaussian log-densities ``log N(x_b; c_n, var I_d)`` of every point under every centre.

    The one Gaussian lookup of the library: the lookup posterior (``x = y``, centres ``F(x_n)``,
    ``var = gamma^2``), the likelihood of each training point, the memorized denoiser
    (centres ``sqrt(alpha_bar_t) x_n``, ``var = 1 - alpha_bar_t``) and the mixture prior all call it.
    The squared distances come from :func:`pairwise_sq_dists` (differences, never the expansion
    ``|x|^2 - 2 x.c + |c|^2``, which loses all precision for points far from the origin).
    Differentiable in ``x`` and ``centres``.

    Parameters
    ----------
    x : Tensor [B, d]
    centres : Tensor [N, d]
    var : float or 0-d Tensor, > 0
        Variance of every coordinate (units of x squared).
    normalized : bool
        Include the constant ``-d/2 log(2 pi var)`` (a normalized density); default ``False``
        (the logits ``-||x_b - c_n||^2 / (2 var)``, enough for softmax weights).
    name : str
        The caller's parameter behind ``var`` (``"sigma"``, ``"gamma"``...), named in the error below.

    Returns
    -------
    Tensor [B, N]

    Raises
    ------
    FloatingPointError
        If every logit of some row is -inf: the point is so many standard deviations (more than about
        1e154) from every centre that all its weights underflow, and a softmax would give NaN.
    """
    out = -pairwise_sq_dists(x, centres) / (2 * var)
    if out.shape[1] > 0 and torch.isneginf(out).all(dim=1).any():
        raise FloatingPointError(f"{name}: every Gaussian weight of a point underflows: it lies more than ~1e154 "
                                 f"standard deviations (variance {float(var):.3g}) from every centre"
                                 + (f"; use a larger {name}" if name in ("sigma", "gamma", "sigma_d") else ""))
    if normalized:
        d = x.shape[1]
        if isinstance(var, torch.Tensor):
            return out - 0.5 * d * torch.log(2 * math.pi * var)
        return out - 0.5 * d * math.log(2 * math.pi * var)
    return out


def relative_logits(x: torch.Tensor, centres: torch.Tensor, var) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian logits shifted so that each row's largest is 0, and the shift: ``(rel [B, N], shift [B])``.

    ``-||x_b - c_n||^2 / (2 var) = rel[b, n] + shift[b]``.  Subtracting the nearest centre's squared
    distance *before* dividing by a tiny ``var`` keeps the softmax weights finite even when every absolute
    logit would overflow to -inf (a point many standard deviations from every centre): then the nearest
    centre gets all the weight, as the limit says, and ``shift`` is -inf.
    """
    d2 = pairwise_sq_dists(x, centres)
    m = d2.min(dim=1, keepdim=True).values
    return -(d2 - m) / (2 * var), -m[:, 0] / (2 * var)


class GaussianMixturePrior:
    """Equal-weight isotropic Gaussian mixture over training examples.

    Parameters
    ----------
    x_train : Tensor [N, d]
        Training examples (the mixture centres).  N >= 1.
    sigma : float
        Bandwidth (standard deviation of every component), > 0.  Same units as x.

    Attributes
    ----------
    x_train : Tensor [N, d]
    sigma : float
    n : int
        Number of components N.
    dim : int
        Dimension d.

    Raises
    ------
    ValueError
        Empty or non-2-D ``x_train``, NaN/inf entries, or ``sigma`` not in (0, inf).
    """

    def __init__(self, x_train, sigma: float):
        self.x_train = as_train(x_train)
        self.sigma = check_positive("sigma", sigma, square=True)
        self.n, self.dim = self.x_train.shape

    def __repr__(self) -> str:
        return f"GaussianMixturePrior(n={self.n}, dim={self.dim}, sigma={self.sigma:g})"

    # ------------------------------------------------------------------ helpers
    def _x(self, x) -> torch.Tensor:
        return as_points("x", x, self.dim, self.x_train.dtype)

    def logits(self, x) -> torch.Tensor:
        """Unnormalized log-responsibilities ``-||x - x_n||^2 / (2 sigma^2)``.

        Parameters
        ----------
        x : Tensor [B, d]

        Returns
        -------
        Tensor [B, N]
        """
        return gaussian_logits(self._x(x), self.x_train, self.sigma ** 2, name="sigma")

    # --------------------------------------------------------------- public API
    def log_prob(self, x) -> torch.Tensor:
        """Log-density ``log p_sigma(x)``.

        Parameters
        ----------
        x : Tensor [B, d]

        Returns
        -------
        Tensor [B]
        """
        rel, shift = relative_logits(self._x(x), self.x_train, self.sigma ** 2)
        const = -math.log(self.n) - 0.5 * self.dim * math.log(2.0 * math.pi * self.sigma ** 2)
        return torch.logsumexp(rel, dim=1) + shift + const

    def responsibilities(self, x) -> torch.Tensor:
        """Posterior probability ``w_n(x)`` that ``x`` came from component ``n``.

        Parameters
        ----------
        x : Tensor [B, d]

        Returns
        -------
        Tensor [B, N]
            Rows sum to one.
        """
        return torch.softmax(relative_logits(self._x(x), self.x_train, self.sigma ** 2)[0], dim=1)

    def denoise(self, x) -> torch.Tensor:
        """Tweedie denoiser ``E[x_0 | x] = sum_n w_n(x) x_n = x + sigma^2 score(x)``.

        Parameters
        ----------
        x : Tensor [B, d]

        Returns
        -------
        Tensor [B, d]
        """
        return self.responsibilities(x) @ self.x_train

    def score(self, x) -> torch.Tensor:
        """Score ``grad_x log p_sigma(x) = sum_n w_n(x) (x_n - x) / sigma^2``.

        Parameters
        ----------
        x : Tensor [B, d]

        Returns
        -------
        Tensor [B, d]
        """
        xt = self._x(x)
        w = self.responsibilities(xt)
        # sum_n w_n (x_n - x): subtract inside the sum for accuracy at small sigma.
        return (w @ self.x_train - xt * w.sum(1, keepdim=True)) / self.sigma ** 2

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` samples: pick a training example uniformly, add ``sigma``-noise.

        Parameters
        ----------
        n : int
            Number of samples, >= 0.
        generator : torch.Generator, optional
            Source of randomness (for reproducibility).

        Returns
        -------
        Tensor [n, d]
        """
        check_generator(generator)
        n = check_int("n", n, low=0)
        idx = torch.randint(self.n, (n,), generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=self.x_train.dtype)
        return self.x_train[idx] + self.sigma * eps
