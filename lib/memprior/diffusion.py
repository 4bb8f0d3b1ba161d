"""Diffusion models on a finite training set: schedules, denoisers and samplers.

Conventions
-----------
Time is an integer index ``t = 0, ..., T-1`` into a variance-preserving schedule,
``t = T-1`` being the noisiest level.  The forward (noising) marginal is

.. math::

    x_t = \\sqrt{\\bar\\alpha_t}\\, x_0 + \\sqrt{1-\\bar\\alpha_t}\\, \\varepsilon,
    \\qquad \\varepsilon \\sim \\mathcal N(0, I),

with :math:`\\bar\\alpha_t = \\prod_{s \\le t} (1-\\beta_s)`.  Even the cleanest
level ``t = 0`` carries a little noise, :math:`\\sqrt{1-\\bar\\alpha_0} = \\sqrt{\\beta_0}`
(0.01 for the paper's schedule).  The samplers return :math:`\\hat x_0` after the
last step, i.e. they denoise that residual noise away.

A *denoiser* is any object with

* ``denoise(x_t, t) -> x0_hat`` of shape ``[B, d]``, and
* ``eps(x_t, t) -> eps_hat`` of shape ``[B, d]``,

both differentiable in ``x_t`` with torch autograd, plus the attributes ``dim``
and ``dtype``.  :class:`MemorizedDenoiser` is the exact minimizer of the empirical
denoising loss (the posterior mean under the empirical measure); :class:`MLPDenoiser`
is a small trained network (:func:`train_denoiser`).

Every sampler (DDIM and DDPM here, the guided and exact posterior samplers of
:mod:`memprior.guidance`) runs through one reverse-diffusion loop, :func:`sample`: it walks the
levels, calls the denoiser, applies the DDIM or DDPM update, lets a :class:`Guidance` object
change the clean estimate or the step, and calls an optional ``callback(t, x_t, x0_hat)``
(:class:`TrajectoryRecorder` records trajectories that way).

The terminal level of the paper's schedule is *not* pure noise
(:math:`\\bar\\alpha_{T-1} \\approx 0.13`), so the samplers start, by default, from
the actual terminal marginal of the training data,
:math:`\\sqrt{\\bar\\alpha_{T-1}}\\, x_n + \\sqrt{1-\\bar\\alpha_{T-1}}\\, \\varepsilon`
with ``n`` uniform (``init="marginal"``).  ``init="standard"`` reproduces the common
shortcut :math:`x_{T-1} \\sim \\mathcal N(0, I)`.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._checks import (as_tensor, as_train, check_diverged, check_generator, check_int, check_nonneg, check_positive,
                      check_seed, check_shape, guard_finite, progress)
from .mixture import gaussian_logits

__all__ = [
    "Schedule",
    "check_schedule",
    "timesteps",
    "MemorizedDenoiser",
    "MLPDenoiser",
    "train_denoiser",
    "check_denoiser",
    "start_points",
    "ddpm_coefficients",
    "Guidance",
    "TrajectoryRecorder",
    "sample",
    "ddim_sample",
    "ddpm_sample",
    "terminal_sample",
    "commitment_step",
    "denoising_loss",
    "cache_dir",
    "atomic_save",
]


# --------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------
class Schedule:
    """A variance-preserving noise schedule.

    Parameters
    ----------
    betas : array-like, shape ``[T]``
        Per-step noise variances, each in (0, 1).

    Attributes
    ----------
    betas : Tensor[T], float64
    alphas : Tensor[T], float64
        ``1 - betas``.
    alpha_bar : Tensor[T], float64
        Cumulative products :math:`\\bar\\alpha_t = \\prod_{s\\le t}\\alpha_s`, decreasing.
    n_steps : int
        ``T``.
    """

    def __init__(self, betas, name: str = "custom"):
        b = as_tensor("betas", betas, ndim=1, dtype=torch.float64)
        if b.numel() < 1:
            raise ValueError("betas: need at least one step (got 0)")
        if not bool(((b > 0) & (b < 1)).all()):
            raise ValueError(f"betas: every entry must be in (0, 1), got min {b.min().item():.3g}, "
                             f"max {b.max().item():.3g}")
        self.betas = b
        self.alphas = 1.0 - b
        # cumulative product in log-space (stable for long schedules)
        self.alpha_bar = torch.exp(torch.cumsum(torch.log1p(-b), 0))
        self.n_steps = int(b.numel())
        self.name = str(name)

    # --- constructors -----------------------------------------------------------------
    @classmethod
    def linear(cls, n_steps: int = 200, beta_start: float = 1e-4, beta_end: float = 0.02) -> "Schedule":
        """The DDPM linear schedule (Ho et al. 2020); the paper uses the defaults.

        With 200 steps from 1e-4 to 0.02 the terminal level keeps
        :math:`\\bar\\alpha_{T-1} \\approx 0.134` of the signal variance.
        """
        n_steps = check_int("n_steps", n_steps, low=1)
        beta_start = check_positive("beta_start", beta_start, upper=1.0)
        beta_end = check_positive("beta_end", beta_end, upper=1.0)
        if beta_start >= 1.0 or beta_end >= 1.0:
            raise ValueError("beta_start, beta_end: must be < 1")
        if n_steps == 1:
            betas = torch.tensor([beta_start], dtype=torch.float64)
        else:
            betas = torch.linspace(beta_start, beta_end, n_steps, dtype=torch.float64)
        return cls(betas, name=f"linear({n_steps}, {beta_start:g}, {beta_end:g})")

    @classmethod
    def cosine(cls, n_steps: int = 200, s: float = 0.008, max_beta: float = 0.999) -> "Schedule":
        """The cosine schedule of Nichol & Dhariwal (2021).

        :math:`\\bar\\alpha_t = f(t+1)/f(0)` with :math:`f(u) = \\cos^2\\big(\\tfrac{u/T + s}{1+s}\\tfrac{\\pi}{2}\\big)`,
        betas clipped at ``max_beta``; the terminal level is (almost) pure noise.
        """
        n_steps = check_int("n_steps", n_steps, low=1)
        s = check_nonneg("s", s)
        max_beta = check_positive("max_beta", max_beta, upper=1.0)
        if max_beta >= 1.0:
            raise ValueError(f"max_beta: must be in (0, 1), got {max_beta}")
        u = torch.arange(n_steps + 1, dtype=torch.float64) / n_steps
        f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        betas = (1 - abar[1:] / abar[:-1]).clamp(min=1e-8, max=max_beta)
        return cls(betas, name=f"cosine({n_steps})")

    # --- helpers ----------------------------------------------------------------------
    def check_t(self, t) -> int:
        """Return ``int(t)``; raise unless ``t`` is an integer in ``[0, T-1]``."""
        if isinstance(t, torch.Tensor) and t.numel() == 1 and not t.is_floating_point():
            t = int(t.item())
        return check_int("t", t, low=0, high=self.n_steps - 1)

    def sqrt_alpha_bar(self, t) -> float:
        """:math:`\\sqrt{\\bar\\alpha_t}`, the signal scale at level ``t``."""
        return float(self.alpha_bar[self.check_t(t)].sqrt())

    def std(self, t) -> float:
        """:math:`\\sqrt{1-\\bar\\alpha_t}`, the noise standard deviation at level ``t``."""
        return float((1 - self.alpha_bar[self.check_t(t)]).sqrt())

    def sigma(self, t) -> float:
        """Noise-to-signal ratio :math:`\\sqrt{(1-\\bar\\alpha_t)/\\bar\\alpha_t}` (the equivalent
        variance-exploding noise level)."""
        ab = float(self.alpha_bar[self.check_t(t)])
        return math.sqrt((1 - ab) / ab)

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio :math:`\\bar\\alpha_t/(1-\\bar\\alpha_t)` for all ``t``, shape ``[T]``."""
        return self.alpha_bar / (1 - self.alpha_bar)

    def terminal_alpha_bar(self) -> float:
        """:math:`\\bar\\alpha_{T-1}`: the signal variance left at the noisiest level."""
        return float(self.alpha_bar[-1])

    def terminal_std(self) -> float:
        """:math:`\\sqrt{1-\\bar\\alpha_{T-1}}`: noise std at the noisiest level."""
        return float((1 - self.alpha_bar[-1]).sqrt())

    def q_sample(self, x0, t, eps=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Noise clean data to level ``t``.

        Parameters
        ----------
        x0 : Tensor[B, d]
        t : int or LongTensor[B]
            One level for all rows, or one per row.
        eps : Tensor[B, d], optional
            The noise; drawn from ``generator`` if not given.

        Returns
        -------
        Tensor[B, d]
        """
        check_generator(generator)
        x0 = as_tensor("x0", x0, ndim=2)
        ab = self._ab_rows(t, x0.shape[0]).to(x0.dtype)
        if eps is None:
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        else:
            eps = as_tensor("eps", eps, ndim=2).to(x0.dtype)
            check_shape("eps", eps, tuple(x0.shape))
        return ab.sqrt()[:, None] * x0 + (1 - ab).sqrt()[:, None] * eps

    def _ab_rows(self, t, b: int) -> torch.Tensor:
        if isinstance(t, torch.Tensor) and t.numel() > 1:
            if t.is_floating_point() or t.dim() != 1 or t.numel() != b:
                raise ValueError(f"t: expected an integer or a LongTensor of shape [{b}], got "
                                 f"{t.dtype} of shape {list(t.shape)}")
            if int(t.min()) < 0 or int(t.max()) > self.n_steps - 1:
                raise ValueError(f"t: entries must be integers in [0, {self.n_steps - 1}]")
            return self.alpha_bar[t]
        return self.alpha_bar[self.check_t(t)].expand(b)

    def __repr__(self) -> str:
        return (f"Schedule.{self.name}: T={self.n_steps}, alpha_bar[0]={float(self.alpha_bar[0]):.5f}, "
                f"alpha_bar[T-1]={self.terminal_alpha_bar():.4g}")


def check_schedule(schedule) -> "Schedule":
    """Return ``schedule``; raise TypeError unless it is a :class:`Schedule`."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule: expected a memprior.diffusion.Schedule, got {type(schedule).__name__}")
    return schedule


# --------------------------------------------------------------------------------------
# The closed-form memorized denoiser
# --------------------------------------------------------------------------------------
class MemorizedDenoiser:
    """The exact denoiser of the empirical measure: the minimizer of the empirical loss.

    .. math::

        \\hat x_0(x_t) = E[x_0 \\mid x_t] = \\sum_n w_n(x_t)\\, x_n, \\quad
        w = \\mathrm{softmax}_n\\Big(-\\frac{\\|x_t - \\sqrt{\\bar\\alpha_t}x_n\\|^2}{2(1-\\bar\\alpha_t)}\\Big).

    Computed in float64 and log-space; results are returned in ``x_t``'s dtype.

    Parameters
    ----------
    x_train : Tensor[N, d]
        The training set (N >= 1).
    schedule : Schedule
    """

    def __init__(self, x_train, schedule: Schedule):
        self.schedule = check_schedule(schedule)
        self.x_train = as_train(x_train).to(torch.float64)
        self.n, self.dim = self.x_train.shape
        self.dtype = torch.float64

    def _x(self, x_t) -> torch.Tensor:
        x = as_tensor("x_t", x_t, ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"x_t: expected shape [B, {self.dim}] (d of x_train), got {list(x.shape)}")
        return x

    def logits(self, x_t, t) -> torch.Tensor:
        """Unnormalized log-weights ``-||x_t - sqrt(ab_t) x_n||^2 / (2 (1-ab_t))``, shape ``[B, N]``.

        The memorized-logits routine of the library (:func:`memprior.mixture.gaussian_logits` with
        centres ``sqrt(ab_t) x_n``): the posterior denoiser, the exact and SMC samplers and the
        Jensen-gap computation of :mod:`memprior.guidance` all use it.  Differentiable in ``x_t``.
        """
        x = self._x(x_t).to(torch.float64)
        t = self.schedule.check_t(t)
        ab = self.schedule.alpha_bar[t]
        return gaussian_logits(x, ab.sqrt() * self.x_train, 1 - ab, name="x_t")

    def weights(self, x_t, t) -> torch.Tensor:
        """Posterior weights of the training points given ``x_t``, shape ``[B, N]`` (rows sum to 1)."""
        return torch.softmax(self.logits(x_t, t), dim=1)

    def denoise(self, x_t, t) -> torch.Tensor:
        """Posterior mean :math:`E[x_0|x_t]`, shape ``[B, d]``, in ``x_t``'s dtype."""
        x = self._x(x_t)
        return (self.weights(x, t) @ self.x_train).to(x.dtype)

    def eps(self, x_t, t) -> torch.Tensor:
        """Noise prediction :math:`(x_t - \\sqrt{\\bar\\alpha_t}\\hat x_0)/\\sqrt{1-\\bar\\alpha_t}`, ``[B, d]``."""
        x = self._x(x_t)
        t = self.schedule.check_t(t)
        ab = self.schedule.alpha_bar[t]
        x0 = self.weights(x, t) @ self.x_train
        return ((x.to(torch.float64) - ab.sqrt() * x0) / (1 - ab).sqrt()).to(x.dtype)

    def score(self, x_t, t) -> torch.Tensor:
        """Score of the noised empirical marginal, :math:`-\\hat\\varepsilon/\\sqrt{1-\\bar\\alpha_t}`, ``[B, d]``."""
        return -self.eps(x_t, t) / self.schedule.std(t)

    def log_marginal(self, x_t, t) -> torch.Tensor:
        """Log-density of :math:`x_t` under the noised empirical measure, shape ``[B]``."""
        x = self._x(x_t)
        t = self.schedule.check_t(t)
        var = 1 - self.schedule.alpha_bar[t]
        lg = self.logits(x, t)
        return (torch.logsumexp(lg, 1) - math.log(self.n) - 0.5 * self.dim * torch.log(2 * math.pi * var)).to(x.dtype)

    def jacobian(self, x_t, t) -> torch.Tensor:
        """Jacobian of the denoiser, :math:`\\frac{\\sqrt{\\bar\\alpha_t}}{1-\\bar\\alpha_t}\\mathrm{Cov}_w[x_n]`, ``[B, d, d]``.

        (Tweedie's second-order formula for the empirical measure.)
        """
        x = self._x(x_t)
        t = self.schedule.check_t(t)
        ab = self.schedule.alpha_bar[t]
        w = self.weights(x, t)  # [B, N]
        mean = w @ self.x_train  # [B, d]
        second = torch.einsum("bn,ni,nj->bij", w, self.x_train, self.x_train)
        cov = second - mean[:, :, None] * mean[:, None, :]
        return (ab.sqrt() / (1 - ab) * cov).to(x.dtype)

    def __repr__(self) -> str:
        return f"MemorizedDenoiser(N={self.n}, d={self.dim}, {self.schedule!r})"


# --------------------------------------------------------------------------------------
# Samplers
# --------------------------------------------------------------------------------------
def terminal_sample(x_train, schedule: Schedule, n: int, generator: torch.Generator | None = None,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """Draw ``n`` points from the terminal marginal of the empirical data.

    :math:`x_{T-1} = \\sqrt{\\bar\\alpha_{T-1}}\\, x_m + \\sqrt{1-\\bar\\alpha_{T-1}}\\,\\varepsilon`,
    ``m`` uniform over the training set.  Returns ``Tensor[n, d]``.
    """
    check_generator(generator)
    x = as_train(x_train)
    schedule = check_schedule(schedule)
    n = check_int("n", n, low=1)
    dtype = dtype or x.dtype
    idx = torch.randint(x.shape[0], (n,), generator=generator)
    eps = torch.randn((n, x.shape[1]), generator=generator, dtype=torch.float64)
    ab = schedule.alpha_bar[-1]
    return (ab.sqrt() * x[idx].to(torch.float64) + (1 - ab).sqrt() * eps).to(dtype)


def check_denoiser(denoiser) -> int:
    """Return ``denoiser.dim``; raise TypeError unless ``denoiser`` follows the denoiser interface.

    The interface: callable ``.denoise(x_t, t)`` and ``.eps(x_t, t)`` and an integer ``.dim >= 1``
    (``.dtype`` and ``.x_train`` are optional).
    """
    for attr in ("denoise", "eps"):
        if not callable(getattr(denoiser, attr, None)):
            raise TypeError(f"denoiser: needs a callable .{attr}(x_t, t); got {type(denoiser).__name__}")
    dim = getattr(denoiser, "dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise TypeError("denoiser: needs an integer attribute .dim >= 1 (the data dimension)")
    return dim


def start_points(denoiser, schedule: Schedule, n: int, *, x_T=None, init: str = "marginal",
                 dtype: torch.dtype | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The ``n`` starting points of a sampler at the noisiest level ``T-1``.

    Parameters
    ----------
    denoiser : denoiser (``.denoise``, ``.eps``, ``.dim``; ``.x_train`` for ``init="marginal"``)
    schedule : Schedule
    n : int >= 1
    x_T : Tensor[n, d], optional
        Given starting points (copied); overrides ``init``.
    init : {"marginal", "standard"}
        ``"marginal"``: :func:`terminal_sample` of the denoiser's training set, the actual terminal
        marginal when ``alpha_bar[T-1] != 0``.  ``"standard"``: ``N(0, I)``.
    dtype : torch.dtype, optional
        Default: the denoiser's ``dtype`` (float64 if it has none).
    generator : torch.Generator, optional

    Returns
    -------
    Tensor[n, d]
    """
    check_generator(generator)
    dim = check_denoiser(denoiser)
    schedule = check_schedule(schedule)
    n = check_int("n", n, low=1)
    if init not in ("marginal", "standard"):
        raise ValueError(f"init: must be 'marginal' or 'standard', got {init!r}")
    dtype = dtype or getattr(denoiser, "dtype", torch.float64)
    if x_T is not None:
        x = as_tensor("x_T", x_T, ndim=2)
        check_shape("x_T", x, (n, dim))
        return x.to(dtype).clone()
    if init == "marginal":
        xt = getattr(denoiser, "x_train", None)
        if xt is None:
            raise ValueError("init: 'marginal' draws from the denoiser's training set (.x_train), which it lacks; "
                             "pass x_T [n, d] or init='standard'")
        return terminal_sample(xt, schedule, n, generator=generator, dtype=dtype)
    return torch.randn((n, dim), generator=generator, dtype=torch.float64).to(dtype)


def timesteps(schedule: Schedule, steps) -> list[int]:
    """The time indices a sampler visits, from the last to 0: all of them (``steps=None``) or ``steps`` of them."""
    T = schedule.n_steps
    if steps is None:
        return list(range(T - 1, -1, -1))
    steps = check_int("steps", steps, low=1, high=T)
    ts = np.unique(np.round(np.linspace(0, T - 1, steps)).astype(int))[::-1]
    return [int(v) for v in ts]


def ddpm_coefficients(a_t: torch.Tensor, a_s: torch.Tensor) -> tuple[float, float, float]:
    """Mean coefficients and variance of :math:`q(x_s \\mid x_t, x_0)` for levels ``s < t``.

    ``mean = c_x x_t + c_0 x_0``, variance ``var`` (per coordinate).  With ``a_s = 1`` (after the
    last level) this is ``x_s = x_0`` exactly (``c_x = 0, c_0 = 1, var = 0``).

    Parameters
    ----------
    a_t, a_s : 0-d Tensor, float64
        :math:`\\bar\\alpha_t < \\bar\\alpha_s \\le 1`.

    Returns
    -------
    (float, float, float)
        ``(c_x, c_0, var)``.
    """
    a_ts = a_t / a_s
    c0 = a_s.sqrt() * (1 - a_ts) / (1 - a_t)
    cx = a_ts.sqrt() * (1 - a_s) / (1 - a_t)
    var = (1 - a_s) / (1 - a_t) * (1 - a_ts)
    return float(cx), float(c0), float(var.clamp(min=0.0))


class Guidance:
    """How a posterior sampler changes the steps of :func:`sample`; this base class changes nothing.

    Subclasses (:mod:`memprior.guidance`) override one or both hooks:

    * :meth:`denoise` gives the clean estimate :math:`\\hat x_0` at level ``t`` (DPS differentiates
      it; the exact sampler reweights or draws it);
    * :meth:`adjust` changes the iterate after the DDIM/DDPM update to the next level ``s``
      (a guidance step).

    :func:`sample` checks both hooks' outputs (shape, finiteness); a non-finite iterate after
    :meth:`adjust` raises ``FloatingPointError`` naming :attr:`culprit`.
    """

    #: What a non-finite iterate after :meth:`adjust` is blamed on (named in the FloatingPointError).
    culprit = "denoiser"
    #: What to do about it.
    hint = "the plain update overflowed; check the denoiser and the schedule"

    def denoise(self, denoiser, x_t: torch.Tensor, t: int) -> torch.Tensor:
        """:math:`\\hat x_0(x_t)`, ``[B, d]`` in ``x_t``'s dtype: the denoiser's output, without autograd."""
        with torch.no_grad():
            out = denoiser.denoise(x_t.to(getattr(denoiser, "dtype", torch.float64)), t)
        return out.to(x_t.dtype)

    def adjust(self, x_s: torch.Tensor, x0_hat: torch.Tensor, t: int, a_t: torch.Tensor,
               a_s: torch.Tensor) -> torch.Tensor:
        """The iterate at the next level after guidance, ``[B, d]`` (here: ``x_s`` unchanged).

        ``x_s`` is the DDIM/DDPM update from level ``t`` (:math:`\\bar\\alpha_t` = ``a_t``) to the
        next level (``a_s``; 1 after the last level, where ``x_s = x0_hat``).
        """
        return x_s


class TrajectoryRecorder:
    """A ``callback`` for :func:`sample` that keeps the iterate and the clean estimate at every level.

    After the run, :meth:`trajectory` returns ``{"t": LongTensor[S], "x": Tensor[S, n, d],
    "x0_hat": Tensor[S, n, d]}`` (noisiest first), the form :func:`commitment_step` reads.
    """

    def __init__(self):
        self.t: list[int] = []
        self.x: list[torch.Tensor] = []
        self.x0_hat: list[torch.Tensor] = []

    def __call__(self, t: int, x_t: torch.Tensor, x0_hat: torch.Tensor) -> None:
        self.t.append(int(t))
        self.x.append(x_t.detach().clone())
        self.x0_hat.append(x0_hat.detach().clone())

    def trajectory(self) -> dict:
        """The recorded levels, iterates and clean estimates (see the class docstring)."""
        if not self.t:
            raise ValueError("trajectory: nothing recorded yet; pass the recorder as callback= to a sampler")
        return {"t": torch.tensor(self.t, dtype=torch.long), "x": torch.stack(self.x),
                "x0_hat": torch.stack(self.x0_hat)}


def _ddim_update(x, x0, a_t, a_s, eta, generator):
    x64, x064 = x.to(torch.float64), x0.to(torch.float64)
    e = (x64 - a_t.sqrt() * x064) / (1 - a_t).sqrt()
    # DDIM with stochasticity eta (eta = 0: deterministic, eta = 1: DDPM-like)
    var = eta ** 2 * (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)
    mean = a_s.sqrt() * x064 + (1 - a_s - var).clamp(min=0).sqrt() * e
    if float(var) > 0:
        mean = mean + var.sqrt() * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return mean.to(x.dtype)


def _ddpm_update(x, x0, a_t, a_s, generator):
    # ancestral step from t to s < t: a draw of q(x_s | x_t, x0)
    cx, c0, var = ddpm_coefficients(a_t, a_s)
    mean = cx * x.to(torch.float64) + c0 * x0.to(torch.float64)
    if var > 0:
        mean = mean + math.sqrt(var) * torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return mean.to(x.dtype)


def sample(denoiser, schedule: Schedule, x_T, *, step: str = "ddim", eta: float = 0.0,
           guidance: Guidance | None = None, callback=None, steps: int | None = None,
           generator: torch.Generator | None = None, desc: str | None = None) -> torch.Tensor:
    """The reverse-diffusion loop: every sampler of the library runs through it.

    At each visited level ``t`` (next visited level ``s``; :math:`\\bar\\alpha_s = 1` after the last):

    1. ``x0_hat = guidance.denoise(denoiser, x_t, t)`` (default: the denoiser's output);
    2. ``callback(t, x_t, x0_hat)`` if given (:class:`TrajectoryRecorder` records the trajectory);
    3. the update to level ``s``: DDIM, :math:`x_s = \\sqrt{\\bar\\alpha_s}\\hat x_0 +
       \\sqrt{1-\\bar\\alpha_s-\\sigma^2}\\,\\hat\\varepsilon + \\sigma z` with
       :math:`\\sigma^2 = \\eta^2\\frac{1-\\bar\\alpha_s}{1-\\bar\\alpha_t}(1-\\bar\\alpha_t/\\bar\\alpha_s)`,
       or an ancestral DDPM draw of :math:`q(x_s\\mid x_t, \\hat x_0)`; after the last level
       :math:`x = \\hat x_0`;
    4. ``x_s = guidance.adjust(x_s, x0_hat, t, a_t, a_s)`` (default: unchanged).

    Parameters
    ----------
    denoiser : object with ``.denoise(x_t, t)``, ``.eps(x_t, t)``, ``.dim`` (see :func:`check_denoiser`)
    schedule : Schedule
    x_T : Tensor[n, d]
        Starting points at level ``T-1`` (:func:`start_points`).  The iterates keep its dtype; the
        updates are computed in float64.
    step : {"ddim", "ddpm"}
    eta : float >= 0
        DDIM's stochasticity (0: deterministic, 1: DDPM-like); ``step="ddim"`` only.
    guidance : Guidance, optional
    callback : callable ``(t, x_t, x0_hat) -> None``, optional
        Called once per visited level, noisiest first, before the update.
    steps : int, optional
        Visit ``steps`` evenly spaced levels of ``0..T-1`` (default: all ``T``).
    generator : torch.Generator, optional
        The update's noise (DDPM, or DDIM with ``eta > 0``).
    desc : str, optional
        Show a progress bar with this label (never in the built book).

    Returns
    -------
    Tensor[n, d]
        The iterate after the last level: :math:`\\hat x_0` at level 0 (after guidance).
    """
    check_generator(generator)
    dim = check_denoiser(denoiser)
    schedule = check_schedule(schedule)
    x = as_tensor("x_T", x_T, ndim=2)
    if x.shape[1] != dim:
        raise ValueError(f"x_T: expected shape [n, {dim}] (d of the denoiser), got {list(x.shape)}")
    if step not in ("ddim", "ddpm"):
        raise ValueError(f"step: must be 'ddim' or 'ddpm', got {step!r}")
    eta = check_nonneg("eta", eta)
    if step == "ddpm" and eta != 0:
        raise ValueError(f"eta: DDIM's stochasticity, must be 0 with step='ddpm', got {eta!r}")
    if guidance is None:
        guidance = Guidance()
    elif not isinstance(guidance, Guidance):
        raise TypeError(f"guidance: expected a memprior.diffusion.Guidance, got {type(guidance).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable (t, x_t, x0_hat), got {type(callback).__name__}")
    ts = timesteps(schedule, steps)
    ab = schedule.alpha_bar
    one = torch.ones((), dtype=ab.dtype)
    order = range(len(ts))
    jump = 0.0  # how much the last guidance step inflated the iterate (to tell a step size from a denoiser)
    guided = type(guidance) is not Guidance
    for i in (progress(order, desc=desc, total=len(ts)) if desc else order):
        t = ts[i]
        a_t, a_s = ab[t], (ab[ts[i + 1]] if i + 1 < len(ts) else one)
        try:
            x0 = guidance.denoise(denoiser, x, t)
        except FloatingPointError as exc:
            if jump > 1e6 and type(guidance) is not Guidance:
                raise FloatingPointError(f"{guidance.culprit}: the previous guidance step blew the iterate up to "
                                         f"max |x_t| = {float(x.detach().abs().max()):.3g}, where the denoiser failed "
                                         f"at level t={t} ({exc}); {guidance.hint}") from exc
            raise
        x0 = _checked_x0(x0, x, t, guidance, jump)
        if callback is not None:
            callback(t, x, x0)
        if i + 1 == len(ts):
            x_s = x0
        elif step == "ddim":
            x_s = _ddim_update(x, x0, a_t, a_s, eta, generator)
        else:
            x_s = _ddpm_update(x, x0, a_t, a_s, generator)
        x = guidance.adjust(x_s, x0, t, a_t, a_s)
        if not isinstance(x, torch.Tensor) or x.shape != x_s.shape:
            raise ValueError(f"guidance: .adjust must return the iterate's shape {list(x_s.shape)}, got "
                             f"{list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__} at level t={t}")
        guard_finite(x, guidance.culprit, "the iterate after the guidance step", t, guidance.hint)
        if guided:
            jump = float((x - x_s).detach().abs().max()) / (1.0 + float(x_s.detach().abs().max()))
    return x


def _checked_x0(x0, x: torch.Tensor, t: int, guidance: Guidance, jump: float) -> torch.Tensor:
    """The runtime guard on the clean estimate: a tensor of the iterate's shape, finite.

    A non-finite estimate right after a guidance step that blew the iterate up (by more than a factor
    1e6 of its size) is blamed on the guidance's step size, otherwise on the denoiser."""
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"denoiser: .denoise(x_t, t) must return a torch.Tensor, got {type(x0).__name__} at level t={t}")
    if x0.shape != x.shape:
        raise ValueError(f"denoiser: .denoise(x_t, t) must return shape {list(x.shape)} ([n, d], like x_t), got "
                         f"{list(x0.shape)} at level t={t}")
    if not torch.isfinite(x0).all():
        big = float(x.detach().abs().max())
        if jump > 1e6 and type(guidance) is not Guidance:
            guard_finite(x0, guidance.culprit, f"the previous guidance step blew the iterate up to max |x_t| = "
                         f"{big:.3g}, where the denoiser's clean estimate", t, guidance.hint)
        guard_finite(x0, "denoiser", f"the clean estimate .denoise(x_t, t) on iterates with max |x_t| = {big:.3g}",
                     t, "check the denoiser (a diverged network?)")
    return x0


def _callbacks(*fns):
    """One callback calling each of ``fns`` that is not None (None if there are none)."""
    fns = [f for f in fns if f is not None]
    if len(fns) <= 1:
        return fns[0] if fns else None

    def both(t, x, x0):
        for f in fns:
            f(t, x, x0)
    return both


def _run(step, denoiser, schedule, n, generator, x_T, init, steps, eta, return_trajectory, callback):
    x = start_points(denoiser, schedule, n, x_T=x_T, init=init, generator=generator)
    rec = TrajectoryRecorder() if return_trajectory else None
    out = sample(denoiser, schedule, x, step=step, eta=eta, steps=steps, generator=generator,
                 callback=_callbacks(rec, callback))
    return (out, rec.trajectory()) if return_trajectory else out


def ddim_sample(denoiser, schedule: Schedule, n: int, generator: torch.Generator | None = None,
                x_T=None, *, init: str = "marginal", steps: int | None = None, eta: float = 0.0,
                return_trajectory: bool = False, callback=None):
    """Sample with DDIM (Song et al. 2021); deterministic for ``eta = 0``.

    :func:`start_points`, then :func:`sample` with ``step="ddim"``.

    Parameters
    ----------
    denoiser : object with ``.denoise(x_t, t)``, ``.eps(x_t, t)``, ``.dim``
    schedule : Schedule
    n : int
        Number of samples (>= 1).
    generator : torch.Generator, optional
    x_T : Tensor[n, d], optional
        Starting points at level ``T-1``; overrides ``init``.
    init : {"marginal", "standard"}
        ``"marginal"`` (default): draw from the actual terminal marginal of the denoiser's
        training set (``denoiser.x_train``), which is right when ``alpha_bar[T-1] != 0``.
        ``"standard"``: ``N(0, I)``.
    steps : int, optional
        Number of denoiser evaluations on an evenly spaced sub-grid of ``0..T-1``
        (default: all ``T`` levels).
    eta : float
        DDIM stochasticity (0 deterministic).
    return_trajectory : bool
        Also return ``{"t": LongTensor[S], "x": Tensor[S, n, d], "x0_hat": Tensor[S, n, d]}``,
        the iterate and the denoiser output at each visited level (noisiest first).
    callback : callable ``(t, x_t, x0_hat)``, optional
        Called at every visited level (see :func:`sample`).

    Returns
    -------
    Tensor[n, d] (and the trajectory dict if requested)
        :math:`\\hat x_0` at the last level.
    """
    check_generator(generator)
    return _run("ddim", denoiser, schedule, n, generator, x_T, init, steps, eta, return_trajectory, callback)


def ddpm_sample(denoiser, schedule: Schedule, n: int, generator: torch.Generator | None = None,
                x_T=None, *, init: str = "marginal", steps: int | None = None,
                return_trajectory: bool = False, callback=None):
    """Sample with ancestral DDPM steps (Ho et al. 2020).

    Each step draws from :math:`q(x_s \\mid x_t, \\hat x_0)` for the next visited level ``s < t``
    (:func:`sample` with ``step="ddpm"``).  Parameters and return value as in :func:`ddim_sample`.
    """
    check_generator(generator)
    return _run("ddpm", denoiser, schedule, n, generator, x_T, init, steps, 0.0, return_trajectory, callback)


def commitment_step(denoiser: MemorizedDenoiser, trajectory: dict, threshold: float = 0.9) -> torch.Tensor:
    """The level at which each sample commits to one training point.

    A sample has *committed* at level ``t`` when, from ``t`` down to the end, the
    closed-form weight of its final nearest training point exceeds ``threshold``.

    Parameters
    ----------
    denoiser : MemorizedDenoiser
        Supplies the training set and the weights.
    trajectory : dict
        As returned by ``ddim_sample(..., return_trajectory=True)``.
    threshold : float in (0, 1)

    Returns
    -------
    LongTensor[n]
        Commitment level per sample (``T-1``: committed from the start; ``-1``: never).
    """
    if not isinstance(denoiser, MemorizedDenoiser):
        raise TypeError("denoiser: expected a MemorizedDenoiser")
    threshold = check_positive("threshold", threshold, upper=1.0)
    if not isinstance(trajectory, dict) or not {"t", "x"} <= set(trajectory):
        raise TypeError("trajectory: expected the dict returned with return_trajectory=True")
    ts, xs = trajectory["t"], trajectory["x"]
    if "x0_hat" in trajectory:
        final = trajectory["x0_hat"][-1]
    else:
        final = denoiser.denoise(xs[-1], int(ts[-1]))
    target = torch.cdist(final.to(torch.float64), denoiser.x_train, compute_mode="donot_use_mm_for_euclid_dist").argmin(1)  # [n]
    ok = torch.stack([denoiser.weights(x, int(t)).gather(1, target[:, None])[:, 0] > threshold
                      for t, x in zip(ts, xs)])  # [S, n]
    # committed from step index i on: ok[i:].all()
    suffix = torch.flip(torch.cumprod(torch.flip(ok.to(torch.int64), [0]), 0), [0]).bool()  # [S, n]
    out = torch.full((xs.shape[1],), -1, dtype=torch.long)
    for j in range(xs.shape[1]):
        idx = torch.nonzero(suffix[:, j])
        if idx.numel():
            out[j] = ts[int(idx[0])]
    return out


def denoising_loss(denoiser, x_train, schedule: Schedule, t=None, n: int = 2048,
                   generator: torch.Generator | None = None, target: str = "x0",
                   reduction: str = "mean") -> torch.Tensor:
    """Monte Carlo estimate of the empirical denoising loss at each level.

    For each level ``t`` draws ``n`` pairs ``(x_m, eps)`` (``m`` uniform over the training set) and
    averages ``||x0_hat(x_t) - x_m||^2`` (``target="x0"``) or ``||eps_hat(x_t) - eps||^2``
    (``target="eps"``).  The same draws are used at every level and for every denoiser given
    the same generator state, so differences between denoisers are not blurred by Monte Carlo noise.

    Parameters
    ----------
    denoiser : denoiser (``.denoise``, ``.eps``, ``.dim``)
    x_train : Tensor[N, d]
    schedule : Schedule
    t : int or sequence of int, optional
        Levels (default: all ``0..T-1``).
    n : int
        Monte Carlo draws per level.
    generator : torch.Generator, optional
    target : {"x0", "eps"}
    reduction : {"mean", "none"}
        ``"none"`` returns the per-draw squared errors, ``[len(t), n]`` (for paired comparisons).

    Returns
    -------
    Tensor[len(t)], float64: the mean squared error per level (summed over the d coordinates).
    """
    check_generator(generator)
    check_denoiser(denoiser)
    x = as_train(x_train).to(torch.float64)
    schedule = check_schedule(schedule)
    if x.shape[1] != denoiser.dim:
        raise ValueError(f"x_train: expected shape [N, {denoiser.dim}] (the denoiser's d), got {list(x.shape)}")
    n = check_int("n", n, low=1)
    if target not in ("x0", "eps"):
        raise ValueError(f"target: must be 'x0' or 'eps', got {target!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction: must be 'mean' or 'none', got {reduction!r}")
    ts = list(range(schedule.n_steps)) if t is None else \
        [schedule.check_t(v) for v in (t if isinstance(t, (list, tuple, range, np.ndarray)) else [t])]
    if len(ts) == 0:
        raise ValueError("t: need at least one level")
    idx = torch.randint(x.shape[0], (n,), generator=generator)
    eps = torch.randn((n, x.shape[1]), generator=generator, dtype=torch.float64)
    x0 = x[idx]
    dtype = getattr(denoiser, "dtype", torch.float64)
    out = []
    with torch.no_grad():
        for tt in ts:
            xt = schedule.q_sample(x0, tt, eps=eps).to(dtype)
            if target == "x0":
                err = denoiser.denoise(xt, tt).to(torch.float64) - x0
            else:
                err = denoiser.eps(xt, tt).to(torch.float64) - eps
            e2 = (err ** 2).sum(1)
            out.append(e2.mean() if reduction == "mean" else e2)
    return torch.stack(out)


# --------------------------------------------------------------------------------------
# A small trained denoiser
# --------------------------------------------------------------------------------------
class MLPDenoiser(nn.Module):
    """A small MLP that predicts the noise :math:`\\varepsilon` from ``(x_t, t)``.

    Input: ``x_t`` and a sinusoidal embedding of ``t / T``; ``depth`` hidden layers of
    width ``hidden`` with SiLU activations and residual connections.

    Parameters
    ----------
    dim : int
        Data dimension ``d``.
    schedule : Schedule
    hidden : int
        Width (default 128).
    depth : int
        Number of hidden residual blocks (default 3).
    n_freq : int
        Number of sinusoidal time frequencies (default 8).
    x_train : Tensor[N, d], optional
        The training set, kept (as a buffer) so samplers can start from the terminal marginal.

    Notes
    -----
    ``denoise`` and ``eps`` follow the denoiser interface; parameters are float32, inputs of
    any float dtype are accepted and outputs come back in the input dtype.
    """

    def __init__(self, dim: int, schedule: Schedule, hidden: int = 128, depth: int = 3, n_freq: int = 8,
                 x_train=None):
        super().__init__()
        self.dim = check_int("dim", dim, low=1)
        self.schedule = check_schedule(schedule)
        self.hidden = check_int("hidden", hidden, low=1)
        self.depth = check_int("depth", depth, low=0)
        self.n_freq = check_int("n_freq", n_freq, low=1)
        self.dtype = torch.float32
        self.register_buffer("alpha_bar", schedule.alpha_bar.to(torch.float32))
        self.register_buffer("freqs", (2.0 ** torch.arange(self.n_freq, dtype=torch.float32)) * math.pi)
        if x_train is not None:
            xt = as_train(x_train)
            if xt.shape[1] != self.dim:
                raise ValueError(f"x_train: expected shape [N, {self.dim}], got {list(xt.shape)}")
            self.register_buffer("x_train", xt.to(torch.float32))
        else:
            self.x_train = None
        self.inp = nn.Linear(self.dim + 2 * self.n_freq, self.hidden)
        self.blocks = nn.ModuleList(nn.Linear(self.hidden, self.hidden) for _ in range(self.depth))
        self.out = nn.Linear(self.hidden, self.dim)
        self.act = nn.SiLU()

    def _t_rows(self, t, b: int) -> torch.Tensor:
        if isinstance(t, torch.Tensor) and t.numel() > 1:
            if t.is_floating_point() or t.shape != (b,):
                raise ValueError(f"t: expected an integer or a LongTensor of shape [{b}], got {list(t.shape)}")
            if int(t.min()) < 0 or int(t.max()) > self.schedule.n_steps - 1:
                raise ValueError(f"t: entries must be integers in [0, {self.schedule.n_steps - 1}]")
            return t.long()
        return torch.full((b,), self.schedule.check_t(t), dtype=torch.long)

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """Predicted noise, ``[B, d]`` (float32); ``t`` an int or a LongTensor[B]."""
        tt = self._t_rows(t, x_t.shape[0]).to(x_t.device)
        u = (tt.to(torch.float32) + 0.5) / self.schedule.n_steps  # in (0, 1)
        ang = u[:, None] * self.freqs[None, :]
        h = self.act(self.inp(torch.cat([x_t.to(torch.float32), torch.sin(ang), torch.cos(ang)], 1)))
        for lin in self.blocks:
            h = h + self.act(lin(h))
        return self.out(h)

    def _x(self, x_t) -> torch.Tensor:
        x = as_tensor("x_t", x_t, ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"x_t: expected shape [B, {self.dim}], got {list(x.shape)}")
        return x

    def eps(self, x_t, t) -> torch.Tensor:
        """Predicted noise, ``[B, d]``, in ``x_t``'s dtype (differentiable in ``x_t``)."""
        x = self._x(x_t)
        return self.forward(x, t).to(x.dtype)

    def denoise(self, x_t, t) -> torch.Tensor:
        """:math:`\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\hat\\varepsilon)/\\sqrt{\\bar\\alpha_t}`, ``[B, d]``."""
        x = self._x(x_t)
        t = self.schedule.check_t(t)
        ab = self.schedule.alpha_bar[t]
        e = self.forward(x, t).to(torch.float64)
        return ((x.to(torch.float64) - (1 - ab).sqrt() * e) / ab.sqrt()).to(x.dtype)


def cache_dir() -> Path:
    """Directory for cached weights: ``$MEMPRIOR_CACHE`` or ``~/.cache/memprior``."""
    root = os.environ.get("MEMPRIOR_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "memprior"


def _cache_key(x_train: torch.Tensor, schedule: Schedule, cfg: dict) -> str:
    h = hashlib.sha256()
    h.update(x_train.to(torch.float64).contiguous().numpy().tobytes())
    h.update(str(tuple(x_train.shape)).encode())
    h.update(schedule.betas.contiguous().numpy().tobytes())
    h.update(json.dumps(cfg, sort_keys=True).encode())
    h.update(b"memprior-mlp-v1")
    return h.hexdigest()[:24]


def atomic_save(obj, path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (a temporary file in the same folder, then a rename).

    The folder is created if needed; a reader never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def train_denoiser(x_train, schedule: Schedule, *, steps: int = 2000, batch_size: int = 256,
                   lr: float = 2e-3, hidden: int = 128, depth: int = 3, n_freq: int = 8,
                   ema_decay: float = 0.995, seed: int = 0, threads: int | None = 1,
                   cache: bool = True, cache_path=None, log_every: int = 50,
                   snapshot_steps=(), show_progress: bool = True, device=None) -> MLPDenoiser:
    """Train an :class:`MLPDenoiser` on the empirical denoising loss.

    Minimizes :math:`E_{n,t,\\varepsilon}\\|\\varepsilon_\\theta(\\sqrt{\\bar\\alpha_t}x_n +
    \\sqrt{1-\\bar\\alpha_t}\\varepsilon, t) - \\varepsilon\\|^2` with Adam (cosine learning-rate
    decay), ``t`` uniform on ``0..T-1``, minibatches drawn with replacement.  The returned
    network holds the exponential moving average of the weights (torch's
    ``AveragedModel`` with ``get_ema_multi_avg_fn``).

    Parameters
    ----------
    x_train : Tensor[N, d]
        Training set (N >= 1).
    schedule : Schedule
    steps : int
        Number of optimizer steps (>= 1).
    batch_size, lr, hidden, depth, n_freq :
        Optimizer and network sizes.
    ema_decay : float in [0, 1)
        EMA decay (0 keeps the last iterate).
    seed : int
        Seeds the initialization and the minibatches; training is reproducible.
    threads : int or None
        ``torch.set_num_threads`` during training (restored afterwards); default 1, much
        faster for small nets.  ``None`` leaves torch's setting alone.
    cache : bool
        Load the weights from, and save them to, the cache (see :func:`cache_dir`), keyed by
        the data, the schedule and every hyper-parameter.  Files are written atomically.
    cache_path : path, optional
        Explicit cache file (overrides the automatic key).
    log_every : int
        Record the mean loss every ``log_every`` steps.
    snapshot_steps : sequence of int
        Keep copies of the EMA network after these steps (each in ``[1, steps]``), for studying
        the effect of training length (early stopping) from a single run.
    show_progress : bool
        Show a tqdm bar (silent in the built book).
    device : str or torch.device, optional
        Where to train (default the CPU; e.g. ``"cuda"``).  The initialization and the
        minibatches are drawn on the CPU, so every device sees the same random numbers; the
        returned network lives on the CPU.  A device other than the CPU is part of the cache key.

    Returns
    -------
    MLPDenoiser
        In eval mode with frozen parameters; ``.history = {"step": [...], "loss": [...]}``
        (mean training loss over each logging window), ``.from_cache`` (bool) and
        ``.snapshots`` (dict mapping each step of ``snapshot_steps`` to a frozen MLPDenoiser).
    """
    seed = check_seed(seed, "seed")
    x = as_train(x_train).to(torch.float32)
    schedule = check_schedule(schedule)
    steps = check_int("steps", steps, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    lr = check_positive("lr", lr)
    ema_decay = check_nonneg("ema_decay", ema_decay)
    if ema_decay >= 1:
        raise ValueError(f"ema_decay: must be in [0, 1), got {ema_decay}")
    log_every = check_int("log_every", log_every, low=1)
    if threads is not None:
        threads = check_int("threads", threads, low=1)
    snaps = sorted({check_int("snapshot_steps", v, low=1, high=steps) for v in snapshot_steps})
    cfg = dict(steps=steps, batch_size=batch_size, lr=lr, hidden=hidden, depth=depth, n_freq=n_freq,
               ema_decay=ema_decay, seed=seed, snapshots=snaps)
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda', got {device!r}") from err
    if dev.type != "cpu":
        cfg["device"] = dev.type
    path = None
    if cache:
        path = Path(cache_path) if cache_path is not None else \
            cache_dir() / f"mlp-{_cache_key(x, schedule, cfg)}.pt"
        if path.exists():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                model = MLPDenoiser(x.shape[1], schedule, hidden, depth, n_freq, x_train=x)
                model.load_state_dict(state["model"])
                if state.get("cfg") == cfg:
                    model.history = {"step": list(state["history"]["step"]),
                                     "loss": list(state["history"]["loss"])}
                    model.from_cache = True
                    model.snapshots = {}
                    for k, sd in state["snapshots"].items():
                        sm = MLPDenoiser(x.shape[1], schedule, hidden, depth, n_freq, x_train=x)
                        sm.load_state_dict(sd)
                        sm.from_cache = True
                        model.snapshots[int(k)] = _freeze(sm)
                    return _freeze(model)
            except Exception:  # noqa: BLE001  (corrupt or stale file: retrain and overwrite)
                pass

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MLPDenoiser(x.shape[1], schedule, hidden, depth, n_freq, x_train=x).to(dev)
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 0.05)
        gen = torch.Generator().manual_seed(seed + 1)
        ab = schedule.alpha_bar.to(torch.float32).to(dev)
        xd = x.to(dev)
        n, T = x.shape[0], schedule.n_steps
        hist_s, hist_l, acc, cnt = [], [], 0.0, 0
        snapshots = {}
        model.train()
        for step in progress(range(1, steps + 1), desc="training denoiser", total=steps,
                             disable=not show_progress):
            idx = torch.randint(n, (batch_size,), generator=gen)
            t = torch.randint(T, (batch_size,), generator=gen)
            eps = torch.randn((batch_size, x.shape[1]), generator=gen)
            if dev.type != "cpu":
                idx, t, eps = idx.to(dev), t.to(dev), eps.to(dev)
            a = ab[t][:, None]
            xt = a.sqrt() * xd[idx] + (1 - a).sqrt() * eps
            loss = ((model(xt, t) - eps) ** 2).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update_parameters(model)
            lv = float(loss.detach())
            check_diverged(lv, step)
            acc += lv
            cnt += 1
            if step % log_every == 0 or step == steps:
                hist_s.append(step)
                hist_l.append(acc / cnt)
                acc, cnt = 0.0, 0
            if step in snaps:
                sm = copy.deepcopy(ema.module).to("cpu")
                sm.history = {"step": list(hist_s), "loss": list(hist_l)}
                sm.from_cache = False
                snapshots[step] = _freeze(sm)
    finally:
        torch.set_num_threads(old_threads)
    out = copy.deepcopy(ema.module).to("cpu")
    out.history = {"step": hist_s, "loss": hist_l}
    out.from_cache = False
    out.snapshots = snapshots
    if path is not None:
        atomic_save({"model": out.state_dict(), "cfg": cfg, "history": out.history,
                      "snapshots": {int(k): v.state_dict() for k, v in snapshots.items()}}, path)
    return _freeze(out)


def _freeze(model: MLPDenoiser) -> MLPDenoiser:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
