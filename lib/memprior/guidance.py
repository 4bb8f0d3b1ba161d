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
    to length ``step_size``, and a guidance step also after the last denoising step.
:func:`exact_posterior_sample`
    Exact sampling under a memorized prior: the noised posterior is again a mixture over the
    training points, so adding ``log p(y | x_n)`` to the closed-form denoiser's logits gives
    the exact posterior denoiser at every level.
:func:`smc_sample`
    Sequential Monte Carlo with twisting functions (the twisted diffusion sampler of Wu et
    al. 2023): asymptotically exact as the number of particles grows.

Diagnostics
-----------
:func:`assignment_frequencies` (by :func:`memprior.metrics.nearest`), :func:`tv_distance`,
:func:`tv_to_weights` (total variation to the lookup weights, with a Monte Carlo error bar
and the value an exact sampler would show with as many samples) and :func:`chi2_test`.

All samplers but SMC run through the one reverse-diffusion loop :func:`memprior.diffusion.sample`,
with a :class:`~memprior.diffusion.Guidance` object each (:class:`DPSGuidance`,
:class:`NormalizedGuidance`, :class:`ExactGuidance`).  All are batched over samples, seeded by a
``torch.Generator`` and computed in float64 (except the denoiser's own forward pass, which runs in
its ``dtype``).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch

from ._checks import (apply_forward, as_data, as_tensor, as_train, check_forward, check_generator, check_int,
                      check_log_weights, check_positive, check_shape, guard_finite, probe_forward, progress)
from .diffusion import (Guidance, MemorizedDenoiser, Schedule, check_denoiser, check_schedule, ddpm_coefficients,
                        sample, start_points, timesteps)
from .metrics import nearest
from .mixture import gaussian_logits, pairwise_sq_dists

__all__ = [
    "dps_sample",
    "dps_normalized_sample",
    "exact_posterior_sample",
    "smc_sample",
    "PosteriorDenoiser",
    "ExactGuidance",
    "DPSGuidance",
    "NormalizedGuidance",
    "log_likelihoods",
    "posterior_terminal_sample",
    "noisy_likelihoods",
    "assignment_frequencies",
    "tv_distance",
    "TVEstimate",
    "tv_to_weights",
    "chi2_test",
]

Forward = Callable[[torch.Tensor], torch.Tensor]
_F64 = torch.float64
_TINY = 1e-300


# ============================================================================ helpers
def _randn(shape, generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=_F64)


def _gumbel_argmax(logits: torch.Tensor, generator) -> torch.Tensor:
    """One categorical draw per row of ``logits [..., N]`` (Gumbel-max trick, log-space)."""
    u = torch.rand(logits.shape, generator=generator, dtype=_F64).clamp(min=1e-300, max=1.0 - 1e-16)
    return torch.argmax(logits - torch.log(-torch.log(u)), dim=-1)


def _probe(forward, denoiser, x: torch.Tensor, m: int) -> None:
    """Probe the forward map once (output shape, finiteness, differentiability) before a guided run:
    on the denoiser's training set if it has one (where the clean estimates live), else on the start."""
    xt = getattr(denoiser, "x_train", None)
    at = "x_train" if isinstance(xt, torch.Tensor) and xt.dim() == 2 and xt.shape[1] == x.shape[1] else "x_T"
    probe_forward(forward, xt.to(_F64) if at == "x_train" else x, m, differentiable=True, what=at)


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
        Normalized log-densities (including ``-m/2 log(2 pi gamma^2)``), by
        :func:`memprior.mixture.gaussian_logits`.  Their softmax is
        :func:`memprior.posterior.lookup_weights`.
    """
    gamma = check_positive("gamma", gamma, square=True)
    check_forward(forward)
    x = as_train(x_train).to(_F64)
    yt = as_data(y, _F64)
    with torch.no_grad():
        Fx = apply_forward(forward, x, yt.shape[0], "x_train", dtype=_F64, finite=False)
    if not torch.isfinite(Fx).all():
        raise ValueError("forward: returned NaN or inf on x_train; F must be finite there")
    return gaussian_logits(yt[None, :], Fx, gamma ** 2, normalized=True, name="gamma")[0]


def _gauss_loglik(forward, x0: torch.Tensor, y: torch.Tensor, gamma: float, what: str) -> torch.Tensor:
    """``log N(y; F(x0), gamma^2 I)`` per row, differentiable in ``x0``."""
    Fx = apply_forward(forward, x0, y.shape[0], what, dtype=_F64, finite=False)
    return gaussian_logits(y[None, :], Fx, gamma ** 2, normalized=True, name="gamma")[0]


# ============================================================================ exact (memorized prior)
class PosteriorDenoiser(MemorizedDenoiser):
    """The exact posterior denoiser :math:`E[x_0 \\mid x_t, y]` of a memorized prior.

    Under the empirical prior :math:`\\frac1N\\sum_n\\delta_{x_n}`,

    .. math::

        p(x_0 = x_n \\mid x_t, y) = \\mathrm{softmax}_n\\Big(
            -\\frac{\\|x_t - \\sqrt{\\bar\\alpha_t}\\,x_n\\|^2}{2(1-\\bar\\alpha_t)} + \\log p(y\\mid x_n)\\Big),

    i.e. the closed-form denoiser's logits (:meth:`~memprior.diffusion.MemorizedDenoiser.logits`) plus the
    log-likelihood of each training point; ``weights``, ``denoise`` and ``eps`` follow from them.
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
        super().__init__(x_train, schedule)
        ll = as_tensor("log_lik", log_lik, ndim=1, finite=False).to(_F64)
        check_shape("log_lik", ll, (self.n,))
        if torch.isnan(ll).any() or torch.isposinf(ll).any() or torch.isneginf(ll).all():
            raise ValueError("log_lik: must be finite or -inf, with at least one finite entry")
        self.log_lik = ll

    def logits(self, x_t, t) -> torch.Tensor:
        """Unnormalized ``log p(x_0 = x_n | x_t, y)``, shape ``[B, N]``."""
        return super().logits(x_t, t) + self.log_lik[None, :]

    def __repr__(self) -> str:
        return f"PosteriorDenoiser(N={self.n}, d={self.dim}, {self.schedule!r})"


class ExactGuidance(Guidance):
    """The exact reweighting of a memorized prior, as a :class:`memprior.diffusion.Guidance`.

    The clean estimate at level ``t`` comes from the prior denoiser's logits plus ``log p(y | x_n)``
    (the denoiser must be a :class:`memprior.diffusion.MemorizedDenoiser`): a training point drawn
    from them (``draw=True``, the ancestral sampler; the drawn indices are kept in ``.index``) or
    their mean (``draw=False``).

    Parameters
    ----------
    log_lik : Tensor[N]
        ``log p(y | x_n)``, e.g. from :func:`log_likelihoods`.
    draw : bool
    generator : torch.Generator, optional
        For the draws.
    """

    def __init__(self, log_lik, *, draw: bool = True, generator: torch.Generator | None = None):
        check_generator(generator)
        ll = check_log_weights("log_lik", log_lik).to(_F64)
        if not isinstance(draw, bool):
            raise TypeError(f"draw: expected True or False, got {type(draw).__name__}")
        self.log_lik, self.draw, self.generator = ll, draw, generator
        self.index = None

    culprit = "log_lik"
    hint = "the reweighted update overflowed"

    def denoise(self, denoiser, x_t, t):
        if not isinstance(denoiser, MemorizedDenoiser):
            raise TypeError(f"denoiser: the exact reweighting needs a memprior.diffusion.MemorizedDenoiser, "
                            f"got {type(denoiser).__name__}")
        check_shape("log_lik", self.log_lik, (denoiser.n,))
        logits = denoiser.logits(x_t, t) + self.log_lik[None, :]
        if self.draw:
            self.index = _gumbel_argmax(logits, self.generator)
            x0 = denoiser.x_train[self.index]
        else:
            x0 = torch.softmax(logits, 1) @ denoiser.x_train
        return x0.to(x_t.dtype)


def posterior_terminal_sample(x_train, schedule: Schedule, log_lik, n: int,
                              generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``n`` points from the noisiest level of the *posterior* under a memorized prior.

    :math:`x_{T-1} = \\sqrt{\\bar\\alpha_{T-1}}\\,x_k + \\sqrt{1-\\bar\\alpha_{T-1}}\\,\\varepsilon`
    with ``k ~ softmax(log_lik)``.  Returns ``Tensor[n, d]`` (float64).
    """
    check_generator(generator)
    x = as_train(x_train).to(_F64)
    schedule = check_schedule(schedule)
    n = check_int("n", n, low=1)
    ll = check_log_weights("log_lik", log_lik, x.shape[0]).to(_F64)
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
    logits (:class:`ExactGuidance` in :func:`memprior.diffusion.sample`), at every level.

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
    check_generator(generator)
    schedule = check_schedule(schedule)
    n = check_int("n", n, low=1)
    if method not in ("ancestral", "ddpm", "ddim"):
        raise ValueError(f"method: must be 'ancestral', 'ddpm' or 'ddim', got {method!r}")
    ll = log_likelihoods(forward, x_train, y, gamma)
    prior = MemorizedDenoiser(x_train, schedule)
    timesteps(schedule, steps)  # validate before drawing
    if x_T is None:
        x = posterior_terminal_sample(prior.x_train, schedule, ll, n, generator)
    else:
        x = start_points(prior, schedule, n, x_T=x_T, dtype=_F64)
    guide = ExactGuidance(ll, draw=method == "ancestral", generator=generator)
    x = sample(prior, schedule, x, step="ddim" if method == "ddim" else "ddpm", guidance=guide, steps=steps,
               generator=generator)
    if return_index:
        k = guide.index if method == "ancestral" else pairwise_sq_dists(x, prior.x_train).argmin(1)
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
    prior = MemorizedDenoiser(x_train, schedule)
    yt = as_data(y, _F64)
    lw = torch.log_softmax(prior.logits(x_t, t), 1)
    exact = torch.logsumexp(lw + ll[None, :], 1)
    with torch.no_grad():
        dps = _gauss_loglik(forward, lw.exp() @ prior.x_train, yt, gamma, "x0_hat")
    return exact, dps


# ============================================================================ DPS (Chung et al.)
class DPSGuidance(Guidance):
    """DPS's guidance (Chung et al. 2023), as a :class:`memprior.diffusion.Guidance`.

    ``denoise`` evaluates :math:`\\hat x_0 = D(x_t, t)` with autograd on and the gradient
    :math:`\\nabla_{x_t}\\|y - F(\\hat x_0)\\|^2` *through the denoiser*; ``adjust`` subtracts
    :math:`\\zeta_t` times it from the DDPM update (the step rules are those of :func:`dps_sample`).
    After a run, ``residual`` and ``step`` hold ``||r||`` and the length of each guidance step per
    level, and ``x0_hat`` the last clean estimate.

    Parameters
    ----------
    forward : callable ``[B, d] -> [B, m]`` (differentiable with torch)
    y : Tensor[m]
    gamma : float > 0
    zeta : float > 0
    rule : {"chung", "plugin"}
    """

    def __init__(self, forward: Forward, y, gamma: float, zeta: float, rule: str = "chung"):
        check_forward(forward)
        self.gamma = check_positive("gamma", gamma, square=True)
        self.zeta = check_positive("zeta", zeta)
        if rule not in ("chung", "plugin"):
            raise ValueError(f"rule: must be 'chung' or 'plugin', got {rule!r}")
        self.forward, self.y, self.rule = forward, as_data(y, _F64), rule
        self.residual: list[torch.Tensor] = []
        self.step: list[torch.Tensor] = []
        self.x0_hat = None

    culprit = "zeta (the step size)"
    hint = "the guidance step overflowed; reduce zeta"

    def denoise(self, denoiser, x_t, t):
        xr = x_t.detach().requires_grad_(True)
        with torch.enable_grad():
            x0 = denoiser.denoise(xr.to(getattr(denoiser, "dtype", _F64)), t)
            if not isinstance(x0, torch.Tensor) or x0.shape != x_t.shape or not torch.isfinite(x0).all():
                return x0  # the sampling loop reports a wrong or non-finite output, and who is to blame
            x0 = x0.to(_F64)
            Fx = apply_forward(self.forward, x0, self.y.shape[0], "x0_hat", dtype=_F64, finite=False)
            guard_finite(Fx, "forward", "F(x0_hat), the forward map at the clean estimate", t,
                         "the forward map must be finite wherever the sampler goes")
            r = self.y[None, :] - Fx
            sq = (r ** 2).sum(1)
            if not sq.requires_grad:
                raise TypeError("forward: torch autograd cannot differentiate the data misfit (the forward map or "
                                "the denoiser is not differentiable in x_t); DPS needs both differentiable")
            (self._grad,) = torch.autograd.grad(sq.sum(), xr)
        guard_finite(self._grad, "forward", "the guidance gradient (through the forward map and the denoiser)", t,
                     "the forward map and the denoiser must have finite derivatives")
        self._sq = sq.detach()
        self.x0_hat = x0.detach()
        return self.x0_hat.to(x_t.dtype)

    def adjust(self, x_s, x0_hat, t, a_t, a_s):
        sq = self._sq
        if self.rule == "chung":
            coef = self.zeta / sq.sqrt().clamp(min=_TINY)
        else:
            a_ts = a_t / a_s
            coef = torch.full_like(sq, self.zeta * float((1 - a_ts) / a_ts.sqrt()) / (2 * self.gamma ** 2))
        delta = coef[:, None] * self._grad
        x = x_s - delta
        guard_finite(x, "zeta (the step size)", "the iterate after the DPS step", t, f"reduce zeta (got {self.zeta})")
        self.residual.append(sq.sqrt())
        self.step.append(delta.norm(dim=1))
        return x


def dps_sample(denoiser, schedule: Schedule, forward: Forward, y, gamma: float, n: int, zeta: float = 1.0,
               generator: torch.Generator | None = None, *, rule: str = "chung", x_T=None,
               steps: int | None = None, return_info: bool = False, show_progress: bool = True, callback=None):
    """Diffusion posterior sampling (DPS) of Chung et al. (2023).

    At each visited level ``t`` (next level ``s``):

    1. :math:`\\hat x_0 = D(x_t, t)` with autograd on, :math:`r = y - F(\\hat x_0)`;
    2. ancestral DDPM step :math:`x_s' \\sim q(x_s \\mid x_t, \\hat x_0)`;
    3. guidance :math:`x_s = x_s' - \\zeta_t\\,\\nabla_{x_t}\\|r\\|^2`, the gradient taken
       *through the denoiser*.

    That is :func:`memprior.diffusion.sample` with ``step="ddpm"`` and :class:`DPSGuidance`.
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
    callback : callable ``(t, x_t, x0_hat)``, optional
        Called at every visited level (e.g. a :class:`memprior.diffusion.TrajectoryRecorder`).

    Returns
    -------
    Tensor[n, d] (and the info dict if requested)
    """
    check_generator(generator)
    check_denoiser(denoiser)
    schedule = check_schedule(schedule)
    guide = DPSGuidance(forward, y, gamma, zeta, rule)
    n = check_int("n", n, low=1)
    ts = timesteps(schedule, steps)
    x = start_points(denoiser, schedule, n, x_T=x_T, dtype=_F64, generator=generator)
    _probe(forward, denoiser, x, guide.y.shape[0])
    x = sample(denoiser, schedule, x, step="ddpm", guidance=guide, callback=callback, steps=steps,
               generator=generator, desc="DPS" if show_progress else None)
    if return_info:
        return x, {"x0_hat": guide.x0_hat, "residual": torch.stack(guide.residual), "step": torch.stack(guide.step),
                   "t": torch.tensor(ts, dtype=torch.long)}
    return x


# ============================================================================ the paper's variant
class NormalizedGuidance(Guidance):
    """The paper's normalized guidance step, as a :class:`memprior.diffusion.Guidance`.

    ``adjust`` takes :math:`g = \\nabla_{\\hat x_0}\\|y - F(\\hat x_0)\\|^2/\\sqrt{\\bar\\alpha_t}`
    (the denoiser Jacobian ignored) and moves each sample by ``step_size`` against
    :math:`g/\\|g\\|` (not where ``g = 0``).  The clean estimate is the denoiser's, without autograd.

    Parameters
    ----------
    forward : callable ``[B, d] -> [B, m]`` (differentiable with torch)
    y : Tensor[m]
    step_size : float > 0
        Length of every guidance step (units of x).
    """

    def __init__(self, forward: Forward, y, step_size: float):
        check_forward(forward)
        self.step_size = check_positive("step_size", step_size)
        self.forward, self.y = forward, as_data(y, _F64)
        self.x0_hat = None

    culprit = "step_size"
    hint = "the guidance step overflowed; reduce step_size"

    def adjust(self, x_s, x0_hat, t, a_t, a_s):
        self.x0_hat = x0_hat
        x0r = x0_hat.detach().to(_F64).requires_grad_(True)
        with torch.enable_grad():
            Fx = apply_forward(self.forward, x0r, self.y.shape[0], "x0_hat", dtype=_F64, finite=False)
            guard_finite(Fx, "forward", "F(x0_hat), the forward map at the clean estimate", t,
                         "the forward map must be finite wherever the sampler goes")
            r = self.y[None, :] - Fx
            if not r.requires_grad:
                raise TypeError("forward: torch autograd cannot differentiate it (its output does not depend on "
                                "the input through torch operations); the normalized DPS needs its gradient")
            (g,) = torch.autograd.grad((r ** 2).sum(), x0r)
        guard_finite(g, "forward", "the gradient of the data misfit ||y - F(x0_hat)||^2", t,
                     "the forward map must have finite derivatives")
        g = g / a_t.sqrt()
        gn = g.norm(dim=1, keepdim=True)
        direction = torch.where(gn > 0, g / gn.clamp(min=_TINY), torch.zeros_like(g))
        x = x_s - self.step_size * direction
        guard_finite(x, "step_size", "the iterate after the normalized step", t,
                     f"reduce step_size (got {self.step_size})")
        return x


def dps_normalized_sample(denoiser, schedule: Schedule, forward: Forward, y, n: int, step_size: float = 0.05,
                          generator: torch.Generator | None = None, *, x_T=None, steps: int | None = None,
                          return_info: bool = False, show_progress: bool = True, callback=None):
    """The normalized-gradient DPS variant of the paper (Siahkoohi & Sabeddu 2026).

    At each visited level ``t`` (next level ``s``, with :math:`\\bar\\alpha_s = 1` after the last):

    1. :math:`\\hat x_0 = D(x_t, t)` (no autograd through the denoiser);
    2. deterministic DDIM: :math:`x_s' = \\sqrt{\\bar\\alpha_s}\\,\\hat x_0 + \\sqrt{1-\\bar\\alpha_s}\\,\\hat\\varepsilon`;
    3. :math:`g = \\nabla_{\\hat x_0}\\|y - F(\\hat x_0)\\|^2 / \\sqrt{\\bar\\alpha_t}` (the denoiser
       Jacobian replaced by :math:`I/\\sqrt{\\bar\\alpha_t}`);
    4. :math:`x_s = x_s' - \\ell\\, g/\\|g\\|` per sample, :math:`\\ell` = ``step_size`` (no step where ``g = 0``).

    That is :func:`memprior.diffusion.sample` with ``step="ddim"`` and :class:`NormalizedGuidance`.
    The last step is applied after the final denoising, so every returned sample lies at
    distance exactly ``step_size`` from the denoiser's last output (where ``g != 0``).  Because of
    step 4, the factor :math:`1/\\sqrt{\\bar\\alpha_t}` of step 3 has no effect.

    Parameters
    ----------
    denoiser : object with ``.denoise(x_t, t)``, ``.eps``, ``.dim``
    schedule : Schedule
    forward : callable ``[B, d] -> [B, m]`` (differentiable with torch)
    y : Tensor[m]
    n : int >= 1
    step_size : float > 0
        Length of every guidance step (units of x; the paper, which calls it :math:`\\eta`, uses
        0.02-0.07).  Not DDIM's stochasticity ``eta`` of :func:`memprior.diffusion.ddim_sample`.
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
    callback : callable ``(t, x_t, x0_hat)``, optional
        Called at every visited level (e.g. a :class:`memprior.diffusion.TrajectoryRecorder`).

    Returns
    -------
    Tensor[n, d] (and the info dict if requested)
    """
    check_generator(generator)
    check_denoiser(denoiser)
    schedule = check_schedule(schedule)
    guide = NormalizedGuidance(forward, y, step_size)
    n = check_int("n", n, low=1)
    timesteps(schedule, steps)  # validate before drawing
    x = start_points(denoiser, schedule, n, x_T=x_T, dtype=_F64, generator=generator)
    _probe(forward, denoiser, x, guide.y.shape[0])
    x = sample(denoiser, schedule, x, step="ddim", guidance=guide, callback=callback, steps=steps,
               generator=generator, desc="DPS (normalized)" if show_progress else None)
    if return_info:
        return x, {"x0_hat": guide.x0_hat}
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


def _smc_proposal(kernel: str, x, x0, lg, g, coefs, xtr, generator):
    """Propose ``x_s`` for every particle from the prior's reverse kernel shifted by ``var * g``.

    ``g`` is the twist's gradient at ``x_t``, ``lg`` the prior logits, ``x0`` the prior's clean
    estimate, ``coefs = (c_x, c_0, var)`` of :func:`memprior.diffusion.ddpm_coefficients`.  Returns
    ``(x_s, log p(x_s | x_t), log q(x_s | x_t, y))`` (prior kernel and proposal, up to a shared constant).
    """
    cx, c0, var = coefs
    shift = var * g
    if kernel == "gaussian":
        mean = cx * x + c0 * x0
        x_new = mean + shift + math.sqrt(var) * _randn(x.shape, generator)
        return x_new, _log_normal_kernel(x_new, mean, var), _log_normal_kernel(x_new, mean + shift, var)
    lw = torch.log_softmax(lg, 1)  # [R, N]
    k = _gumbel_argmax(lw, generator)
    x_new = cx * x + c0 * xtr[k] + shift + math.sqrt(var) * _randn(x.shape, generator)
    means = cx * x[:, None, :] + c0 * xtr[None, :, :]  # [R, N, d]
    log_p = torch.logsumexp(lw + _log_normal_kernel(x_new[:, None, :], means, var), 1)
    log_q = torch.logsumexp(lw + _log_normal_kernel(x_new[:, None, :], means + shift[:, None, :], var), 1)
    return x_new, log_p, log_q


def _smc_reweight(logw: torch.Tensor, log_z: torch.Tensor, inc: torch.Tensor, t: int):
    """Add the incremental log-weights ``inc [n, K]``: normalized log-weights, log-evidence, ESS fraction."""
    if not torch.isfinite(inc).all():
        raise FloatingPointError(f"smc_sample: non-finite incremental weight at level t={t}")
    log_z = log_z + torch.logsumexp(logw + inc, 1)
    logw = torch.log_softmax(logw + inc, 1)
    return logw, log_z, 1.0 / torch.exp(torch.logsumexp(2 * logw, 1)) / logw.shape[1]


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
    check_generator(generator)
    schedule = check_schedule(schedule)
    n = check_int("n", n, low=1)
    K = check_int("n_particles", n_particles, low=1)
    ess_threshold = check_positive("ess_threshold", ess_threshold, upper=1.0)
    if kernel not in ("mixture", "gaussian"):
        raise ValueError(f"kernel: must be 'mixture' or 'gaussian', got {kernel!r}")
    ll = log_likelihoods(forward, x_train, y, gamma)  # validates forward, x_train, y, gamma
    xtr = as_train(x_train).to(_F64)
    yt = as_data(y, _F64)
    probe_forward(forward, xtr, yt.shape[0], differentiable=True)
    N, d = xtr.shape
    ab = schedule.alpha_bar.to(_F64)
    ts = timesteps(schedule, steps)
    R = n * K

    prior = MemorizedDenoiser(xtr, schedule)

    def twist(x, t):
        """log p~_t(y | x), its gradient, the prior logits and the prior's clean estimate at level t."""
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            lg = prior.logits(xr, t)
            x0 = torch.softmax(lg, 1) @ xtr
            lt = _gauss_loglik(forward, x0, yt, gamma, "x0_hat")
            guard_finite(lt, "forward", "the twist log N(y; F(x0_hat), gamma^2 I)", t,
                         "the forward map must be finite wherever the sampler goes")
            (g,) = torch.autograd.grad(lt.sum(), xr)
        guard_finite(g, "forward", "the twist's gradient", t, "the forward map must have finite derivatives")
        return lt.detach(), g, lg.detach(), x0.detach()

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
        return x, lt, g, lg, x0, logw, n_res

    # start: the prior's terminal marginal, weighted by the twist
    k0 = torch.randint(N, (R,), generator=generator)
    x = ab[ts[0]].sqrt() * xtr[k0] + (1 - ab[ts[0]]).sqrt() * _randn((R, d), generator)
    lt, g, lg, x0 = twist(x, ts[0])
    logw, log_z, _ = _smc_reweight(torch.full((n, K), -math.log(K), dtype=_F64), torch.zeros(n, dtype=_F64),
                                   lt.view(n, K), ts[0])
    n_res = torch.zeros(n, dtype=torch.long)
    ess_hist = []
    index = torch.full((n,), -1, dtype=torch.long)
    levels = range(len(ts))
    for i in (progress(levels, desc="SMC", total=len(ts)) if show_progress else levels):
        t = ts[i]
        x, lt, g, lg, x0, logw, n_res = maybe_resample(x, lt, g, lg, x0, logw, n_res)
        if i + 1 < len(ts):
            coefs = ddpm_coefficients(ab[t], ab[ts[i + 1]])
            x_new, log_p, log_q = _smc_proposal(kernel, x, x0, lg, g, coefs, xtr, generator)
            lt_new, g, lg, x0 = twist(x_new, ts[i + 1])
            inc = (log_p + lt_new - lt - log_q).view(n, K)
            x, lt = x_new, lt_new
        elif kernel == "gaussian":
            # last level -> clean sample: the prior's clean estimate
            x = x0
            inc = (_gauss_loglik(forward, x0, yt, gamma, "x0_hat") - lt).view(n, K)
        else:
            # last level -> clean sample: a training point drawn from the exact reweighted kernel
            lw = torch.log_softmax(lg, 1) + ll[None, :]
            k_last = _gumbel_argmax(lw, generator)
            x = xtr[k_last]
            inc = (torch.logsumexp(lw, 1) - lt).view(n, K)
        logw, log_z, ess = _smc_reweight(logw, log_z, inc, t)
        ess_hist.append(ess)
    pick = _gumbel_argmax(logw, generator)  # [n]
    rows = torch.arange(n) * K + pick
    out = x[rows]
    if kernel == "mixture":
        index = k_last[rows]
    if return_info:
        return out, {"log_evidence": log_z, "ess": torch.stack(ess_hist), "n_resample": n_res, "index": index}
    return out


# ============================================================================ diagnostics
def assignment_frequencies(samples, x_train) -> torch.Tensor:
    """Fraction of samples whose nearest training point is ``x_n``, shape ``[N]`` (sums to one)."""
    idx = nearest(samples, x_train).index
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


def _target_weights(weights, n: int) -> torch.Tensor:
    """Target probabilities ``[n]``: finite, non-negative, not all zero; returned normalized (float64)."""
    w = as_tensor("weights", weights, ndim=1).to(_F64)
    check_shape("weights", w, (n,))
    if (w < 0).any():
        raise ValueError(f"weights: entries must be in [0, inf) (non-negative), got min {float(w.min()):.3g}")
    if not float(w.sum()) > 0:
        raise ValueError("weights: must not all be zero (their sum must be in (0, inf)); every expected count "
                         "would be zero")
    return w / w.sum()


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
    check_generator(generator)
    n_boot = check_int("n_boot", n_boot, low=2)
    freq = assignment_frequencies(samples, x_train)
    w = _target_weights(weights, freq.shape[0])
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
    w = _target_weights(weights, freq.shape[0])
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
    if ((exp == 0) & (obs > 0)).any():
        return math.inf, max(len(o) - 1, 1), 0.0  # samples where the target puts no mass: rejected outright
    if len(o) < 2:
        return 0.0, 0, 1.0
    stat, p = stats.chisquare(np.asarray(o), np.asarray(e))
    return float(stat), len(o) - 1, float(p)
