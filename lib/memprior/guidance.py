"""Posterior sampling with a diffusion prior: DPS, the paper's variant, and exact samplers.

Data model: ``y = F(x) + e`` with ``e ~ N(0, gamma^2 I_m)``.  ``forward`` maps a batch
``[B, d] -> [B, m]``; ``y`` has shape ``[m]``.  Time follows :mod:`memprior.diffusion`:
an integer level ``t = 0, ..., T-1`` of a :class:`~memprior.diffusion.Schedule`, with
``x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps`` and ``t = T-1`` the noisiest level.

Samplers
--------
:func:`dps_sample`
    Diffusion posterior sampling (Chung et al. 2023): an ancestral DDPM step, then a step
    down the gradient of the data misfit at the denoised estimate, *differentiated through
    the denoiser* with torch autograd.
:func:`dps_normalized_sample`
    The variant used in the paper (Siahkoohi & Sabeddu 2026): deterministic DDIM, the data
    gradient taken in ``x0_hat`` (the denoiser Jacobian ignored), each sample's step scaled
    to length ``eta``, and a guidance step also after the last denoising step.
:func:`exact_posterior_sample`
    Exact sampling under a memorized prior: the noised posterior is again a mixture over the
    training points, so adding ``log p(y | x_n)`` to the closed-form denoiser's logits gives
    the exact posterior denoiser at every level.
:func:`smc_sample`
    Sequential Monte Carlo with twisting functions (the twisted diffusion sampler of Wu et
    al. 2023): asymptotically exact as the number of particles grows.

Diagnostics
-----------
:func:`nearest_training_point`, :func:`assignment_frequencies`, :func:`tv_distance`,
:func:`tv_to_weights` (total variation to the lookup weights, with a Monte Carlo error bar
and the value an exact sampler would show with as many samples) and :func:`chi2_test`.

All samplers are batched over samples, seeded by a ``torch.Generator`` and computed in
float64 (except the denoiser's own forward pass, which runs in its ``dtype``).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch

from ._checks import (apply_forward, as_data, as_tensor, as_train, check_forward, check_int, check_positive,
                      check_shape, progress)
from .diffusion import Schedule, check_schedule, timesteps
from .mixture import pairwise_sq_dists

__all__ = [
    "dps_sample",
    "dps_normalized_sample",
    "exact_posterior_sample",
    "smc_sample",
    "PosteriorDenoiser",
    "log_likelihoods",
    "posterior_terminal_sample",
    "noisy_likelihoods",
    "nearest_training_point",
    "assignment_frequencies",
    "tv_distance",
    "TVEstimate",
    "tv_to_weights",
    "chi2_test",
]

Forward = Callable[[torch.Tensor], torch.Tensor]
_F64 = torch.float64
_TINY = 1e-300


# ============================================================================ validation
def _check_denoiser(denoiser) -> int:
    for attr in ("denoise", "eps"):
        if not callable(getattr(denoiser, attr, None)):
            raise TypeError(f"denoiser: needs a callable .{attr}(x_t, t); got {type(denoiser).__name__}")
    dim = getattr(denoiser, "dim", None)
    if not isinstance(dim, int) or dim < 1:
        raise TypeError("denoiser: needs an integer attribute .dim >= 1 (the data dimension)")
    return dim


def _pairs(schedule: Schedule, ts: list[int]):
    """``(t, ab_t, ab_s)`` for each visited level ``t`` and the next one ``s`` (``ab_s = 1`` after the last)."""
    ab = schedule.alpha_bar.to(_F64)
    out = []
    for i, t in enumerate(ts):
        a_s = ab[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, dtype=_F64)
        out.append((t, ab[t], a_s))
    return out


def _ddpm_coefs(a_t: torch.Tensor, a_s: torch.Tensor):
    """Mean coefficients and variance of ``q(x_s | x_t, x_0)`` for levels ``s < t``.

    ``mean = c_x x_t + c_0 x_0``, ``var``; with ``a_s = 1`` (after the last level) this is
    ``x_s = x_0`` exactly (``c_x = 0, c_0 = 1, var = 0``).
    """
    a_ts = a_t / a_s
    c0 = a_s.sqrt() * (1 - a_ts) / (1 - a_t)
    cx = a_ts.sqrt() * (1 - a_s) / (1 - a_t)
    var = (1 - a_s) / (1 - a_t) * (1 - a_ts)
    return float(cx), float(c0), float(var.clamp(min=0.0))


def _maybe_progress(items: list, desc: str, show: bool):
    """A progress bar over ``items`` (silent in the built book), or the plain list when ``show`` is False."""
    return progress(items, desc=desc, total=len(items)) if show else items


def _randn(shape, generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=_F64)


def _gumbel_argmax(logits: torch.Tensor, generator) -> torch.Tensor:
    """One categorical draw per row of ``logits [..., N]`` (Gumbel-max trick, log-space)."""
    u = torch.rand(logits.shape, generator=generator, dtype=_F64).clamp(min=1e-300, max=1.0 - 1e-16)
    return torch.argmax(logits - torch.log(-torch.log(u)), dim=-1)


# ============================================================================ likelihood
def log_likelihoods(forward: Forward, x_train, y, gamma: float) -> torch.Tensor:
    """Gaussian log-likelihood of every training example, ``log N(y; F(x_n), gamma^2 I)``.

    Parameters
    ----------
    forward : callable ``[B, d] -> [B, m]``
    x_train : Tensor[N, d]
    y : Tensor[m]
    gamma : float > 0
        Noise standard deviation (units of ``y``).

    Returns
    -------
    Tensor[N], float64
        Normalized log-densities (including ``-m/2 log(2 pi gamma^2)``).  Their softmax is
        :func:`memprior.posterior.lookup_weights`.
    """
    gamma = check_positive("gamma", gamma)
    check_forward(forward)
    x = as_train(x_train).to(_F64)
    yt = as_data(y, _F64)
    with torch.no_grad():
        Fx = apply_forward(forward, x, yt.shape[0], "x_train", dtype=_F64, finite=False)
    if not torch.isfinite(Fx).all():
        raise ValueError("forward: returned NaN or inf on x_train; F must be finite there")
    m = yt.shape[0]
    return -((yt[None, :] - Fx) ** 2).sum(1) / (2 * gamma ** 2) - 0.5 * m * math.log(2 * math.pi * gamma ** 2)


def _gauss_loglik(forward, x0: torch.Tensor, y: torch.Tensor, gamma: float, what: str) -> torch.Tensor:
    """``log N(y; F(x0), gamma^2 I)`` per row, differentiable in ``x0``."""
    r = y[None, :] - apply_forward(forward, x0, y.shape[0], what, dtype=_F64, finite=False)
    m = y.shape[0]
    return -(r ** 2).sum(1) / (2 * gamma ** 2) - 0.5 * m * math.log(2 * math.pi * gamma ** 2)


# ============================================================================ exact (memorized prior)
class PosteriorDenoiser:
    """The exact posterior denoiser :math:`E[x_0 \\mid x_t, y]` of a memorized prior.

    Under the empirical prior :math:`\\frac1N\\sum_n\\delta_{x_n}`,

    .. math::

        p(x_0 = x_n \\mid x_t, y) = \\mathrm{softmax}_n\\Big(
            -\\frac{\\|x_t - \\sqrt{\\bar\\alpha_t}\\,x_n\\|^2}{2(1-\\bar\\alpha_t)} + \\log p(y\\mid x_n)\\Big),

    i.e. the closed-form denoiser's logits plus the log-likelihood of each training point.
    It has the :mod:`memprior.diffusion` denoiser interface (``denoise``, ``eps``, ``dim``,
    ``dtype``, ``x_train``), so :func:`memprior.diffusion.ddim_sample` can use it (start it
    from :func:`posterior_terminal_sample`).

    Parameters
    ----------
    x_train : Tensor[N, d]
    schedule : Schedule
    log_lik : Tensor[N]
        ``log p(y | x_n)`` (additive constants do not matter), e.g. from :func:`log_likelihoods`.
    """

    def __init__(self, x_train, schedule: Schedule, log_lik):
        self.schedule = check_schedule(schedule)
        self.x_train = as_train(x_train).to(_F64)
        self.n, self.dim = self.x_train.shape
        ll = as_tensor("log_lik", log_lik, ndim=1, finite=False).to(_F64)
        check_shape("log_lik", ll, (self.n,))
        if torch.isnan(ll).any() or torch.isposinf(ll).any() or torch.isneginf(ll).all():
            raise ValueError("log_lik: must be finite or -inf, with at least one finite entry")
        self.log_lik = ll
        self.dtype = _F64

    def _x(self, x_t) -> torch.Tensor:
        x = as_tensor("x_t", x_t, ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"x_t: expected shape [B, {self.dim}] (d of x_train), got {list(x.shape)}")
        return x.to(_F64)

    def logits(self, x_t, t) -> torch.Tensor:
        """Unnormalized ``log p(x_0 = x_n | x_t, y)``, shape ``[B, N]``."""
        x = self._x(x_t)
        t = self.schedule.check_t(t)
        ab = self.schedule.alpha_bar[t].to(_F64)
        return -pairwise_sq_dists(x, ab.sqrt() * self.x_train) / (2 * (1 - ab)) + self.log_lik[None, :]

    def weights(self, x_t, t) -> torch.Tensor:
        """``p(x_0 = x_n | x_t, y)``, shape ``[B, N]``; rows sum to one."""
        return torch.softmax(self.logits(x_t, t), dim=1)

    def denoise(self, x_t, t) -> torch.Tensor:
        """:math:`E[x_0 \\mid x_t, y]`, shape ``[B, d]``."""
        return self.weights(x_t, t) @ self.x_train

    def eps(self, x_t, t) -> torch.Tensor:
        """Noise prediction consistent with :meth:`denoise`, shape ``[B, d]``."""
        x = self._x(x_t)
        t = self.schedule.check_t(t)
        ab = self.schedule.alpha_bar[t].to(_F64)
        return (x - ab.sqrt() * self.denoise(x, t)) / (1 - ab).sqrt()

    def __repr__(self) -> str:
        return f"PosteriorDenoiser(N={self.n}, d={self.dim}, {self.schedule!r})"


def posterior_terminal_sample(x_train, schedule: Schedule, log_lik, n: int,
                              generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``n`` points from the noisiest level of the *posterior* under a memorized prior.

    :math:`x_{T-1} = \\sqrt{\\bar\\alpha_{T-1}}\\,x_k + \\sqrt{1-\\bar\\alpha_{T-1}}\\,\\varepsilon`
    with ``k ~ softmax(log_lik)``.  Returns ``Tensor[n, d]`` (float64).
    """
    x = as_train(x_train).to(_F64)
    schedule = check_schedule(schedule)
    n = check_int("n", n, low=1)
    ll = as_tensor("log_lik", log_lik, ndim=1, finite=False).to(_F64)
    check_shape("log_lik", ll, (x.shape[0],))
    k = _gumbel_argmax(ll.expand(n, -1), generator)
    ab = schedule.alpha_bar[-1].to(_F64)
    return ab.sqrt() * x[k] + (1 - ab).sqrt() * _randn((n, x.shape[1]), generator)


def exact_posterior_sample(x_train, forward: Forward, y, gamma: float, schedule: Schedule, n: int,
                           generator: torch.Generator | None = None, *, method: str = "ancestral",
                           steps: int | None = None, x_T=None, return_index: bool = False):
    """Exact posterior sampling under a memorized (empirical) prior.

    The noised posterior is :math:`p(x_t\\mid y) = \\sum_n w_n\\,\\mathcal N(x_t;
    \\sqrt{\\bar\\alpha_t}x_n, (1-\\bar\\alpha_t)I)` with the lookup weights :math:`w_n`, and
    :math:`p(y\\mid x_t) = \\sum_n p(x_0{=}x_n\\mid x_t)\\,p(y\\mid x_n)` exactly.  So the
    posterior denoiser is the closed-form denoiser with ``log p(y | x_n)`` added to its
    logits (:class:`PosteriorDenoiser`), at every level.

    Parameters
    ----------
    x_train : Tensor[N, d]
        The training set (N >= 1).
    forward : callable ``[B, d] -> [B, m]``
    y : Tensor[m]
    gamma : float > 0
        Noise standard deviation.
    schedule : Schedule
    n : int >= 1
        Number of samples.
    generator : torch.Generator, optional
    method : {"ancestral", "ddpm", "ddim"}
        ``"ancestral"`` (default, exact for any schedule and number of steps): at each level
        draw a training index ``k`` from the reweighted softmax and then
        :math:`x_s \\sim q(x_s\\mid x_t, x_0 = x_k)`; the last draw returns ``x_k`` itself.
        ``"ddpm"``: the usual Gaussian DDPM step with the reweighted denoiser's mean.
        ``"ddim"``: deterministic DDIM with the reweighted denoiser.  The last two are exact
        only as the number of steps grows.
    steps : int, optional
        Visit only ``steps`` evenly spaced levels (default: all ``T``).
    x_T : Tensor[n, d], optional
        Start; default: :func:`posterior_terminal_sample`.
    return_index : bool
        Also return the training index each sample ends on (nearest training point for
        ``"ddpm"``/``"ddim"``), ``LongTensor[n]``.

    Returns
    -------
    Tensor[n, d] (and LongTensor[n] if ``return_index``)
    """
    schedule = check_schedule(schedule)
    n = check_int("n", n, low=1)
    if method not in ("ancestral", "ddpm", "ddim"):
        raise ValueError(f"method: must be 'ancestral', 'ddpm' or 'ddim', got {method!r}")
    ll = log_likelihoods(forward, x_train, y, gamma)
    den = PosteriorDenoiser(x_train, schedule, ll)
    xtr = den.x_train
    ts = timesteps(schedule, steps)
    if x_T is None:
        x = posterior_terminal_sample(xtr, schedule, ll, n, generator)
    else:
        x = as_tensor("x_T", x_T, ndim=2).to(_F64)
        check_shape("x_T", x, (n, den.dim))
    k = None
    for t, a_t, a_s in _pairs(schedule, ts):
        cx, c0, var = _ddpm_coefs(a_t, a_s)
        logits = den.logits(x, t)
        if method == "ancestral":
            k = _gumbel_argmax(logits, generator)
            x0 = xtr[k]
        else:
            x0 = torch.softmax(logits, 1) @ xtr
        if method == "ddim":
            e = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
            x = a_s.sqrt() * x0 + (1 - a_s).sqrt() * e
        else:
            x = cx * x + c0 * x0
            if var > 0:
                x = x + math.sqrt(var) * _randn(x.shape, generator)
    if return_index:
        if method != "ancestral":
            k = pairwise_sq_dists(x, xtr).argmin(1)
        return x, k
    return x


def noisy_likelihoods(x_train, forward: Forward, y, gamma: float, schedule: Schedule, x_t, t: int):
    """The exact likelihood of ``y`` given a noisy iterate, and DPS's approximation of it.

    Under a memorized prior,

    .. math::

        \\log p(y\\mid x_t) = \\log \\sum_n w_n(x_t)\\, p(y\\mid x_n)
        \\quad\\text{(exact)}, \\qquad
        \\log p(y\\mid \\hat x_0(x_t)),\\ \\hat x_0 = \\sum_n w_n(x_t)\\,x_n
        \\quad\\text{(DPS)}.

    The difference is the Jensen gap: DPS evaluates the likelihood at the average of the
    training points instead of averaging the likelihood over them.

    Parameters
    ----------
    x_train : Tensor[N, d]
    forward : callable ``[B, d] -> [B, m]``
    y : Tensor[m]
    gamma : float > 0
    schedule : Schedule
    x_t : Tensor[B, d]
        Noisy iterates at level ``t``.
    t : int
        Level in ``[0, T-1]``.

    Returns
    -------
    (Tensor[B], Tensor[B])
        Exact and DPS log-likelihoods (normalized Gaussian densities in ``y``).
    """
    schedule = check_schedule(schedule)
    t = schedule.check_t(t)
    ll = log_likelihoods(forward, x_train, y, gamma)
    xtr = as_train(x_train).to(_F64)
    yt = as_data(y, _F64)
    x = as_tensor("x_t", x_t, ndim=2).to(_F64)
    if x.shape[1] != xtr.shape[1]:
        raise ValueError(f"x_t: expected shape [B, {xtr.shape[1]}] (d of x_train), got {list(x.shape)}")
    ab = schedule.alpha_bar[t].to(_F64)
    lw = torch.log_softmax(-pairwise_sq_dists(x, ab.sqrt() * xtr) / (2 * (1 - ab)), 1)
    exact = torch.logsumexp(lw + ll[None, :], 1)
    with torch.no_grad():
        dps = _gauss_loglik(forward, lw.exp() @ xtr, yt, gamma, "x0_hat")
    return exact, dps


# ============================================================================ DPS (Chung et al.)
def _dps_init(denoiser, schedule, n, generator, x_T, dim):
    if x_T is not None:
        x = as_tensor("x_T", x_T, ndim=2).to(_F64)
        check_shape("x_T", x, (n, dim))
        return x.clone()
    xt = getattr(denoiser, "x_train", None)
    if xt is None:
        raise ValueError("x_T: the denoiser has no .x_train to draw the terminal marginal from; pass x_T [n, d]")
    from .diffusion import terminal_sample
    return terminal_sample(xt, schedule, n, generator=generator, dtype=_F64)


def _denoise(denoiser, x: torch.Tensor, t: int) -> torch.Tensor:
    dtype = getattr(denoiser, "dtype", _F64)
    out = denoiser.denoise(x.to(dtype), t)
    return out.to(_F64)


def dps_sample(denoiser, schedule: Schedule, forward: Forward, y, gamma: float, n: int, zeta: float = 1.0,
               generator: torch.Generator | None = None, *, rule: str = "chung", x_T=None,
               steps: int | None = None, return_info: bool = False, show_progress: bool = True):
    """Diffusion posterior sampling (DPS) of Chung et al. (2023).

    At each visited level ``t`` (next level ``s``):

    1. :math:`\\hat x_0 = D(x_t, t)` with autograd on, :math:`r = y - F(\\hat x_0)`;
    2. ancestral DDPM step :math:`x_s' \\sim q(x_s \\mid x_t, \\hat x_0)`;
    3. guidance :math:`x_s = x_s' - \\zeta_t\\,\\nabla_{x_t}\\|r\\|^2`, the gradient taken
       *through the denoiser*.

    With ``rule="chung"`` (their Algorithm 1 and step rule)
    :math:`\\zeta_t = \\zeta'/\\|r\\|`, so the step is :math:`2\\zeta'\\nabla_{x_t}\\|r\\|`
    (their code writes it as ``scale * grad ||r||``, i.e. ``scale = 2 zeta'``); ``gamma``
    does not enter the step.  With ``rule="plugin"`` the step is ``zeta`` times the one that
    would be exact if :math:`p(y\\mid x_t)` were :math:`\\mathcal N(y; F(\\hat x_0), \\gamma^2 I)`:
    :math:`\\zeta_t = \\zeta\\,\\frac{1-\\bar\\alpha_t/\\bar\\alpha_s}{\\sqrt{\\bar\\alpha_t/\\bar\\alpha_s}}
    \\frac{1}{2\\gamma^2}`.  With ``zeta = 1`` the only approximation left is then the
    Jensen gap (the likelihood evaluated at :math:`E[x_0\\mid x_t]` instead of averaged).

    Parameters
    ----------
    denoiser : object with ``.denoise(x_t, t)``, ``.eps``, ``.dim`` (differentiable in ``x_t``)
    schedule : Schedule
    forward : callable ``[B, d] -> [B, m]`` (differentiable with torch)
    y : Tensor[m]
    gamma : float > 0
        Noise standard deviation (used by ``rule="plugin"``; validated always).
    n : int >= 1
    zeta : float > 0
        Step size :math:`\\zeta'` (``"chung"``) or multiplier of the plug-in step (``"plugin"``).
    generator : torch.Generator, optional
    rule : {"chung", "plugin"}
    x_T : Tensor[n, d], optional
        Start; default: the prior's terminal marginal (needs ``denoiser.x_train``).
    steps : int, optional
        Visit only ``steps`` evenly spaced levels (default all ``T``).
    return_info : bool
        Also return ``{"x0_hat": Tensor[n, d]`` (denoiser output at the last level),
        ``"residual": Tensor[S, n]`` (``||r||`` per level), ``"step": Tensor[S, n]``
        (length of each guidance step)``}``.
    show_progress : bool
        Show a progress bar over the levels (never in the built book).

    Returns
    -------
    Tensor[n, d] (and the info dict if requested)
    """
    dim = _check_denoiser(denoiser)
    schedule = check_schedule(schedule)
    check_forward(forward)
    gamma = check_positive("gamma", gamma)
    n = check_int("n", n, low=1)
    zeta = check_positive("zeta", zeta)
    if rule not in ("chung", "plugin"):
        raise ValueError(f"rule: must be 'chung' or 'plugin', got {rule!r}")
    yt = as_data(y, _F64)
    ts = timesteps(schedule, steps)
    x = _dps_init(denoiser, schedule, n, generator, x_T, dim)
    res_hist, step_hist = [], []
    x0 = x
    for t, a_t, a_s in _maybe_progress(_pairs(schedule, ts), "DPS", show_progress):
        cx, c0, var = _ddpm_coefs(a_t, a_s)
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            x0 = _denoise(denoiser, xr, t)
            r = yt[None, :] - apply_forward(forward, x0, yt.shape[0], "x0_hat", dtype=_F64, finite=False)
            sq = (r ** 2).sum(1)
            (grad,) = torch.autograd.grad(sq.sum(), xr)
        x0 = x0.detach()
        sq = sq.detach()
        if rule == "chung":
            coef = zeta / sq.sqrt().clamp(min=_TINY)
        else:
            a_ts = a_t / a_s
            coef = torch.full_like(sq, zeta * float((1 - a_ts) / a_ts.sqrt()) / (2 * gamma ** 2))
        delta = coef[:, None] * grad
        x = cx * x + c0 * x0
        if var > 0:
            x = x + math.sqrt(var) * _randn(x.shape, generator)
        x = x - delta
        if not torch.isfinite(x).all():
            raise FloatingPointError(f"dps_sample: non-finite iterate at level t={t}; reduce zeta (got {zeta})")
        if return_info:
            res_hist.append(sq.sqrt())
            step_hist.append(delta.norm(dim=1))
    if return_info:
        return x, {"x0_hat": x0, "residual": torch.stack(res_hist), "step": torch.stack(step_hist),
                   "t": torch.tensor(ts, dtype=torch.long)}
    return x


# ============================================================================ the paper's variant
def dps_normalized_sample(denoiser, schedule: Schedule, forward: Forward, y, n: int, eta: float = 0.05,
                          generator: torch.Generator | None = None, *, x_T=None, steps: int | None = None,
                          return_info: bool = False, show_progress: bool = True):
    """The normalized-gradient DPS variant of the paper (Siahkoohi & Sabeddu 2026).

    At each visited level ``t`` (next level ``s``, with :math:`\\bar\\alpha_s = 1` after the last):

    1. :math:`\\hat x_0 = D(x_t, t)` (no autograd through the denoiser);
    2. deterministic DDIM: :math:`x_s' = \\sqrt{\\bar\\alpha_s}\\,\\hat x_0 + \\sqrt{1-\\bar\\alpha_s}\\,\\hat\\varepsilon`;
    3. :math:`g = \\nabla_{\\hat x_0}\\|y - F(\\hat x_0)\\|^2 / \\sqrt{\\bar\\alpha_t}` (the denoiser
       Jacobian replaced by :math:`I/\\sqrt{\\bar\\alpha_t}`);
    4. :math:`x_s = x_s' - \\eta\\, g/\\|g\\|` per sample (no step where ``g = 0``).

    The last step is applied after the final denoising, so every returned sample lies at
    distance exactly ``eta`` from the denoiser's last output (where ``g != 0``).  Because of
    step 4, the factor :math:`1/\\sqrt{\\bar\\alpha_t}` of step 3 has no effect.

    Parameters
    ----------
    denoiser : object with ``.denoise(x_t, t)``, ``.eps``, ``.dim``
    schedule : Schedule
    forward : callable ``[B, d] -> [B, m]`` (differentiable with torch)
    y : Tensor[m]
    n : int >= 1
    eta : float > 0
        Length of every guidance step (units of x; the paper uses 0.02-0.07).
    generator : torch.Generator, optional
        Used only to draw the start.
    x_T : Tensor[n, d], optional
        Start; default: the prior's terminal marginal (needs ``denoiser.x_train``).
    steps : int, optional
        Visit only ``steps`` evenly spaced levels.
    return_info : bool
        Also return ``{"x0_hat": Tensor[n, d]}``, the denoiser output at the last level.
    show_progress : bool
        Show a progress bar over the levels (never in the built book).

    Returns
    -------
    Tensor[n, d] (and the info dict if requested)
    """
    dim = _check_denoiser(denoiser)
    schedule = check_schedule(schedule)
    check_forward(forward)
    n = check_int("n", n, low=1)
    eta = check_positive("eta", eta)
    yt = as_data(y, _F64)
    ts = timesteps(schedule, steps)
    x = _dps_init(denoiser, schedule, n, generator, x_T, dim)
    x0 = x
    for t, a_t, a_s in _maybe_progress(_pairs(schedule, ts), "DPS (normalized)", show_progress):
        with torch.no_grad():
            x0 = _denoise(denoiser, x, t)
        e = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        x_next = a_s.sqrt() * x0 + (1 - a_s).sqrt() * e
        x0r = x0.detach().requires_grad_(True)
        with torch.enable_grad():
            r = yt[None, :] - apply_forward(forward, x0r, yt.shape[0], "x0_hat", dtype=_F64, finite=False)
            (g,) = torch.autograd.grad((r ** 2).sum(), x0r)
        g = g / a_t.sqrt()
        gn = g.norm(dim=1, keepdim=True)
        direction = torch.where(gn > 0, g / gn.clamp(min=_TINY), torch.zeros_like(g))
        x = x_next - eta * direction
        if not torch.isfinite(x).all():
            raise FloatingPointError(f"dps_normalized_sample: non-finite iterate at level t={t}")
    if return_info:
        return x, {"x0_hat": x0}
    return x


# ============================================================================ SMC / TDS
def _log_normal_kernel(x_new: torch.Tensor, mean: torch.Tensor, var: float) -> torch.Tensor:
    """``log N(x_new; mean, var I)`` up to the constant ``-d/2 log(2 pi var)`` (it cancels in ratios)."""
    return -((x_new - mean) ** 2).sum(-1) / (2 * var)


def _systematic_resample(logw: torch.Tensor, generator) -> torch.Tensor:
    """Systematic resampling per row of ``logw [R, K]`` (normalized log-weights); indices ``[R, K]``."""
    R, K = logw.shape
    cw = torch.cumsum(torch.softmax(logw, 1), 1)
    cw[:, -1] = 1.0
    u = (torch.rand((R, 1), generator=generator, dtype=_F64) + torch.arange(K, dtype=_F64)[None, :]) / K
    return torch.searchsorted(cw, u).clamp(max=K - 1)


def smc_sample(x_train, forward: Forward, y, gamma: float, schedule: Schedule, n: int, n_particles: int = 16,
               generator: torch.Generator | None = None, *, kernel: str = "mixture", ess_threshold: float = 0.5,
               steps: int | None = None, return_info: bool = False, show_progress: bool = True):
    """Sequential Monte Carlo with twisting (the twisted diffusion sampler of Wu et al. 2023).

    ``n`` independent particle systems of ``n_particles`` particles each run the reverse
    diffusion of the memorized prior; each returns one particle drawn by its final weights,
    so the ``n`` samples are i.i.d.  The twisting function is DPS's approximation
    :math:`\\tilde p_t(y\\mid x_t) = \\mathcal N(y; F(\\hat x_0(x_t)), \\gamma^2 I)`; particles
    are proposed from the reverse kernel shifted by :math:`\\sigma_t^2\\nabla\\log\\tilde p_t`
    and weighted by

    .. math::

        \\frac{p(x_s\\mid x_t)\\,\\tilde p_s(y\\mid x_s)}{\\tilde p_t(y\\mid x_t)\\,q(x_s\\mid x_t, y)},

    which corrects the twisting's Jensen gap: as ``n_particles`` grows the output law tends
    to the exact posterior of the model.

    Parameters
    ----------
    x_train : Tensor[N, d]
        The training set of the memorized prior.
    forward : callable ``[B, d] -> [B, m]`` (differentiable with torch)
    y : Tensor[m]
    gamma : float > 0
    schedule : Schedule
    n : int >= 1
        Number of (independent) samples.
    n_particles : int >= 1
        Particles per system.
    generator : torch.Generator, optional
    kernel : {"mixture", "gaussian"}
        The prior's reverse kernel.  ``"mixture"`` (default): the exact reverse kernel of the
        memorized prior, :math:`\\sum_n p(x_0{=}x_n\\mid x_t)\\,q(x_s\\mid x_t, x_n)`, whose
        final level is a draw of a training point; the target is then exactly the lookup
        posterior.  ``"gaussian"``: the DDPM kernel :math:`q(x_s\\mid x_t, \\hat x_0)` used
        with a learned denoiser; the target is the posterior of that DDPM model, which is
        close to, but not exactly, the lookup posterior.
    ess_threshold : float in (0, 1]
        Resample (systematically) a system when its effective sample size falls below
        ``ess_threshold * n_particles``.
    steps : int, optional
        Visit only ``steps`` evenly spaced levels.
    return_info : bool
        Also return ``{"log_evidence": Tensor[n]`` (each system's estimate of
        :math:`\\log p(y)`), ``"ess": Tensor[S, n]`` (ESS fraction after each step),
        ``"n_resample": LongTensor[n]``, ``"index": LongTensor[n]`` (training index of each
        sample, ``kernel="mixture"`` only; ``-1`` otherwise)``}``.
    show_progress : bool
        Show a progress bar over the levels (never in the built book).

    Returns
    -------
    Tensor[n, d] (and the info dict if requested)
    """
    schedule = check_schedule(schedule)
    n = check_int("n", n, low=1)
    K = check_int("n_particles", n_particles, low=1)
    ess_threshold = check_positive("ess_threshold", ess_threshold, upper=1.0)
    if kernel not in ("mixture", "gaussian"):
        raise ValueError(f"kernel: must be 'mixture' or 'gaussian', got {kernel!r}")
    ll = log_likelihoods(forward, x_train, y, gamma)  # validates forward, x_train, y, gamma
    xtr = as_train(x_train).to(_F64)
    yt = as_data(y, _F64)
    N, d = xtr.shape
    ab = schedule.alpha_bar.to(_F64)
    ts = timesteps(schedule, steps)
    R = n * K

    def prior_logits(x, t):
        a = ab[t]
        return -pairwise_sq_dists(x, a.sqrt() * xtr) / (2 * (1 - a))

    def twist(x, t):
        """log p~_t(y | x), its gradient, and the prior logits at level t."""
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            lg = prior_logits(xr, t)
            x0 = torch.softmax(lg, 1) @ xtr
            lt = _gauss_loglik(forward, x0, yt, gamma, "x0_hat")
            (g,) = torch.autograd.grad(lt.sum(), xr)
        return lt.detach(), g, lg.detach(), x0.detach()

    # start: the prior's terminal marginal, weighted by the twist
    k0 = torch.randint(N, (R,), generator=generator)
    x = ab[ts[0]].sqrt() * xtr[k0] + (1 - ab[ts[0]]).sqrt() * _randn((R, d), generator)
    lt, g, lg, x0 = twist(x, ts[0])
    logw = torch.full((n, K), -math.log(K), dtype=_F64)
    log_z = torch.zeros(n, dtype=_F64)
    inc = lt.view(n, K)
    log_z += torch.logsumexp(logw + inc, 1)
    logw = torch.log_softmax(logw + inc, 1)
    n_res = torch.zeros(n, dtype=torch.long)
    ess_hist = []
    index = torch.full((n,), -1, dtype=torch.long)
    pairs = _pairs(schedule, ts)

    def maybe_resample(x, lt, g, lg, x0, logw, n_res):
        ess = 1.0 / torch.exp(torch.logsumexp(2 * logw, 1))  # [n]
        need = ess < ess_threshold * K
        if need.any():
            idx = _systematic_resample(logw[need], generator)  # [r, K]
            base = torch.arange(n)[need][:, None] * K
            flat = (base + idx).reshape(-1)
            rows = (base + torch.arange(K)[None, :]).reshape(-1)
            x, lt, g, lg, x0 = (v.clone() for v in (x, lt, g, lg, x0))
            x[rows], lt[rows], g[rows], lg[rows], x0[rows] = x[flat], lt[flat], g[flat], lg[flat], x0[flat]
            logw = logw.clone()
            logw[need] = -math.log(K)
            n_res = n_res + need.long()
        return x, lt, g, lg, x0, logw, n_res, ess

    for i, (t, a_t, a_s) in enumerate(_maybe_progress(pairs, "SMC", show_progress)):
        x, lt, g, lg, x0, logw, n_res, ess = maybe_resample(x, lt, g, lg, x0, logw, n_res)
        cx, c0, var = _ddpm_coefs(a_t, a_s)
        last = i == len(pairs) - 1
        if not last:
            shift = var * g
            if kernel == "gaussian":
                mean = cx * x + c0 * x0
                x_new = mean + shift + math.sqrt(var) * _randn(x.shape, generator)
                log_p = _log_normal_kernel(x_new, mean, var)
                log_q = _log_normal_kernel(x_new, mean + shift, var)
            else:
                lw = torch.log_softmax(lg, 1)  # [R, N]
                k = _gumbel_argmax(lw, generator)
                x_new = cx * x + c0 * xtr[k] + shift + math.sqrt(var) * _randn(x.shape, generator)
                means = cx * x[:, None, :] + c0 * xtr[None, :, :]  # [R, N, d]
                log_p = torch.logsumexp(lw + _log_normal_kernel(x_new[:, None, :], means, var), 1)
                log_q = torch.logsumexp(lw + _log_normal_kernel(x_new[:, None, :], means + shift[:, None, :], var), 1)
            t_next = ts[i + 1]
            lt_new, g, lg, x0 = twist(x_new, t_next)
            inc = (log_p + lt_new - lt - log_q).view(n, K)
            x, lt = x_new, lt_new
        else:
            # last level -> clean sample
            if kernel == "gaussian":
                x = x0
                inc = (_gauss_loglik(forward, x0, yt, gamma, "x0_hat") - lt).view(n, K)
                k_last = None
            else:
                lw = torch.log_softmax(lg, 1) + ll[None, :]
                k_last = _gumbel_argmax(lw, generator)
                x = xtr[k_last]
                inc = (torch.logsumexp(lw, 1) - lt).view(n, K)
        if not torch.isfinite(inc).all():
            raise FloatingPointError(f"smc_sample: non-finite incremental weight at level t={t}")
        log_z += torch.logsumexp(logw + inc, 1)
        logw = torch.log_softmax(logw + inc, 1)
        ess_hist.append(1.0 / torch.exp(torch.logsumexp(2 * logw, 1)) / K)
    pick = _gumbel_argmax(logw, generator)  # [n]
    rows = torch.arange(n) * K + pick
    out = x[rows]
    if kernel == "mixture":
        index = k_last[rows]
    if return_info:
        return out, {"log_evidence": log_z, "ess": torch.stack(ess_hist), "n_resample": n_res, "index": index}
    return out


# ============================================================================ diagnostics
def nearest_training_point(samples, x_train):
    """Index of and distance to each sample's nearest training point.

    Parameters
    ----------
    samples : Tensor[B, d]
    x_train : Tensor[N, d]

    Returns
    -------
    (LongTensor[B], Tensor[B])
        Index of the nearest training point, and the Euclidean distance to it.
    """
    xtr = as_train(x_train).to(_F64)
    s = as_tensor("samples", samples, ndim=2).to(_F64)
    if s.shape[0] < 1:
        raise ValueError("samples: need at least one sample, got shape " + str(list(s.shape)))
    if s.shape[1] != xtr.shape[1]:
        raise ValueError(f"samples: expected shape [B, {xtr.shape[1]}] (d of x_train), got {list(s.shape)}")
    d2 = pairwise_sq_dists(s, xtr)
    dmin, idx = d2.min(1)
    return idx, dmin.clamp(min=0).sqrt()


def assignment_frequencies(samples, x_train) -> torch.Tensor:
    """Fraction of samples whose nearest training point is ``x_n``, shape ``[N]`` (sums to one)."""
    idx, _ = nearest_training_point(samples, x_train)
    N = as_train(x_train).to(_F64).shape[0]
    return torch.bincount(idx, minlength=N).to(_F64) / idx.numel()


def tv_distance(p, q) -> float:
    """Total-variation distance ``0.5 * sum |p - q|`` between two probability vectors ``[N]``."""
    p = as_tensor("p", p, ndim=1).to(_F64)
    q = as_tensor("q", q, ndim=1).to(_F64)
    if p.shape != q.shape:
        raise ValueError(f"p, q: need equal shapes, got {list(p.shape)} and {list(q.shape)}")
    for name, v in (("p", p), ("q", q)):
        if (v < 0).any() or abs(float(v.sum()) - 1.0) > 1e-6:
            raise ValueError(f"{name}: must be non-negative and sum to 1 (sum = {float(v.sum()):.6g})")
    return 0.5 * float((p - q).abs().sum())


class TVEstimate(NamedTuple):
    """Total variation between sample frequencies and target weights, with Monte Carlo context.

    Attributes
    ----------
    tv : float
        ``TV(frequencies, weights)``.
    se : float
        Bootstrap standard error of ``tv`` (counts redrawn from the observed frequencies).
    floor : float
        Mean TV an exact sampler would show with the same number of samples (counts drawn
        from ``weights``): the value below which ``tv`` cannot be told from zero.
    n : int
        Number of samples.
    frequencies : Tensor[N]
    """

    tv: float
    se: float
    floor: float
    n: int
    frequencies: torch.Tensor


def tv_to_weights(samples, x_train, weights, n_boot: int = 400,
                  generator: torch.Generator | None = None) -> TVEstimate:
    """Assign samples to their nearest training points and compare with ``weights``.

    Parameters
    ----------
    samples : Tensor[B, d]
    x_train : Tensor[N, d]
    weights : Tensor[N]
        Target probabilities (e.g. :func:`memprior.posterior.lookup_weights`).
    n_boot : int >= 2
        Multinomial bootstrap replicates for ``se`` and ``floor``.
    generator : torch.Generator, optional

    Returns
    -------
    TVEstimate
    """
    n_boot = check_int("n_boot", n_boot, low=2)
    freq = assignment_frequencies(samples, x_train)
    w = as_tensor("weights", weights, ndim=1).to(_F64)
    check_shape("weights", w, (freq.shape[0],))
    tv = tv_distance(freq, w)
    B = int(as_tensor("samples", samples, ndim=2).shape[0])

    def boot(p):
        counts = torch.stack([torch.bincount(torch.multinomial(p, B, replacement=True, generator=generator),
                                             minlength=p.shape[0]) for _ in range(n_boot)]).to(_F64)
        return 0.5 * (counts / B - w[None, :]).abs().sum(1)

    tv_b = boot(freq)
    floor = boot(w / w.sum())
    return TVEstimate(tv=tv, se=float(tv_b.std()), floor=float(floor.mean()), n=B, frequencies=freq)


def chi2_test(samples, x_train, weights, min_expected: float = 5.0):
    """Pearson chi-square test of the nearest-training-point counts against ``weights``.

    Cells with expected count below ``min_expected`` are pooled into one cell (and that
    cell into the smallest other one if it is still too small).

    Returns
    -------
    (float, int, float)
        Statistic, degrees of freedom and p-value (``p = 1`` when fewer than two cells remain).
    """
    from scipy import stats

    min_expected = check_positive("min_expected", min_expected)
    freq = assignment_frequencies(samples, x_train)
    B = int(as_tensor("samples", samples, ndim=2).shape[0])
    w = as_tensor("weights", weights, ndim=1).to(_F64)
    check_shape("weights", w, (freq.shape[0],))
    obs = (freq * B).round().numpy()
    exp = (w / w.sum() * B).numpy()
    big = exp >= min_expected
    o = list(obs[big])
    e = list(exp[big])
    if (~big).any():
        o_small, e_small = float(obs[~big].sum()), float(exp[~big].sum())
        if e_small >= min_expected or not e:
            o.append(o_small)
            e.append(e_small)
        else:
            j = int(np.argmin(e))
            o[j] += o_small
            e[j] += e_small
    if len(o) < 2:
        return 0.0, 0, 1.0
    stat, p = stats.chisquare(np.asarray(o), np.asarray(e))
    return float(stat), len(o) - 1, float(p)
